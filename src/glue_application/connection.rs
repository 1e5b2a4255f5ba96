//! Whether the client of a request is still connected. actix-web keeps running a handler after
//! its client hung up; work that is expensive and only useful to that client (a queued bcrypt
//! verification) asks [`ClientConnection::is_open`] first and is skipped when it is not.
//!
//! `startup` registers [`on_connect`], which keeps each plain-TCP connection's socket
//! descriptor in the connection data; the check peeks at the socket without reading: end of
//! stream or a reset means the client is gone. The dispatcher owns the socket for as long as
//! the handler runs, so the descriptor stays valid while it matters.

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
pub struct ClientConnection(Option<Arc<PeerSocket>>);

impl ClientConnection {
    /// False once the client has closed or reset the connection; true when it cannot tell.
    pub fn is_open(&self) -> bool {
        match &self.0 {
            Some(socket) => !peer_closed(socket),
            None => true,
        }
    }
}

#[cfg(unix)]
fn peer_closed(socket: &PeerSocket) -> bool {
    let mut byte = 0u8;
    // SAFETY: a non-blocking peek of at most one byte into a local buffer; the descriptor
    // belongs to the connection the handler is serving, which outlives the handler.
    let received = unsafe {
        libc::recv(
            socket.0,
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

#[cfg(not(unix))]
fn peer_closed(_socket: &PeerSocket) -> bool {
    false
}

impl FromRequest for ClientConnection {
    type Error = GlueError;
    type Future = Ready<Result<Self, GlueError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientConnection(
            req.conn_data::<PeerSocket>().copied().map(Arc::new),
        )))
    }
}
