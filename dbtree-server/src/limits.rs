//! What one client may ask of the HTTP server: how large and how slow a request body may be,
//! how long a connection may take to send its headers or stay idle, and how many live event
//! streams may be open (in all and per client address). Beyond a limit the client gets a
//! documented error, never an unbounded buffer or a held connection.

pub mod body;
pub mod streams;

use std::time::Duration;

/// The limits, each configurable (`config.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body accepted (default 64 KiB); counted while reading, never buffered
    /// beyond it.
    pub max_body_bytes: usize,
    /// Time allowed for a request body to arrive, from the end of its headers (default 30 s).
    pub body_read_timeout: Duration,
    /// Time allowed for a request's headers to arrive, from when the server starts reading
    /// them (default 10 s); on a kept-alive connection this is also how long it may sit idle
    /// between requests.
    pub header_read_timeout: Duration,
    /// A connection moving no bytes either way for this long is closed (default 60 s; event
    /// streams send a keep-alive every 15 s).
    pub idle_timeout: Duration,
    /// Live event streams in all (default 1,000).
    pub max_event_streams: u32,
    /// Live event streams per client address (default 20).
    pub max_event_streams_per_client: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            body_read_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_event_streams: 1_000,
            max_event_streams_per_client: 20,
        }
    }
}

/// A limit a request ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The body is larger than the server accepts.
    #[error("the request body is larger than {limit_bytes} bytes")]
    BodyTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {timeout_secs} s")]
    BodyTooSlow {
        /// The time allowed.
        timeout_secs: u64,
    },
    /// This client address already holds its share of event streams.
    #[error("this client already has {limit} live event streams open; close one first")]
    StreamsFromClient {
        /// Streams allowed per client address.
        limit: u32,
    },
    /// The server holds as many event streams as it serves.
    #[error("the server is serving its limit of {limit} live event streams; retry later")]
    Streams {
        /// Streams allowed in all.
        limit: u32,
    },
}
