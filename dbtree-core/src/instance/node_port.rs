//! NodePorts: the range, the reserved ports, and lowest-free allocation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A TCP port on the node through which an instance is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodePort(pub u16);

impl NodePort {
    /// The port number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for NodePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which ports instances may get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePortPolicy {
    /// First port of the range (default 30000).
    pub first: u16,
    /// Last port of the range, inclusive (default 31999).
    pub last: u16,
    /// Ports in the range that are never handed out (default {30080}, the API's own Service).
    pub reserved: BTreeSet<u16>,
}

impl Default for NodePortPolicy {
    fn default() -> Self {
        Self {
            first: 30000,
            last: 31999,
            reserved: [30080].into(),
        }
    }
}

/// A port that may not be used, or no port left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodePortError {
    /// Outside the range.
    #[error("NodePort {port} is outside {first}-{last}")]
    OutOfRange {
        /// The port.
        port: u16,
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// One of the reserved ports.
    #[error("NodePort {port} is reserved")]
    Reserved {
        /// The port.
        port: u16,
    },
    /// Every port of the range is taken.
    #[error("every NodePort in {first}-{last} is taken")]
    Exhausted {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
}

impl NodePortPolicy {
    /// Whether `port` may be handed out.
    ///
    /// # Errors
    /// [`NodePortError::OutOfRange`] or [`NodePortError::Reserved`].
    pub fn check(&self, port: u16) -> Result<NodePort, NodePortError> {
        if !(self.first..=self.last).contains(&port) {
            return Err(NodePortError::OutOfRange {
                port,
                first: self.first,
                last: self.last,
            });
        }
        if self.reserved.contains(&port) {
            return Err(NodePortError::Reserved { port });
        }
        Ok(NodePort(port))
    }

    /// How many ports can be handed out in total.
    pub fn allocatable(&self) -> usize {
        (self.first..=self.last)
            .filter(|p| !self.reserved.contains(p))
            .count()
    }

    /// The lowest port that is neither reserved nor in `taken`.
    ///
    /// # Errors
    /// [`NodePortError::Exhausted`] if there is none.
    pub fn lowest_free(&self, taken: &BTreeSet<u16>) -> Result<NodePort, NodePortError> {
        let mut taken_in_range = taken.range(self.first..=self.last).peekable();
        for port in self.first..=self.last {
            // walk both sequences together: O(range) without a lookup per port
            while taken_in_range.next_if(|t| **t < port).is_some() {}
            if taken_in_range.next_if_eq(&&port).is_some() || self.reserved.contains(&port) {
                continue;
            }
            return Ok(NodePort(port));
        }
        Err(NodePortError::Exhausted {
            first: self.first,
            last: self.last,
        })
    }
}

/// Ports found taken on the host by something that is not an instance (another program
/// listens there): held aside until a moment, so the allocator skips them, then tried again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusyPorts {
    until: BTreeMap<u16, DateTime<Utc>>,
}

impl BusyPorts {
    /// Holds `port` aside until `until` (a later hold of the same port extends it).
    pub fn hold(&mut self, port: NodePort, until: DateTime<Utc>) {
        let entry = self.until.entry(port.get()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// The ports held aside at `now`; holds that have ended are forgotten.
    pub fn held(&mut self, now: DateTime<Utc>) -> BTreeSet<u16> {
        self.until.retain(|_, until| *until > now);
        self.until.keys().copied().collect()
    }

    /// `policy` with the ports held aside at `now` added to its reserved ports.
    pub fn policy_without_held(
        &mut self,
        policy: &NodePortPolicy,
        now: DateTime<Utc>,
    ) -> NodePortPolicy {
        let mut policy = policy.clone();
        policy.reserved.extend(self.held(now));
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ports_are_skipped_until_their_hold_ends() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let minutes = chrono::TimeDelta::minutes;
        let mut busy = BusyPorts::default();
        busy.hold(NodePort(30000), t0 + minutes(10));
        busy.hold(NodePort(30000), t0 + minutes(5));
        let p = busy.policy_without_held(&NodePortPolicy::default(), t0);
        assert_eq!(p.lowest_free(&BTreeSet::new()), Ok(NodePort(30001)));
        assert!(
            p.reserved.contains(&30080),
            "the configured ports stay reserved"
        );
        assert_eq!(busy.held(t0 + minutes(9)), BTreeSet::from([30000]));
        assert!(
            busy.held(t0 + minutes(10)).is_empty(),
            "retried once the hold ends"
        );
        let p = busy.policy_without_held(&NodePortPolicy::default(), t0 + minutes(10));
        assert_eq!(p.lowest_free(&BTreeSet::new()), Ok(NodePort(30000)));
    }

    #[test]
    fn range_and_reserved_edges() {
        let p = NodePortPolicy::default();
        assert_eq!(p.check(30079), Ok(NodePort(30079)));
        assert_eq!(p.check(30080), Err(NodePortError::Reserved { port: 30080 }));
        assert_eq!(p.check(30081), Ok(NodePort(30081)));
        assert_eq!(
            p.check(29999),
            Err(NodePortError::OutOfRange {
                port: 29999,
                first: 30000,
                last: 31999
            })
        );
        assert_eq!(
            p.check(32000),
            Err(NodePortError::OutOfRange {
                port: 32000,
                first: 30000,
                last: 31999
            })
        );
        assert_eq!(p.allocatable(), 1999);
    }

    #[test]
    fn lowest_free_skips_taken_and_reserved() {
        let p = NodePortPolicy::default();
        assert_eq!(p.lowest_free(&BTreeSet::new()), Ok(NodePort(30000)));
        let taken: BTreeSet<u16> = (30000..=30079).collect();
        assert_eq!(p.lowest_free(&taken), Ok(NodePort(30081)));
        let mut taken: BTreeSet<u16> = (30000..=31999).filter(|x| *x != 30080).collect();
        taken.remove(&31999);
        assert_eq!(
            p.lowest_free(&taken),
            Ok(NodePort(31999)),
            "the last free port"
        );
        taken.insert(31999);
        assert_eq!(
            p.lowest_free(&taken),
            Err(NodePortError::Exhausted {
                first: 30000,
                last: 31999
            })
        );
        // ports outside the range in `taken` do not matter
        let odd: BTreeSet<u16> = [80, 30000, 40000].into();
        assert_eq!(p.lowest_free(&odd), Ok(NodePort(30001)));
    }
}
