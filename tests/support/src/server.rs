//! The HTTP server every mock runs on: bound on a given address (port 0 in
//! tests), stopped by a cancellation token that its WebSocket tasks also
//! watch, because upgraded connections outlive axum's graceful shutdown.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    pub(crate) async fn bind(addr: SocketAddr, router: Router, cancel: CancellationToken) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await;
            if let Err(error) = served {
                tracing::warn!(%error, "mock server stopped with an error");
            }
        });
        Ok(Self { addr, cancel, task: Some(task) })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) async fn shutdown(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // A panic in the server task already showed in the test output.
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// `127.0.0.1:0`.
pub(crate) fn ephemeral() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
