//! The decision for CREATE, UPDATE and DELETE reviews: allowed, each denial, dry runs.

use dbtree_adapters::kube::RunStateSpec;
use dbtree_operator::webhook::{BACKUPS_NOT_IMPLEMENTED_WARNING, DRY_RUN_WARNING, Snapshot};
use kube::core::admission::AdmissionResponse;
use serde_json::{Value, json};

use super::support::{OWNER, Obj, fixture, run, set, snapshot};

fn assert_allowed(response: &AdmissionResponse) {
    assert!(
        response.allowed,
        "expected allowed, got {}: {}",
        response.result.code, response.result.message
    );
}

/// Asserts a denial with `code`, naming `field` (if any) and containing `words`.
fn assert_denied(response: &AdmissionResponse, code: u16, field: Option<&str>, words: &str) {
    assert!(!response.allowed, "expected a {code} denial, got allowed");
    assert_eq!(
        response.result.code, code,
        "message: {}",
        response.result.message
    );
    assert!(
        response.result.message.contains(words),
        "{:?} should contain {words:?}",
        response.result.message
    );
    let named = response
        .result
        .details
        .as_ref()
        .and_then(|d| d.causes.first())
        .map(|c| c.field.as_str());
    assert_eq!(named, field, "field of {:?}", response.result.message);
    if let (422, Some(field)) = (code, field) {
        assert!(
            response.result.message.contains(field),
            "the message names the field: {}",
            response.result.message
        );
    }
}

fn alice() -> Value {
    fixture("create_kubectl")
}

// ---- CREATE -------------------------------------------------------------------------------

#[test]
fn the_platform_creates_for_its_user() {
    let response = run(&fixture("create"), &Snapshot::default());
    assert_allowed(&response);
    assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response.warnings, None, "no warning outside a dry run");
}

#[test]
fn a_user_creates_for_themself_with_kubectl() {
    let others = [Obj::new("bob", "one", 30010), Obj::new("bob", "two", 30011)];
    assert_allowed(&run(&alice(), &snapshot(&others)));
}

#[test]
fn a_user_may_not_name_another_owner() {
    let mut review = alice();
    set(&mut review, "/request/object/spec/owner", json!("bob"));
    assert_denied(
        &run(&review, &Snapshot::default()),
        403,
        Some("spec.owner"),
        "you are \"alice\"",
    );
    // the platform's user ids are not theirs to use either
    set(&mut review, "/request/object/spec/owner", json!(OWNER));
    assert_denied(
        &run(&review, &Snapshot::default()),
        403,
        Some("spec.owner"),
        OWNER,
    );
}

#[test]
fn a_user_may_not_set_the_owner_label_to_someone_else() {
    let mut review = alice();
    set(
        &mut review,
        "/request/object/metadata/labels",
        json!({"dbtree.cloud/owner": "bob"}),
    );
    assert_denied(
        &run(&review, &Snapshot::default()),
        403,
        Some("metadata.labels[dbtree.cloud/owner]"),
        "\"bob\"",
    );
    set(
        &mut review,
        "/request/object/metadata/labels",
        json!({"dbtree.cloud/owner": "alice"}),
    );
    assert_allowed(&run(&review, &Snapshot::default()));
}

#[test]
fn the_platform_label_must_agree_with_the_owner() {
    let mut review = fixture("create");
    set(
        &mut review,
        "/request/object/metadata/labels/dbtree.cloud~1owner",
        json!("someone-else"),
    );
    assert_denied(
        &run(&review, &Snapshot::default()),
        422,
        Some("metadata.labels[dbtree.cloud/owner]"),
        "must agree",
    );
}

#[test]
fn invalid_specs_are_422_and_name_the_field() {
    let cases: &[(&str, Value, &str, &str)] = &[
        (
            "/request/object/spec/displayName",
            json!("My_DB"),
            "spec.displayName",
            "lower-case",
        ),
        (
            "/request/object/spec/displayName",
            json!("db"),
            "spec.displayName",
            "3 to 40",
        ),
        (
            "/request/object/spec/displayName",
            json!("-db"),
            "spec.displayName",
            "start and end",
        ),
        (
            "/request/object/spec/resources",
            json!({"cpuMillis": 100, "memoryMib": 256, "diskGib": 1}),
            "spec.resources",
            "tiny redis preset",
        ),
        (
            "/request/object/spec/nodePort",
            json!(29999),
            "spec.nodePort",
            "outside the NodePort range 30000-31999",
        ),
        (
            "/request/object/spec/nodePort",
            json!(32000),
            "spec.nodePort",
            "outside",
        ),
        (
            "/request/object/spec/nodePort",
            json!(30080),
            "spec.nodePort",
            "reserved",
        ),
        (
            "/request/object/spec/nodePort",
            json!(-1),
            "spec.nodePort",
            "outside",
        ),
        (
            "/request/object/spec/instanceId",
            json!("not-a-uuid"),
            "spec.instanceId",
            "UUID",
        ),
        (
            "/request/object/spec/secretRef",
            json!({"name": ""}),
            "spec.secretRef.name",
            "Secret",
        ),
    ];
    for (pointer, value, field, words) in cases {
        let mut review = fixture("create");
        set(&mut review, pointer, value.clone());
        assert_denied(&run(&review, &Snapshot::default()), 422, Some(field), words);
    }
}

#[test]
fn custom_resources_use_the_apis_bounds() {
    let cases: &[(i32, i32, i32, Option<&str>)] = &[
        (350, 768, 8, None),
        (100, 128, 1, None),
        (2000, 4096, 50, None),
        (50, 256, 1, Some("spec.resources.cpuMillis")),
        (2050, 256, 1, Some("spec.resources.cpuMillis")),
        (333, 256, 1, Some("spec.resources.cpuMillis")),
        (500, 127, 1, Some("spec.resources.memoryMib")),
        (500, 4097, 1, Some("spec.resources.memoryMib")),
        (500, 256, 0, Some("spec.resources.diskGib")),
        (500, 256, 51, Some("spec.resources.diskGib")),
    ];
    for (cpu, memory, disk, field) in cases {
        let mut review = alice();
        set(
            &mut review,
            "/request/object/spec/resources",
            json!({"cpuMillis": cpu, "memoryMib": memory, "diskGib": disk}),
        );
        // stopped, so that the default node's capacity (1.5 cores) does not interfere
        set(
            &mut review,
            "/request/object/spec/runState",
            json!("Stopped"),
        );
        let response = run(&review, &Snapshot::default());
        match field {
            None => assert_allowed(&response),
            Some(field) => assert_denied(&response, 422, Some(field), "must be"),
        }
    }
}

#[test]
fn a_third_live_instance_is_403() {
    let two = [
        Obj::new("alice", "one", 30010),
        Obj::new("alice", "two", 30011),
    ];
    assert_denied(
        &run(&alice(), &snapshot(&two)),
        403,
        Some("spec.owner"),
        "\"alice\" already has 2 live DBInstances and the limit is 2",
    );
    // stopped and paused instances are live: they still count
    let parked = [
        Obj::new("alice", "one", 30010).run_state(RunStateSpec::Stopped),
        Obj::new("alice", "two", 30011).run_state(RunStateSpec::Paused),
    ];
    assert_denied(
        &run(&alice(), &snapshot(&parked)),
        403,
        Some("spec.owner"),
        "limit is 2",
    );
    // one being deleted no longer counts
    let leaving = [
        Obj::new("alice", "one", 30010),
        Obj::new("alice", "two", 30011).deleting(),
    ];
    assert_allowed(&run(&alice(), &snapshot(&leaving)));
}

#[test]
fn a_taken_name_is_409() {
    let same_name = [Obj::new("alice", "analytics", 30010)];
    assert_denied(
        &run(&alice(), &snapshot(&same_name)),
        409,
        Some("spec.displayName"),
        "already has a live DBInstance named \"analytics\"",
    );
    // another owner's instance of the same name is fine
    assert_allowed(&run(
        &alice(),
        &snapshot(&[Obj::new("bob", "analytics", 30010)]),
    ));
}

#[test]
fn a_taken_node_port_is_409_without_naming_the_holder() {
    let holder = Obj::new("bob", "secret-project", 30500);
    let response = run(&alice(), &snapshot(std::slice::from_ref(&holder)));
    assert_denied(
        &response,
        409,
        Some("spec.nodePort"),
        "30500 is already used",
    );
    assert!(
        !response.result.message.contains("bob"),
        "{}",
        response.result.message
    );
    assert!(!response.result.message.contains("secret-project"));
    // a port stays taken until the old instance is gone
    assert_denied(
        &run(&alice(), &snapshot(&[holder.deleting()])),
        409,
        Some("spec.nodePort"),
        "already used",
    );
}

#[test]
fn over_capacity_is_403() {
    // the node has 1.5 cores and 6656 MiB for instances; alice asks 0.35 cores and 768 MiB
    let busy = [
        Obj::new("bob", "big", 30010).size(1000, 1024),
        Obj::new("carol", "big", 30011).size(200, 1024),
    ];
    assert_denied(
        &run(&alice(), &snapshot(&busy)),
        403,
        Some("spec.resources.cpuMillis"),
        "needs 0.35 cores of CPU and only 0.3 cores are free",
    );
    let memory = [
        Obj::new("bob", "big", 30010).size(100, 4096),
        Obj::new("carol", "big", 30011).size(100, 2000),
    ];
    assert_denied(
        &run(&alice(), &snapshot(&memory)),
        403,
        Some("spec.resources.memoryMib"),
        "needs 768 MiB of memory and only 560 MiB are free",
    );
    // stopped instances hold nothing; deleting ones still do
    let stopped = [Obj::new("bob", "big", 30010)
        .size(1500, 1024)
        .run_state(RunStateSpec::Stopped)];
    assert_allowed(&run(&alice(), &snapshot(&stopped)));
    let deleting = [Obj::new("bob", "big", 30010).size(1500, 1024).deleting()];
    assert_denied(
        &run(&alice(), &snapshot(&deleting)),
        403,
        Some("spec.resources.cpuMillis"),
        "no room",
    );
}

#[test]
fn a_stopped_instance_can_be_created_on_a_full_node() {
    let full = [Obj::new("bob", "big", 30010).size(1500, 1024)];
    let mut review = alice();
    set(
        &mut review,
        "/request/object/spec/runState",
        json!("Stopped"),
    );
    assert_allowed(&run(&review, &snapshot(&full)));
}

#[test]
fn a_dry_run_gets_the_same_decision_and_a_warning_when_allowed() {
    let mut review = alice();
    set(&mut review, "/request/dryRun", json!(true));
    let allowed = run(&review, &Snapshot::default());
    assert_allowed(&allowed);
    assert_eq!(allowed.warnings, Some(vec![DRY_RUN_WARNING.to_owned()]));
    let two = [
        Obj::new("alice", "one", 30010),
        Obj::new("alice", "two", 30011),
    ];
    let denied = run(&review, &snapshot(&two));
    let real = run(&alice(), &snapshot(&two));
    assert_denied(&denied, 403, Some("spec.owner"), "limit is 2");
    assert_eq!(
        denied.result, real.result,
        "a dry run is judged like the real thing"
    );
}

#[test]
fn a_backup_schedule_is_admitted_with_a_warning_that_backups_do_not_exist_yet() {
    let mut review = alice();
    set(
        &mut review,
        "/request/object/spec/backupSchedule",
        json!("0 3 * * *"),
    );
    let allowed = run(&review, &Snapshot::default());
    assert_allowed(&allowed);
    assert_eq!(
        allowed.warnings,
        Some(vec![BACKUPS_NOT_IMPLEMENTED_WARNING.to_owned()])
    );
    set(&mut review, "/request/dryRun", json!(true));
    assert_eq!(
        run(&review, &Snapshot::default()).warnings,
        Some(vec![
            DRY_RUN_WARNING.to_owned(),
            BACKUPS_NOT_IMPLEMENTED_WARNING.to_owned()
        ]),
        "both warnings on a dry run"
    );
    assert_eq!(
        run(&alice(), &Snapshot::default()).warnings,
        None,
        "no schedule, no warning"
    );
}

// ---- UPDATE -------------------------------------------------------------------------------

/// The object of `update_start.json` as the cache holds it (stopped).
fn orders() -> Obj {
    Obj::new(OWNER, "orders", 30002)
        .at(
            &format!("dbtree-user-{OWNER}"),
            "dbi-0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f",
        )
        .size(250, 512)
        .run_state(RunStateSpec::Stopped)
}

#[test]
fn starting_checks_capacity_without_counting_itself() {
    let review = fixture("update_start");
    let room = [orders(), Obj::new("bob", "big", 30010).size(1250, 1024)];
    assert_allowed(&run(&review, &snapshot(&room)));
    let full = [orders(), Obj::new("bob", "big", 30010).size(1300, 1024)];
    assert_denied(
        &run(&review, &snapshot(&full)),
        403,
        Some("spec.resources.cpuMillis"),
        "needs 0.25 cores",
    );
    // its own port and name are not "taken" by itself, and the owner's limit does not apply
    let with_siblings = [
        orders(),
        Obj::new(OWNER, "a", 30020),
        Obj::new(OWNER, "b", 30021),
    ];
    assert_allowed(&run(&review, &snapshot(&with_siblings)));
}

#[test]
fn immutable_fields_are_422() {
    let cases: &[(&str, Value, &str)] = &[
        (
            "/request/object/spec/engine",
            json!("mongodb"),
            "spec.engine",
        ),
        (
            "/request/object/spec/instanceId",
            json!("11111111-2222-4333-8444-555555555555"),
            "spec.instanceId",
        ),
        (
            "/request/object/spec/nodePort",
            json!(30003),
            "spec.nodePort",
        ),
        (
            "/request/object/spec/owner",
            json!("11111111-2222-4333-8444-555555555555"),
            "spec.owner",
        ),
    ];
    for (pointer, value, field) in cases {
        let mut review = fixture("update_start");
        set(&mut review, pointer, value.clone());
        assert_denied(
            &run(&review, &snapshot(&[orders()])),
            422,
            Some(field),
            "is immutable",
        );
    }
    let mut shrink = fixture("update_start");
    set(&mut shrink, "/request/object/spec/preset", Value::Null);
    set(
        &mut shrink,
        "/request/object/spec/resources/diskGib",
        json!(4),
    );
    assert_denied(
        &run(&shrink, &snapshot(&[orders()])),
        422,
        Some("spec.resources.diskGib"),
        "cannot shrink",
    );
}

#[test]
fn an_update_is_validated_like_a_create() {
    let mut review = fixture("update_start");
    set(&mut review, "/request/object/spec/preset", Value::Null);
    set(
        &mut review,
        "/request/object/spec/resources",
        json!({"cpuMillis": 250, "memoryMib": 8192, "diskGib": 5}),
    );
    assert_denied(
        &run(&review, &snapshot(&[orders()])),
        422,
        Some("spec.resources.memoryMib"),
        "between 128 and 4096",
    );
}

#[test]
fn only_the_owner_or_the_platform_changes_a_spec() {
    let mut review = fixture("update_start");
    set(&mut review, "/request/userInfo/username", json!("mallory"));
    assert_denied(
        &run(&review, &snapshot(&[orders()])),
        403,
        None,
        "may not change its spec",
    );
}

#[test]
fn metadata_only_updates_pass_even_on_a_full_node() {
    // the operator adding a finalizer: same spec, different metadata, not a trusted account
    let mut review = fixture("update_start");
    let old = review.pointer("/request/oldObject/spec").cloned().unwrap();
    set(&mut review, "/request/object/spec", old);
    set(
        &mut review,
        "/request/userInfo/username",
        json!("system:serviceaccount:dbtree:dbtree-operator"),
    );
    set(
        &mut review,
        "/request/object/metadata/finalizers",
        json!([]),
    );
    let full = [orders(), Obj::new("bob", "big", 30010).size(1500, 6656)];
    assert_allowed(&run(&review, &snapshot(&full)));
}

#[test]
fn status_updates_pass() {
    let mut review = fixture("update_start");
    set(&mut review, "/request/subResource", json!("status"));
    set(
        &mut review,
        "/request/userInfo/username",
        json!("system:serviceaccount:dbtree:dbtree-operator"),
    );
    let full = [orders(), Obj::new("bob", "big", 30010).size(1500, 6656)];
    assert_allowed(&run(&review, &snapshot(&full)));
}

#[test]
fn shrinking_a_running_instance_needs_no_room() {
    let mut review = fixture("update_start");
    for side in ["object", "oldObject"] {
        set(
            &mut review,
            &format!("/request/{side}/spec/preset"),
            Value::Null,
        );
        set(
            &mut review,
            &format!("/request/{side}/spec/runState"),
            json!("Running"),
        );
    }
    set(
        &mut review,
        "/request/object/spec/resources",
        json!({"cpuMillis": 200, "memoryMib": 512, "diskGib": 5}),
    );
    let overcommitted = [
        orders().run_state(RunStateSpec::Running),
        Obj::new("bob", "big", 30010).size(1500, 6656),
    ];
    assert_allowed(&run(&review, &snapshot(&overcommitted)));
    // growing it on the same node is refused
    set(
        &mut review,
        "/request/object/spec/resources",
        json!({"cpuMillis": 300, "memoryMib": 512, "diskGib": 5}),
    );
    assert_denied(
        &run(&review, &snapshot(&overcommitted)),
        403,
        Some("spec.resources.cpuMillis"),
        "no room",
    );
}

// ---- DELETE -------------------------------------------------------------------------------

#[test]
fn delete_with_a_null_object_is_allowed() {
    let review = fixture("delete");
    assert!(review.pointer("/request/object").unwrap().is_null());
    let response = run(&review, &snapshot(&[Obj::new("alice", "analytics", 30500)]));
    assert_allowed(&response);
    assert_eq!(response.uid, "d15ea5e0-0000-4000-8000-00000000dead");
}

#[test]
fn the_answer_is_an_admission_review_the_api_server_reads() {
    let mut review = fixture("create");
    set(&mut review, "/request/object/spec/nodePort", json!(29999));
    let response = run(&review, &Snapshot::default());
    let answer = serde_json::to_value(response.into_review()).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 422);
    assert_eq!(answer["response"]["status"]["reason"], "Invalid");
    assert_eq!(
        answer["response"]["status"]["details"]["causes"][0]["field"],
        "spec.nodePort"
    );
}

#[test]
fn the_store_read_in_place_decides_like_a_snapshot_of_it() {
    use dbtree_operator::webhook::{parse, review};
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    let objects = [
        Obj::new("alice", "one", 30010),
        Obj::new("alice", "two", 30011),
        Obj::new("bob", "big", 30600).size(900, 1024),
    ];
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for o in &objects {
        writer.apply_watcher_event(&Event::InitApply(o.build()));
    }
    writer.apply_watcher_event(&Event::InitDone);
    let config = super::support::config();
    let mut carol = alice();
    set(&mut carol, "/request/userInfo/username", json!("carol"));
    set(&mut carol, "/request/object/spec/owner", json!("carol"));
    for (review_json, code) in [(alice(), 403), (carol, 0)] {
        let request = parse(&serde_json::to_vec(&review_json).unwrap()).unwrap();
        let from_store = review(&request, &store, &config);
        let from_snapshot = review(&request, &snapshot(&objects), &config);
        assert_eq!(from_store, from_snapshot);
        assert_eq!(
            from_store.result.code, code,
            "{}",
            from_store.result.message
        );
    }
}
