//! The time of every time rule: the security blocker's windows and blocks, token lifetimes,
//! refresh-token expiry and the grace window. Injectable, so tests move time instead of
//! sleeping through windows and blocks; production uses [`SystemClock`].

use chrono::NaiveDateTime;

pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC without a zone (what the database columns hold).
    fn now(&self) -> NaiveDateTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> NaiveDateTime {
        chrono::Utc::now().naive_utc()
    }
}
