//! `AppState`: the value resource modules read as app data, built once in `startup.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::services::Services;
use crate::settings::Settings;
use crate::threads::{Lane, Priority};

pub struct AppState {
    pub settings: Settings,
    /// What the flows run on (pool, OAuth server, blocker, verifier, metrics), held once.
    pub services: Services,
    /// The customer searches' share of the pool (`glue.search_concurrency`).
    pub search_slots: SearchSlots,
}

/// Turns for customer searches: at most `glue.search_concurrency` run at once in this process,
/// each holding a pooled connection and one of as many threads of their own at
/// `glue.search_priority`; the rest wait a little, then give up.
pub struct SearchSlots {
    slots: Arc<Semaphore>,
    wait: Duration,
    lane: Lane,
}

/// No turn came within the wait.
#[derive(Debug, thiserror::Error)]
#[error("customer searches have their share of the database connections")]
pub struct NoTurn;

impl SearchSlots {
    /// Starts the searches' threads.
    pub fn new(concurrency: usize, wait: Duration, priority: Priority) -> std::io::Result<Self> {
        Ok(SearchSlots {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
            lane: Lane::new("glue-search", concurrency.max(1), priority)?,
        })
    }

    /// The threads a search's database work runs on (`db::run_on`).
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// A turn, held until the returned permit is dropped; `NoTurn` after the wait.
    pub async fn turn(&self) -> Result<OwnedSemaphorePermit, NoTurn> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        match actix_web::rt::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(NoTurn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_search_beyond_the_share_waits_then_gives_up() {
        let slots = SearchSlots::new(1, Duration::from_millis(50), Priority::Nice(0)).unwrap();
        let held = slots.turn().await.unwrap();
        let started = std::time::Instant::now();
        assert!(slots.turn().await.is_err());
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(held);
        assert!(slots.turn().await.is_ok());
    }
}
