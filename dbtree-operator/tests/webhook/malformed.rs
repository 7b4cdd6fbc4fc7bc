//! Bodies that cannot be reviewed get a clear refusal, never a panic; and every refusal carries
//! its documented code.

use dbtree_core::instance::{CapacityExceeded, Scarce};
use dbtree_operator::webhook::{Refusal, Snapshot, parse};
use serde_json::{Value, json};

use super::support::{fixture, run, set};

fn rejected(body: &[u8]) -> (u16, kube::core::admission::AdmissionResponse) {
    match parse(body) {
        Ok(request) => panic!("parsed {:?} {:?}", request.operation, request.name),
        Err(r) => (r.http_status, *r.response),
    }
}

#[test]
fn a_body_that_is_not_an_admission_review_is_a_400() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "not an AdmissionReview"),
        (b"{not json", "not an AdmissionReview"),
        (b"[1, 2, 3]", "not an AdmissionReview"),
        (&[0xff, 0xfe, 0x00], "not an AdmissionReview"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            "carries no request",
        ),
    ];
    for (body, words) in cases {
        let (http_status, response) = rejected(body);
        assert_eq!(http_status, 400, "{body:?}");
        assert!(!response.allowed);
        assert_eq!(response.result.code, 400);
        assert!(
            response.result.message.contains(words),
            "{:?}: {}",
            body,
            response.result.message
        );
    }
}

#[test]
fn a_review_of_something_else_is_refused_by_uid() {
    let body = serde_json::to_vec(&fixture("pod")).unwrap();
    let (http_status, response) = rejected(&body);
    assert_eq!(
        http_status, 200,
        "the API server reads the denial from the body"
    );
    assert_eq!(response.uid, "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4");
    assert!(!response.allowed);
    assert_eq!(response.result.code, 400);
    assert!(
        response.result.message.contains("not /v1 Pod"),
        "{}",
        response.result.message
    );
}

#[test]
fn a_dbinstance_that_does_not_parse_is_refused_by_uid() {
    let cases: &[(&str, Value, &str)] = &[
        (
            "/request/object/spec/engine",
            json!("mysql"),
            "unknown variant `mysql`",
        ),
        (
            "/request/object/spec/nodePort",
            json!("30001"),
            "invalid type",
        ),
        (
            "/request/object/spec/runState",
            json!("running"),
            "unknown variant `running`",
        ),
        (
            "/request/object/spec/resources/cpuMillis",
            json!(1e12),
            "invalid",
        ),
    ];
    for (pointer, value, words) in cases {
        let mut review = fixture("create");
        set(&mut review, pointer, value.clone());
        let (http_status, response) = rejected(&serde_json::to_vec(&review).unwrap());
        assert_eq!(http_status, 200);
        assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response.result.code, 400);
        assert!(
            response.result.message.contains("not a valid DBInstance")
                && response.result.message.contains(words),
            "{pointer}: {}",
            response.result.message
        );
    }
}

#[test]
fn create_and_update_without_their_objects_are_refused() {
    let mut create = fixture("create");
    set(&mut create, "/request/object", Value::Null);
    let response = run(&create, &Snapshot::default());
    assert!(!response.allowed);
    assert_eq!(response.result.code, 400);
    assert!(response.result.message.contains("request.object"));

    let mut update = fixture("update_start");
    set(&mut update, "/request/oldObject", Value::Null);
    let response = run(&update, &Snapshot::default());
    assert!(!response.allowed);
    assert_eq!(response.result.code, 400);
    assert!(response.result.message.contains("request.oldObject"));
}

#[test]
fn every_refusal_has_its_code_and_reason() {
    let capacity = CapacityExceeded {
        resource: Scarce::Memory,
        requested: 512,
        free: 100,
    };
    let s = String::new;
    let table: Vec<(Refusal, u16, &str, Option<&str>)> = vec![
        (Refusal::Malformed { reason: s() }, 400, "BadRequest", None),
        (
            Refusal::OwnerNotRequester {
                field: "spec.owner",
                owner: s(),
                user: s(),
            },
            403,
            "Forbidden",
            Some("spec.owner"),
        ),
        (
            Refusal::NotTheOwner {
                owner: s(),
                user: s(),
            },
            403,
            "Forbidden",
            None,
        ),
        (
            Refusal::InstanceLimit {
                owner: s(),
                used: 2,
                limit: 2,
            },
            403,
            "Forbidden",
            Some("spec.owner"),
        ),
        (
            Refusal::Capacity(capacity),
            403,
            "Forbidden",
            Some("spec.resources.memoryMib"),
        ),
        (
            Refusal::NameTaken {
                owner: s(),
                name: s(),
            },
            409,
            "Conflict",
            Some("spec.displayName"),
        ),
        (
            Refusal::NodePortTaken { port: 30001 },
            409,
            "Conflict",
            Some("spec.nodePort"),
        ),
        (
            Refusal::Invalid {
                field: "spec.x".to_owned(),
                message: s(),
            },
            422,
            "Invalid",
            Some("spec.x"),
        ),
        (
            Refusal::Immutable {
                field: "spec.engine",
                old: s(),
                new: s(),
            },
            422,
            "Invalid",
            Some("spec.engine"),
        ),
        (Refusal::NotReady, 503, "ServiceUnavailable", None),
    ];
    for (refusal, code, reason, field) in table {
        assert_eq!(refusal.code(), code, "{refusal:?}");
        let status = refusal.status();
        assert_eq!(status.code, code);
        assert_eq!(status.reason, reason, "{refusal:?}");
        assert_eq!(status.message, refusal.to_string());
        let named = status
            .details
            .as_ref()
            .and_then(|d| d.causes.first())
            .map(|c| c.field.as_str());
        assert_eq!(named, field, "{refusal:?}");
    }
}
