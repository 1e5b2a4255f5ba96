//! Whether the client of a request is still connected. actix-web keeps running a handler after
//! its client hung up; work that is expensive and only useful to that client (a queued bcrypt
//! verification) asks [`ClientConnection::is_open`] first and is skipped when it is not.
//!
//! `startup` registers [`on_connect`], which keeps each plain-TCP connection's socket
//! descriptor in the connection data; the extractor duplicates it (so the number cannot be
//! reused by another socket while the check may still run) and the check peeks at the socket
//! without reading: end of stream or a reset means the client is gone. (A client that
//! half-closes after sending its request reads as gone too; HTTP clients do not.)

use std::any::Any;
use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::{Extensions, Payload};
use actix_web::{FromRequest, HttpRequest};

use super::error::GlueError;

#[derive(Debug, Clone, Copy)]
struct PeerSocket(#[cfg(unix)] std::os::fd::RawFd);

/// The `HttpServer::on_connect` hook that makes [`ClientConnection`] work.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    #[cfg(unix)]
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsRawFd;
        data.insert(PeerSocket(tcp.as_raw_fd()));
    }
    #[cfg(not(unix))]
    let _ = (connection, data);
}

/// The request's connection, as an extractor; cheap to clone into other threads.
#[derive(Debug, Clone)]
pub struct ClientConnection(#[cfg(unix)] Option<Arc<std::os::fd::OwnedFd>>);

impl ClientConnection {
    /// Asks, whenever called, whether the client still waits for the answer (for queued work
    /// that should be skipped when nobody does).
    pub fn still_wanted(self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        Arc::new(move || self.is_open())
    }

    /// False once the client has closed or reset the connection; true when it cannot tell.
    pub fn is_open(&self) -> bool {
        #[cfg(unix)]
        if let Some(socket) = &self.0 {
            use std::os::fd::AsRawFd;
            return !peer_closed(socket.as_raw_fd());
        }
        true
    }
}

#[cfg(unix)]
fn peer_closed(socket: std::os::fd::RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: a non-blocking peek of at most one byte into a local buffer, on a descriptor
    // this value owns (a duplicate of the connection's).
    let received = unsafe {
        libc::recv(
            socket,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match received {
        0 => true,
        n if n > 0 => false,
        _ => {
            let error = std::io::Error::last_os_error().kind();
            !matches!(
                error,
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            )
        }
    }
}

impl FromRequest for ClientConnection {
    type Error = GlueError;
    type Future = Ready<Result<Self, GlueError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        #[cfg(unix)]
        let owned = req.conn_data::<PeerSocket>().and_then(|socket| {
            use std::os::fd::{FromRawFd, OwnedFd};
            // SAFETY: dup() of a descriptor the dispatcher keeps open for this request; the
            // duplicate is owned (and closed) by the value built from it.
            let duplicate = unsafe { libc::dup(socket.0) };
            (duplicate >= 0).then(|| Arc::new(unsafe { OwnedFd::from_raw_fd(duplicate) }))
        });
        #[cfg(not(unix))]
        let _ = req;
        ready(Ok(ClientConnection(
            #[cfg(unix)]
            owned,
        )))
    }
}
