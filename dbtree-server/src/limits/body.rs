//! The request-body limit, enforced while the body is read: a declared `Content-Length` over
//! the limit fails at the first read without reading anything, an undeclared (chunked) body
//! fails as soon as the bytes read pass the limit, and a body that has not arrived within the
//! read timeout fails then. Nothing reads a body before the operation's own extractors do, and
//! those resolve the bearer token first, so an unauthenticated request is refused without its
//! body being read at all.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use poem::error::ReadBodyError;
use poem::http::header::CONTENT_LENGTH;
use poem::{Body, Endpoint, Middleware, Request, Result};
use tokio::time::Instant;

use super::LimitExceeded;

/// Wraps every request body in the limit.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    max_bytes: usize,
    read_timeout: Duration,
}

impl BodyLimit {
    /// At most `max_bytes`, all of them within `read_timeout` of the request's headers.
    pub fn new(max_bytes: usize, read_timeout: Duration) -> Self {
        Self {
            max_bytes,
            read_timeout,
        }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: *self,
        }
    }
}

/// The endpoint wrapped by [`BodyLimit`].
#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: BodyLimit,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let body = req.take_body();
        if body.is_empty() {
            req.set_body(body);
        } else {
            let declared = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            req.set_body(limited(body, declared, self.limit));
        }
        self.inner.call(req).await
    }
}

/// The reading state of one limited body.
struct Reading {
    inner: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
    declared: Option<u64>,
    read: usize,
    limit: BodyLimit,
    deadline: Instant,
    finished: bool,
}

/// `body`, failing with a [`LimitExceeded`] inside an `io::Error` once it breaks the limit.
fn limited(body: Body, declared: Option<u64>, limit: BodyLimit) -> Body {
    let reading = Reading {
        inner: Box::pin(body.into_bytes_stream()),
        declared,
        read: 0,
        limit,
        deadline: Instant::now() + limit.read_timeout,
        finished: false,
    };
    Body::from_bytes_stream(stream::unfold(reading, |mut r| async move {
        if r.finished {
            return None;
        }
        let too_large = LimitExceeded::BodyTooLarge {
            limit_bytes: r.limit.max_bytes,
        };
        if r.read == 0
            && r.declared
                .is_some_and(|d| d > u64::try_from(r.limit.max_bytes).unwrap_or(u64::MAX))
        {
            r.finished = true;
            return Some((Err(io::Error::other(too_large)), r));
        }
        match tokio::time::timeout_at(r.deadline, r.inner.next()).await {
            Err(_) => {
                r.finished = true;
                let millis = u64::try_from(r.limit.read_timeout.as_millis()).unwrap_or(u64::MAX);
                let too_slow = LimitExceeded::BodyTooSlow {
                    timeout_secs: millis.div_ceil(1000),
                };
                Some((Err(io::Error::other(too_slow)), r))
            }
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => {
                r.read = r.read.saturating_add(chunk.len());
                if r.read > r.limit.max_bytes {
                    r.finished = true;
                    Some((Err(io::Error::other(too_large)), r))
                } else {
                    Some((Ok(chunk), r))
                }
            }
            Ok(Some(Err(e))) => {
                r.finished = true;
                Some((Err(e), r))
            }
        }
    }))
}

/// The limit a failed body read ran into, if that is why it failed.
pub(crate) fn exceeded(error: &poem::Error) -> Option<LimitExceeded> {
    match error.downcast_ref::<ReadBodyError>()? {
        ReadBodyError::Io(e) => in_io_error(e),
        ReadBodyError::BodyHasBeenTaken
        | ReadBodyError::Utf8(_)
        | ReadBodyError::PayloadTooLarge => None,
    }
}

/// Looks through nested `io::Error`s (the framework wraps each stream error once more).
fn in_io_error(error: &io::Error) -> Option<LimitExceeded> {
    let inner = error.get_ref()?;
    if let Some(limit) = inner.downcast_ref::<LimitExceeded>() {
        return Some(*limit);
    }
    in_io_error(inner.downcast_ref::<io::Error>()?)
}

#[cfg(test)]
mod tests {
    use poem::{EndpointExt, handler};

    use super::*;

    #[handler]
    async fn read_all(body: Body) -> String {
        match body.into_vec().await {
            Ok(data) => format!("read {}", data.len()),
            Err(e) => match exceeded(&e.into()) {
                Some(limit) => format!("limit: {limit}"),
                None => "other error".into(),
            },
        }
    }

    async fn send(timeout: Duration, declared: Option<&str>, body: Body) -> String {
        let ep = read_all.with(BodyLimit::new(10, timeout));
        let mut req = Request::builder().method(poem::http::Method::POST);
        if let Some(length) = declared {
            req = req.header(CONTENT_LENGTH, length);
        }
        let resp = ep.get_response(req.body(body)).await;
        resp.into_body().into_string().await.unwrap()
    }

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn bodies_within_the_limit_pass_and_larger_ones_fail_while_reading() {
        assert_eq!(send(LONG, None, Body::from("0123456789")).await, "read 10");
        let chunks = stream::iter(["01234", "56789", "X"].map(Ok::<_, io::Error>));
        assert_eq!(
            send(LONG, None, Body::from_bytes_stream(chunks)).await,
            "limit: the request body is larger than 10 bytes"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_fails_before_any_read() {
        // the stream would never end: only the declared length can refuse it
        let endless = stream::repeat_with(|| Ok::<_, io::Error>(Bytes::from_static(b"x")));
        assert_eq!(
            send(LONG, Some("300000000"), Body::from_bytes_stream(endless)).await,
            "limit: the request body is larger than 10 bytes"
        );
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_at_the_read_timeout() {
        let stalled = stream::once(async { Ok::<_, io::Error>(Bytes::from_static(b"12")) })
            .chain(stream::pending());
        assert_eq!(
            send(
                Duration::from_millis(200),
                None,
                Body::from_bytes_stream(stalled)
            )
            .await,
            "limit: the request body did not arrive within 1 s"
        );
    }
}
