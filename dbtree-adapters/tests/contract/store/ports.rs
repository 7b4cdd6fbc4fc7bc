//! Contract: the whole NodePort range under 32 concurrent allocators.

use std::collections::BTreeSet;

use dbtree_core::boundary::ReservePortError;
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{NodePortError, NodePortPolicy};

use crate::contract::backends::StoreEnv;
use crate::contract::fixtures::id_bytes;

pub(crate) async fn two_thousand_reservations_from_32_tasks_then_exhausted(env: &StoreEnv) {
    // the whole 30000-31999 range, nothing reserved: exactly 2,000 ports
    let policy = NodePortPolicy {
        first: 30000,
        last: 31999,
        reserved: BTreeSet::new(),
    };
    let mut tasks = Vec::new();
    for task in 0..32u64 {
        let store = if task % 2 == 0 {
            env.store.clone()
        } else {
            env.second.clone()
        };
        let policy = policy.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut exhausted = 0;
            for n in 0..63u64 {
                let id = InstanceId::from_random_bytes(id_bytes(100_000 + task * 1000 + n));
                match store.reserve_node_port(id, &policy).await {
                    Ok(port) => got.push(port.get()),
                    Err(ReservePortError::Exhausted(NodePortError::Exhausted { .. })) => {
                        exhausted += 1
                    }
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            (got, exhausted)
        }));
    }
    let mut ports = BTreeSet::new();
    let mut exhausted = 0;
    for t in tasks {
        let (got, e) = t.await.unwrap();
        for p in got {
            assert!(ports.insert(p), "port {p} given twice");
        }
        exhausted += e;
    }
    assert_eq!(ports.len(), 2000);
    assert_eq!(ports.first().copied(), Some(30000));
    assert_eq!(ports.last().copied(), Some(31999));
    assert_eq!(
        exhausted,
        32 * 63 - 2000,
        "every further reservation is a clean 'exhausted'"
    );
    let one_more = env
        .store
        .reserve_node_port(InstanceId::from_random_bytes([0xee; 16]), &policy)
        .await;
    assert!(matches!(one_more, Err(ReservePortError::Exhausted(_))));
    assert_eq!(env.store.node_ports().await.unwrap().len(), 2000);
}
