#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::api::apps::v1::StatefulSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn sts(generation: i64, observed: i64, pods: i32, ready: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            generation: Some(generation),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(StatefulSetStatus {
            observed_generation: Some(observed),
            replicas: pods,
            ready_replicas: Some(ready),
            ..StatefulSetStatus::default()
        }),
    }
}

fn observe<'a>(
    run_state: RunStateSpec,
    sts: Option<&'a StatefulSet>,
    previous: Option<&'a DBInstanceStatus>,
    now: i64,
) -> DBInstanceStatus {
    desired_status(&Observation {
        generation: Some(4),
        run_state,
        stateful_set: sts,
        blocker: None,
        previous,
        now: at(now),
        start_timeout: Duration::from_secs(600),
    })
}

fn condition<'a>(status: &'a DBInstanceStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn phase_table() {
    use RunStateSpec::*;
    let cases: &[(RunStateSpec, StatefulSet, Phase, &str, &str)] = &[
        (
            Running,
            sts(2, 2, 1, 1),
            Phase::Ready,
            "True",
            "DatabaseReady",
        ),
        (
            Running,
            sts(2, 2, 1, 0),
            Phase::Provisioning,
            "False",
            "Starting",
        ),
        (
            Running,
            sts(3, 2, 1, 1),
            Phase::Provisioning,
            "False",
            "Starting",
        ),
        (
            Running,
            sts(2, 2, 0, 0),
            Phase::Provisioning,
            "False",
            "Starting",
        ),
        (Stopped, sts(2, 2, 0, 0), Phase::Stopped, "False", "Stopped"),
        (Paused, sts(2, 2, 0, 0), Phase::Stopped, "False", "Paused"),
        (
            Stopped,
            sts(2, 2, 1, 1),
            Phase::Provisioning,
            "False",
            "Stopping",
        ),
        (
            Stopped,
            sts(3, 2, 0, 0),
            Phase::Provisioning,
            "False",
            "Stopping",
        ),
    ];
    for (state, set, phase, ready, reason) in cases {
        let s = observe(*state, Some(set), None, 1_000);
        assert_eq!(s.phase, Some(*phase), "{state:?} {:?}", set.status);
        let c = condition(&s, READY);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            (*ready, *reason),
            "{state:?}"
        );
        assert_eq!(c.observed_generation, Some(4));
        let p = condition(&s, PROVISIONED);
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("True", "ChildrenApplied")
        );
        assert_eq!(s.observed_generation, Some(4));
    }
}

#[test]
fn blockers() {
    let missing = desired_status(&Observation {
        generation: Some(1),
        run_state: RunStateSpec::Running,
        stateful_set: None,
        blocker: Some(Blocker::SecretMissing { name: "s".into() }),
        previous: None,
        now: at(5),
        start_timeout: Duration::from_secs(600),
    });
    assert_eq!(missing.phase, Some(Phase::Provisioning));
    assert_eq!(
        missing.message.as_deref(),
        Some("waiting for the credentials Secret s")
    );
    assert_eq!(condition(&missing, PROVISIONED).reason, "SecretMissing");
    assert_eq!(condition(&missing, PROVISIONED).status, "False");

    let invalid = desired_status(&Observation {
        blocker: Some(Blocker::InvalidSpec {
            message: "spec.engineConfig.x is not".into(),
        }),
        generation: Some(1),
        run_state: RunStateSpec::Running,
        stateful_set: None,
        previous: None,
        now: at(5),
        start_timeout: Duration::from_secs(600),
    });
    assert_eq!(invalid.phase, Some(Phase::Failed));
    assert_eq!(
        invalid.message.as_deref(),
        Some("spec.engineConfig.x is not")
    );
    assert_eq!(condition(&invalid, READY).reason, "InvalidSpec");
}

#[test]
fn an_unchanged_observation_yields_an_equal_status() {
    let set = sts(2, 2, 1, 1);
    let first = observe(RunStateSpec::Running, Some(&set), None, 1_000);
    let again = observe(RunStateSpec::Running, Some(&set), Some(&first), 2_000);
    assert_eq!(
        first, again,
        "transition times are kept, so no status write is needed"
    );
    assert_eq!(
        condition(&again, READY).last_transition_time,
        Time(at(1_000))
    );
}

#[test]
fn a_start_that_takes_too_long_is_failed_and_the_clock_starts_at_the_start() {
    let stopped = observe(RunStateSpec::Stopped, Some(&sts(2, 2, 0, 0)), None, 0);
    let starting = sts(3, 3, 1, 0);
    // Restarted long after being stopped: the wait is measured from the start, not the stop.
    let s1 = observe(
        RunStateSpec::Running,
        Some(&starting),
        Some(&stopped),
        100_000,
    );
    assert_eq!(s1.phase, Some(Phase::Provisioning));
    assert_eq!(
        condition(&s1, READY).last_transition_time,
        Time(at(100_000))
    );
    let s2 = observe(RunStateSpec::Running, Some(&starting), Some(&s1), 100_600);
    assert_eq!(
        s2.phase,
        Some(Phase::Provisioning),
        "exactly the timeout is still in time"
    );
    let s3 = observe(RunStateSpec::Running, Some(&starting), Some(&s2), 100_601);
    assert_eq!(s3.phase, Some(Phase::Failed));
    assert!(
        s3.message
            .as_deref()
            .unwrap()
            .contains("within 10 minute(s)")
    );
    let ready = observe(
        RunStateSpec::Running,
        Some(&sts(3, 3, 1, 1)),
        Some(&s3),
        100_700,
    );
    assert_eq!(
        ready.phase,
        Some(Phase::Ready),
        "Failed is retried and recovers"
    );
    assert_eq!(ready.ready_replicas, Some(1));
}
