//! The HTTP server loop: accepts TCP connections and serves the router on each over HTTP/1.1
//! (or HTTP/2 with prior knowledge), with the connection limits of [`HttpLimits`]:
//!
//! - a request's headers must arrive within `header_read_timeout` (hyper's HTTP/1 header
//!   timer, which also ends a kept-alive connection that sends no next request), so a client
//!   that trickles headers (slowloris) is disconnected;
//! - a connection that moves no byte either way for `idle_timeout` is closed;
//! - on shutdown no new connection is accepted, open ones finish their requests within the
//!   grace period and are then closed.
//!
//! poem's own `Server` offers neither a header timeout nor a way to set hyper's timer, hence
//! this loop; requests reach the router exactly as they would through poem's server.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::limits::HttpLimits;

/// Serves `endpoint` on `listener` until `shutdown` completes, then lets open connections finish
/// for at most `grace`.
///
/// # Errors
/// Never for a single connection's failure (those are logged and dropped); the signature keeps
/// room for listener failures.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint.map_to_response());
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let endpoint = endpoint.clone();
                    let stopping = stopping.clone();
                    connections.spawn(connection(stream, remote, endpoint, limits, stopping));
                }
                Err(e) => {
                    // out of descriptors or a connection reset before accept: wait a moment
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "closing connections still open after the grace period"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Serves one connection until it ends, idles out, or is told to stop.
async fn connection<E>(
    stream: TcpStream,
    remote: SocketAddr,
    endpoint: Arc<E>,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
) where
    E: Endpoint<Output = poem::Response> + 'static,
{
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(remote);
    let activity = Activity::default();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        closing: None,
    });
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let endpoint = endpoint.clone();
        async move {
            let req = poem::Request::from((
                req,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(remote)),
                Scheme::HTTP,
            ));
            let response = endpoint.get_response(req).await;
            Ok::<_, Infallible>(hyper::Response::<BoxBody<bytes::Bytes, io::Error>>::from(
                response,
            ))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut graceful = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = stopping.changed(), if !graceful => {
                graceful = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = activity.idle_for(limits.header_read_timeout, limits.idle_timeout) => {
                tracing::debug!(%remote, "closing an idle connection");
                return;
            }
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it was accepted (`NEVER` until
/// its first byte).
#[derive(Clone)]
struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

const NEVER: u64 = u64::MAX;

impl Default for Activity {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(NEVER)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NEVER - 1);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing moved for `idle`, or, for a connection that never sent a byte,
    /// once `first` passed since it was accepted (the protocol sniffing that precedes the
    /// header timer would otherwise wait for that first byte forever).
    async fn idle_for(&self, first: Duration, idle: Duration) {
        loop {
            let deadline = match self.last_ms.load(Ordering::Relaxed) {
                NEVER => self.start + first,
                last => self.start + Duration::from_millis(last) + idle,
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket that records its activity and closes lingering.
struct Watched {
    inner: TcpStream,
    activity: Activity,
    closing: Option<Lingering>,
}

/// How long, and for how many bytes, a closing connection keeps reading what the client still
/// sends. Closing a socket with unread data resets the connection, and a client still sending
/// a refused body (413, 401) may then lose the answer before reading it; reading and dropping
/// a little more first, after our side is shut, lets it read the answer.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

struct Lingering {
    until: Pin<Box<tokio::time::Sleep>>,
    drained: usize,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.closing.is_none() {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.closing = Some(Lingering {
                until: Box::pin(tokio::time::sleep(LINGER)),
                drained: 0,
            });
        }
        let Some(lingering) = this.closing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if lingering.until.as_mut().poll(cx).is_ready() || lingering.drained > LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    lingering.drained += buf.filled().len();
                }
                // the client closed too, or the socket failed: done
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
