//! The HTTP server: hyper's HTTP/1.1 connections, guarded against slow and silent clients,
//! capped in number, and a shutdown that ends by its deadline whatever clients do.
//!
//! - **Header timeout**: a request head must be complete within `header_timeout` — of the
//!   connection being accepted, or of its first byte on a kept-alive connection.
//! - **Idle timeout**: a kept-alive connection waits `idle_timeout` at most for its next request.
//! - **Body pace**: once `body_grace` has passed, a request body must have arrived at
//!   `body_min_rate` bytes per second on average, or it is cut (`408 body_too_slow`): a
//!   slow, steady upload passes, a trickle does not; bodies are bounded in size anyway.
//! - **Connection cap**: at most `max_connections` sockets (WebSockets included) are open;
//!   the next one is accepted when one closes, until then it waits in the listen backlog.
//! - None of these applies to an upgraded connection (a WebSocket): its protocol has its
//!   own keep-alives. Handlers take what they take: they wait on the server's own work.
//!
//! The decisions are the pure [`ConnectionClock`] and [`BodyPace`] (time passed in); the
//! rest is a thin shell around hyper.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tower::ServiceExt;

/// What a client may make the server wait for, and how many clients at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a new connection, or a kept-alive request's first byte, to its complete head.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a request body may take before `body_min_rate` applies.
    pub body_grace: Duration,
    /// Slowest average body rate accepted after the grace, in bytes per second (0: none).
    pub body_min_rate: u64,
    /// Sockets open at once.
    pub max_connections: usize,
}

// --- the pure decisions -----------------------------------------------------------------

/// Where an HTTP/1.1 connection is, as far as waiting on its client goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A new connection, accepted at `since`, waiting for its first request.
    AwaitingFirst { since: Instant },
    /// A kept-alive connection, idle since `since`, waiting for its next request.
    AwaitingNext { since: Instant },
    /// Reading a request head whose first byte came at `since`.
    ReadingHead { since: Instant },
    /// A request is being handled (its body has its own pace).
    Busy,
    /// Upgraded to another protocol: its own keep-alives apply.
    Upgraded,
}

/// When a connection must have made progress on reading, given what it is doing.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionClock {
    phase: Phase,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnectionClock {
    /// A connection accepted at `now`: its first request head is due within the header timeout.
    pub fn new(now: Instant, header_timeout: Duration, idle_timeout: Duration) -> Self {
        Self { phase: Phase::AwaitingFirst { since: now }, header_timeout, idle_timeout }
    }

    /// Bytes arrived at `now`: a waiting connection starts reading a head.
    pub fn bytes_read(&mut self, now: Instant) {
        match self.phase {
            // On a new connection the head was due from the accept, not the first byte.
            Phase::AwaitingFirst { since } => self.phase = Phase::ReadingHead { since },
            Phase::AwaitingNext { .. } => self.phase = Phase::ReadingHead { since: now },
            Phase::ReadingHead { .. } | Phase::Busy | Phase::Upgraded => {}
        }
    }

    /// The head is complete and the request is handed to the router.
    pub fn request_started(&mut self) {
        if self.phase != Phase::Upgraded {
            self.phase = Phase::Busy;
        }
    }

    /// The response was sent at `now`: the connection waits for its next request.
    pub fn response_done(&mut self, now: Instant) {
        if self.phase == Phase::Busy {
            self.phase = Phase::AwaitingNext { since: now };
        }
    }

    /// The connection switched protocols (`101`).
    pub fn upgraded(&mut self) {
        self.phase = Phase::Upgraded;
    }

    /// When reading must have made progress, if it must.
    pub fn read_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitingFirst { since } | Phase::ReadingHead { since } => Some(since + self.header_timeout),
            Phase::AwaitingNext { since } => Some(since + self.idle_timeout),
            Phase::Busy | Phase::Upgraded => None,
        }
    }
}

/// The pace of one request body: after the grace, at least `min_rate` bytes per second on
/// average since the handler first asked for it.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    started: Option<Instant>,
    received: u64,
    grace: Duration,
    min_rate: u64,
}

impl BodyPace {
    /// A body not read yet.
    pub fn new(grace: Duration, min_rate: u64) -> Self {
        Self { started: None, received: 0, grace, min_rate }
    }

    /// The handler asked for the body at `now` (the first time counts).
    pub fn start(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// `bytes` more arrived.
    pub fn received(&mut self, bytes: usize) {
        self.received = self.received.saturating_add(bytes as u64);
    }

    /// By when more must have arrived; None once the body has no pace to keep.
    pub fn deadline(&self) -> Option<Instant> {
        let started = self.started?;
        if self.min_rate == 0 {
            return None;
        }
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        Some(started + self.grace + earned)
    }
}

/// A request body that arrived slower than the minimum rate; the API answers `408 body_too_slow`.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {min_rate} bytes per second")]
pub struct BodyTooSlow {
    /// The configured minimum, bytes per second.
    pub min_rate: u64,
}

// --- the shell --------------------------------------------------------------------------

/// A bound listener and the router it serves.
pub struct Server {
    listener: TcpListener,
    router: Router,
    limits: Limits,
}

/// Connections still open after the server stopped accepting.
pub struct Draining {
    /// Every open socket holds one of these, upgraded ones included.
    slots: Arc<Semaphore>,
    total: u32,
    cut: CancellationToken,
}

impl Server {
    /// A server for `router` on `listener`.
    pub fn new(listener: TcpListener, router: Router, limits: Limits) -> Self {
        Self { listener, router, limits }
    }

    /// Accepts and serves connections until `stop` is cancelled, then asks each open one to
    /// finish its current request and close; returns them, to be waited for.
    pub async fn run(self, stop: CancellationToken) -> Draining {
        let Self { listener, router, limits } = self;
        let total = u32::try_from(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        let slots = Arc::new(Semaphore::new(total as usize));
        let cut = CancellationToken::new();
        let mut full = false;
        loop {
            if slots.available_permits() == 0 && !full {
                tracing::warn!(
                    max = limits.max_connections,
                    "every connection slot is in use; new connections wait until one closes"
                );
            }
            full = slots.available_permits() == 0;
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = stop.cancelled() => break,
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stop.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or similar: say so and breathe, as axum does.
                    tracing::error!(error = %err, "accepting a connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = stop.cancelled() => break,
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(stream, peer, permit, router.clone(), limits, stop.clone(), cut.clone()));
        }
        Draining { slots, total, cut }
    }
}

impl Draining {
    /// Waits for open requests to finish until `deadline`, then cuts every connection still
    /// open, upgraded ones (WebSockets) included.
    pub async fn finish_by(self, deadline: Instant) {
        // Every slot back means every socket closed (nothing takes new ones any more).
        let all_closed = self.slots.acquire_many(self.total);
        if tokio::time::timeout_at(deadline, all_closed).await.is_err() {
            let open = self.total as usize - self.slots.available_permits();
            tracing::info!(connections = open, "cutting the connections still open at the shutdown deadline");
        }
        self.cut.cancel();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    cut: CancellationToken,
) {
    let clock = ConnectionClock::new(Instant::now(), limits.header_timeout, limits.idle_timeout);
    let clock: SharedClock = Arc::new(Mutex::new(Shared { clock, reader: None }));
    let io = TokioIo::new(GuardedIo::new(stream, clock.clone(), permit, cut.clone()));
    let service =
        hyper::service::service_fn(move |request| handle(router.clone(), request, peer, clock.clone(), limits));
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            // Finish the request in flight, if any, then close.
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                () = cut.cancelled() => Ok(()),
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, %peer, "connection ended");
    }
}

/// One request: the client's address for the handlers, the body's pace, and the
/// connection's phase around it.
async fn handle(
    router: Router,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    clock: SharedClock,
    limits: Limits,
) -> Result<Response<TrackedBody>, Infallible> {
    lock(&clock).clock.request_started();
    request.extensions_mut().insert(ConnectInfo(peer));
    let request = request.map(|body| Body::new(PacedBody::new(body, limits.body_grace, limits.body_min_rate)));
    let response = router.oneshot(request).await?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        lock(&clock).clock.upgraded();
    }
    Ok(response.map(|body| TrackedBody { body, clock }))
}

/// A connection's clock, shared by its socket and its requests, and the wake-up of the
/// read waiting on the socket (hyper does not read again by itself when a response is
/// done: the idle deadline needs a poll of the socket to be armed).
#[derive(Debug)]
struct Shared {
    clock: ConnectionClock,
    reader: Option<Waker>,
}

type SharedClock = Arc<Mutex<Shared>>;

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The socket of one connection: fails a read that is overdue by the [`ConnectionClock`],
/// fails everything once the shutdown deadline cut it, and holds the connection's slot
/// until it is dropped (for an upgraded connection, when its WebSocket is).
struct GuardedIo {
    stream: TcpStream,
    clock: SharedClock,
    timer: Pin<Box<Sleep>>,
    cut_wait: Pin<Box<WaitForCancellationFutureOwned>>,
    _slot: OwnedSemaphorePermit,
}

impl GuardedIo {
    fn new(stream: TcpStream, clock: SharedClock, slot: OwnedSemaphorePermit, cut: CancellationToken) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(Instant::now()));
        let cut_wait = Box::pin(cut.cancelled_owned());
        Self { stream, clock, timer, cut_wait, _slot: slot }
    }

    /// An error once the shutdown deadline has passed (and a wake-up when it does).
    fn poll_cut(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        // The wait checks the token first: one look per I/O call, not two.
        if self.cut_wait.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the server is shutting down"));
        }
        Ok(())
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.poll_cut(cx)?;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    lock(&this.clock).clock.bytes_read(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let deadline = {
                    let mut shared = lock(&this.clock);
                    let deadline = shared.clock.read_deadline();
                    shared.reader = Some(cx.waker().clone());
                    deadline
                };
                let Some(deadline) = deadline else { return Poll::Pending };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client was too slow")));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_cut(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_cut(cx)?;
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_cut(cx)?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that must keep its [`BodyPace`].
struct PacedBody {
    inner: Incoming,
    pace: BodyPace,
    timer: Option<Pin<Box<Sleep>>>,
}

impl PacedBody {
    fn new(inner: Incoming, grace: Duration, min_rate: u64) -> Self {
        Self { inner, pace: BodyPace::new(grace, min_rate), timer: None }
    }
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        this.pace.start(Instant::now());
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.pace.received(data.len());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let Some(deadline) = this.pace.deadline() else { return Poll::Pending };
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(BodyTooSlow { min_rate: this.pace.min_rate }))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the connection's clock when it has been sent.
pub struct TrackedBody {
    body: Body,
    clock: SharedClock,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        let mut shared = lock(&self.clock);
        shared.clock.response_done(Instant::now());
        if shared.clock.read_deadline().is_some()
            && let Some(reader) = shared.reader.take()
        {
            reader.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(30);
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_new_connection_has_the_header_timeout_from_its_accept() {
        let t0 = Instant::now();
        let mut clock = ConnectionClock::new(t0, HEADER, IDLE);
        assert_eq!(clock.read_deadline(), Some(t0 + HEADER), "silent");
        clock.bytes_read(t0 + 3 * S);
        assert_eq!(clock.read_deadline(), Some(t0 + HEADER), "dripping does not buy time");
        clock.bytes_read(t0 + 9 * S);
        assert_eq!(clock.read_deadline(), Some(t0 + HEADER));
    }

    #[test]
    fn a_kept_alive_connection_idles_then_gets_the_header_timeout_from_its_first_byte() {
        let t0 = Instant::now();
        let mut clock = ConnectionClock::new(t0, HEADER, IDLE);
        clock.bytes_read(t0);
        clock.request_started();
        assert_eq!(clock.read_deadline(), None, "a handler takes what it takes");
        clock.response_done(t0 + 2 * S);
        assert_eq!(clock.read_deadline(), Some(t0 + 2 * S + IDLE));
        clock.bytes_read(t0 + 20 * S);
        assert_eq!(clock.read_deadline(), Some(t0 + 20 * S + HEADER));
        clock.request_started();
        clock.response_done(t0 + 21 * S);
        assert_eq!(clock.read_deadline(), Some(t0 + 21 * S + IDLE));
    }

    #[test]
    fn an_upgraded_connection_has_no_deadline() {
        let t0 = Instant::now();
        let mut clock = ConnectionClock::new(t0, HEADER, IDLE);
        clock.bytes_read(t0);
        clock.request_started();
        clock.upgraded();
        clock.response_done(t0 + S);
        clock.bytes_read(t0 + 2 * S);
        assert_eq!(clock.read_deadline(), None);
    }

    #[test]
    fn a_body_earns_time_by_what_it_sent() {
        let t0 = Instant::now();
        let mut pace = BodyPace::new(10 * S, 1024);
        assert_eq!(pace.deadline(), None, "not asked for yet");
        pace.start(t0);
        assert_eq!(pace.deadline(), Some(t0 + 10 * S), "the grace");
        pace.received(4096);
        assert_eq!(pace.deadline(), Some(t0 + 14 * S), "4 KiB at 1 KiB/s earns 4 s");
        pace.start(t0 + 5 * S);
        assert_eq!(pace.deadline(), Some(t0 + 14 * S), "the first request for it counts");
    }

    #[test]
    fn a_trickle_falls_behind_and_a_steady_slow_upload_does_not() {
        let t0 = Instant::now();
        let (mut trickle, mut steady) = (BodyPace::new(10 * S, 1024), BodyPace::new(10 * S, 1024));
        trickle.start(t0);
        steady.start(t0);
        // One byte every 5 s, against 2 KiB a second, for 60 s.
        let mut trickle_cut = None;
        for second in 1..=60u32 {
            let now = t0 + second * S;
            if second % 5 == 0 {
                trickle.received(1);
            }
            steady.received(2048);
            if trickle_cut.is_none() && trickle.deadline().is_some_and(|d| d <= now) {
                trickle_cut = Some(second);
            }
            assert!(steady.deadline().unwrap() > now, "steady at {second} s");
        }
        assert_eq!(trickle_cut, Some(11), "just past the grace");
    }

    #[test]
    fn no_minimum_rate_means_no_deadline() {
        let mut pace = BodyPace::new(S, 0);
        pace.start(Instant::now());
        assert_eq!(pace.deadline(), None);
    }
}
