//! Live event streams counted in all and per client address: a slot is taken when a stream
//! opens and given back when the stream is dropped (the client went away or the server stops).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use dbtree_core::boundary::client_block;

use super::{HttpLimits, LimitExceeded};

/// The open streams.
#[derive(Clone, Debug)]
pub struct StreamSlots {
    inner: Arc<Mutex<Open>>,
    max_total: u32,
    max_per_client: u32,
}

#[derive(Debug, Default)]
struct Open {
    total: u32,
    per_client: HashMap<String, u32>,
}

/// One open stream's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    inner: Arc<Mutex<Open>>,
    client: String,
}

impl StreamSlots {
    /// Empty, with the limits' caps.
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            inner: Arc::default(),
            max_total: limits.max_event_streams,
            max_per_client: limits.max_event_streams_per_client,
        }
    }

    /// Takes a slot for a stream to `client` (an unknown address counts as one client).
    ///
    /// # Errors
    /// [`LimitExceeded::Streams`] when every slot is taken, then
    /// [`LimitExceeded::StreamsFromClient`] when this client holds its share.
    pub fn acquire(&self, client: Option<IpAddr>) -> Result<StreamSlot, LimitExceeded> {
        let client = client.map_or_else(|| "unknown".to_owned(), client_block);
        let mut open = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(LimitExceeded::Streams {
                limit: self.max_total,
            });
        }
        let mine = open.per_client.entry(client.clone()).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(LimitExceeded::StreamsFromClient {
                limit: self.max_per_client,
            });
        }
        *mine += 1;
        open.total += 1;
        Ok(StreamSlot {
            inner: self.inner.clone(),
            client,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> u32 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(mine) = open.per_client.get_mut(&self.client) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn slots(total: u32, per_client: u32) -> StreamSlots {
        StreamSlots::new(&HttpLimits {
            max_event_streams: total,
            max_event_streams_per_client: per_client,
            ..HttpLimits::default()
        })
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)))
    }

    #[test]
    fn per_client_then_total_and_slots_come_back_when_dropped() {
        let s = slots(3, 2);
        let a1 = s.acquire(ip(1)).unwrap();
        let _a2 = s.acquire(ip(1)).unwrap();
        assert_eq!(
            s.acquire(ip(1)).unwrap_err(),
            LimitExceeded::StreamsFromClient { limit: 2 }
        );
        let _b1 = s.acquire(ip(2)).unwrap();
        assert_eq!(
            s.acquire(ip(3)).unwrap_err(),
            LimitExceeded::Streams { limit: 3 }
        );
        assert_eq!(s.open(), 3);
        drop(a1);
        assert_eq!(s.open(), 2);
        let _c1 = s.acquire(ip(3)).unwrap();
        assert_eq!(
            s.acquire(ip(1)).unwrap_err(),
            LimitExceeded::Streams { limit: 3 }
        );
    }
}
