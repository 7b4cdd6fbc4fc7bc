//! Per-request latency of the webhook's pure decision against a cluster of 2,000 live instances.
//!
//! `cargo bench -p dbtree-operator --bench webhook_review`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/webhook/support.rs"]
mod support;
#[path = "common/webhook_cluster.rs"]
mod webhook_cluster;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dbtree_operator::webhook::{parse, review};
use kube::core::admission::AdmissionReview;

use webhook_cluster::{Cluster, LIVE_INSTANCES};

fn reviews(c: &mut Criterion) {
    let cluster = Cluster::new();
    let snapshot = cluster.snapshot();
    let config = cluster.config();
    assert_eq!(snapshot.len(), LIVE_INSTANCES);
    let mut group = c.benchmark_group("review");
    for (label, body, allowed) in [
        ("create_allowed", cluster.create_body("newcomer"), true),
        (
            "create_over_limit",
            cluster.create_body(&cluster.busy_owner()),
            false,
        ),
        ("update_start", cluster.start_body(), true),
        ("delete", cluster.delete_body(), true),
    ] {
        let request = parse(&body).unwrap();
        assert_eq!(
            review(&request, &snapshot, &config).allowed,
            allowed,
            "{label}"
        );
        group.bench_function(format!("{label}/{LIVE_INSTANCES}"), |b| {
            b.iter(|| review(black_box(&request), black_box(&snapshot), &config));
        });
    }
    group.finish();

    // the server reads the reflector's store in place rather than a snapshot of it
    let store = cluster.store();
    let body = cluster.create_body("newcomer");
    let request = parse(&body).unwrap();
    assert!(review(&request, &store, &config).allowed);
    c.bench_function(
        &format!("review/create_allowed/{LIVE_INSTANCES}_in_store"),
        |b| {
            b.iter(|| review(black_box(&request), &store, &config));
        },
    );

    // everything the handler does per request: parse the body, decide, serialise the answer
    c.bench_function(&format!("handler/create_allowed/{LIVE_INSTANCES}"), |b| {
        b.iter(|| {
            let request = parse(black_box(&body)).unwrap();
            let review: AdmissionReview<_> = review(&request, &store, &config).into_review();
            serde_json::to_vec(&review).unwrap()
        });
    });
}

criterion_group!(benches, reviews);
criterion_main!(benches);
