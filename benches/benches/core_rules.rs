//! Criterion benchmarks of the pure rules on their hot paths.

use std::collections::BTreeSet;
use std::hint::black_box;

use chrono::{TimeDelta, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use dbtree_core::billing::{BillingDecision, BillingPolicy, BillingSnapshot, decide};
use dbtree_core::harvest::{Click, ClickChallenge};
use dbtree_core::instance::{
    Engine, InstanceSpec, InstanceStatus, MilliCpu, NodePortPolicy, PresetSize, Resources, price,
};
use dbtree_core::lemons::Lemons;

fn pricing(c: &mut Criterion) {
    let preset = InstanceSpec::Preset {
        engine: Engine::Postgresql,
        size: PresetSize::Medium,
    };
    let custom = InstanceSpec::Custom {
        engine: Engine::Mongodb,
        resources: Resources {
            cpu: MilliCpu(1250),
            memory_mib: 3000,
            disk_gib: 37,
        },
    };
    c.bench_function("price/preset", |b| b.iter(|| price(black_box(&preset))));
    c.bench_function("price/custom", |b| b.iter(|| price(black_box(&custom))));
}

fn click_hit_test(c: &mut Criterion) {
    let challenge = ClickChallenge {
        window_ms: 5000,
        period_ms: 3000,
        fx: 2,
        fy: 3,
        phase: 1.3,
        radius: 0.08,
        hit_tolerance: 1.1,
        lag_allowance_ms: 120,
    };
    let (x, y) = challenge.centre_at(2345.0);
    let click = Click {
        click_offset_ms: 2345,
        x,
        y,
    };
    c.bench_function("click/judge", |b| {
        b.iter(|| challenge.judge(black_box(&click)))
    });
}

fn node_port_allocation(c: &mut Criterion) {
    let policy = NodePortPolicy::default();
    // every allocatable port but the last is taken: the worst case
    let taken: BTreeSet<u16> = (30000..31999).filter(|p| *p != 30080).collect();
    assert_eq!(taken.len(), 1998);
    c.bench_function("node_port/last_free_port_1998_taken", |b| {
        b.iter(|| policy.lowest_free(black_box(&taken)))
    });
    // the figure: 1,999 of the range's 2,000 ports held (the reserved 30080 among them,
    // as a cluster may report it), one left at the top
    let held: BTreeSet<u16> = (30000..31999).collect();
    assert_eq!(held.len(), 1999);
    assert_eq!(policy.lowest_free(&held).map(|p| p.0), Ok(31999));
    c.bench_function("node_port/last_free_port_1999_taken", |b| {
        b.iter(|| policy.lowest_free(black_box(&held)))
    });
    c.bench_function("node_port/exhausted_all_taken", |b| {
        let full: BTreeSet<u16> = (30000..=31999).collect();
        b.iter(|| policy.lowest_free(black_box(&full)))
    });
}

fn billing_decisions(c: &mut Criterion) {
    let now = Utc
        .with_ymd_and_hms(2026, 7, 1, 12, 0, 5)
        .single()
        .unwrap_or_default();
    let policy = BillingPolicy::default();
    let snapshots: Vec<BillingSnapshot> = (0..1000)
        .map(|i| BillingSnapshot {
            status: if i % 3 == 0 {
                InstanceStatus::Paused
            } else {
                InstanceStatus::Running
            },
            hourly_cost: Lemons::new(1 + i % 5),
            balance: Lemons::new(i % 7),
            paused_at: Some(now - TimeDelta::minutes(i64::from(i % 120))),
            last_billed_hour: None,
        })
        .collect();
    c.bench_function("billing/decide_1000", |b| {
        b.iter(|| {
            snapshots
                .iter()
                .filter(|s| {
                    matches!(
                        decide(black_box(s), now, &policy),
                        BillingDecision::Charge { .. }
                    )
                })
                .count()
        })
    });
}

criterion_group!(
    benches,
    pricing,
    click_hit_test,
    node_port_allocation,
    billing_decisions
);
criterion_main!(benches);
