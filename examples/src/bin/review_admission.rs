//! Enforcing dbtree's instance quota in your own cluster: the admission webhook's decision as a
//! plain function call, no cluster and no server needed.
//!
//! Builds `AdmissionReview`s the way the Kubernetes API server sends them for `DBInstance`
//! objects, reviews each against a snapshot of the live instances (what the webhook's reflector
//! cache holds), prints the answer and checks it. Exits non-zero if any answer is not the expected
//! one.
//!
//! `cargo run -p dbtree-examples --bin review-admission`

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use dbtree_adapters::kube::{
    DBInstance, DBInstanceSpec, EngineKind, ResourcesSpec, RunStateSpec, SecretRef,
};
use dbtree_core::instance::InstancePolicy;
use dbtree_operator::webhook::{Snapshot, WebhookConfig, parse, review};
use serde_json::{Value, json};

/// The account your platform creates instances with; it may name any owner.
const PLATFORM: &str = "system:serviceaccount:dbtree:dbtree-server";

/// A live instance, as the cache would hold it.
fn live(owner: &str, name: &str, node_port: i32, cpu_millis: i32, memory_mib: i32) -> DBInstance {
    let mut object = DBInstance::new(
        &format!("{owner}-{name}"),
        DBInstanceSpec {
            engine: EngineKind::Postgresql,
            preset: None,
            resources: ResourcesSpec {
                cpu_millis,
                memory_mib,
                disk_gib: 5,
            },
            owner: owner.to_owned(),
            instance_id: "7d1f0c52-3a9e-4b8f-9c2d-1e0f3a4b5c6d".to_owned(),
            display_name: name.to_owned(),
            node_port,
            run_state: RunStateSpec::Running,
            secret_ref: SecretRef {
                name: format!("{owner}-{name}-credentials"),
            },
            credentials_version: 0,
            engine_config: BTreeMap::new(),
            backup_schedule: None,
        },
    );
    object.metadata.namespace = Some(format!("team-{owner}"));
    object
}

/// The review the API server sends when `user` runs `kubectl apply` for a DBInstance.
fn create(user: &str, owner: &str, name: &str, node_port: i32, resources: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("review-{user}-{name}"),
            "kind": {"group": "dbtree.cloud", "version": "v1", "kind": "DBInstance"},
            "resource": {"group": "dbtree.cloud", "version": "v1", "resource": "dbinstances"},
            "name": name,
            "namespace": format!("team-{owner}"),
            "operation": "CREATE",
            "userInfo": {"username": user},
            "object": {
                "apiVersion": "dbtree.cloud/v1",
                "kind": "DBInstance",
                "metadata": {"name": name, "namespace": format!("team-{owner}")},
                "spec": {
                    "engine": "redis",
                    "resources": resources,
                    "owner": owner,
                    "instanceId": "0b9e4c1a-6f3d-4e2b-8a7c-5d4e3f2a1b0c",
                    "displayName": name,
                    "nodePort": node_port,
                    "runState": "Running",
                    "secretRef": {"name": format!("{name}-credentials")}
                }
            },
            "oldObject": null,
            "dryRun": false
        }
    })
}

fn small() -> Value {
    json!({"cpuMillis": 250, "memoryMib": 256, "diskGib": 2})
}

/// What a case must get: allowed, or denied with this code and these words in the message.
enum Expect {
    Allowed,
    Denied(u16, &'static str),
}

fn main() -> ExitCode {
    let config = WebhookConfig::new([PLATFORM], InstancePolicy::default());
    // the cluster: alice runs one instance, bob runs one big one on NodePort 30500
    let snapshot = Snapshot::new(vec![
        Arc::new(live("alice", "orders", 30400, 250, 512)),
        Arc::new(live("bob", "warehouse", 30500, 1000, 2048)),
    ]);
    // a moment later alice has a second one
    let mut fuller = vec![
        Arc::new(live("alice", "orders", 30400, 250, 512)),
        Arc::new(live("bob", "warehouse", 30500, 1000, 2048)),
    ];
    fuller.push(Arc::new(live("alice", "cache", 30401, 100, 128)));
    let fuller = Snapshot::new(fuller);

    let mut dry_run = create("carol", "carol", "sessions", 30600, small());
    dry_run["request"]["dryRun"] = json!(true);
    let mut delete = create("alice", "alice", "orders", 30400, small());
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["oldObject"] = delete["request"]["object"].take();

    let cases: Vec<(&str, Value, &Snapshot, Expect)> = vec![
        (
            "alice creates her second instance",
            create("alice", "alice", "cache", 30401, small()),
            &snapshot,
            Expect::Allowed,
        ),
        (
            "alice tries a third",
            create("alice", "alice", "search", 30402, small()),
            &fuller,
            Expect::Denied(403, "limit is 2"),
        ),
        (
            "carol asks for bob's NodePort",
            create("carol", "carol", "sessions", 30500, small()),
            &snapshot,
            Expect::Denied(409, "spec.nodePort 30500 is already used"),
        ),
        (
            "carol asks for more CPU than is left",
            create(
                "carol",
                "carol",
                "sessions",
                30600,
                json!({"cpuMillis": 500, "memoryMib": 512, "diskGib": 2}),
            ),
            &snapshot,
            Expect::Denied(403, "only 0.25 cores are free"),
        ),
        (
            "carol asks for 5 GiB of memory",
            create(
                "carol",
                "carol",
                "sessions",
                30600,
                json!({"cpuMillis": 250, "memoryMib": 5120, "diskGib": 2}),
            ),
            &snapshot,
            Expect::Denied(422, "spec.resources.memoryMib"),
        ),
        (
            "bob creates one in alice's name",
            create("bob", "alice", "borrowed", 30700, small()),
            &snapshot,
            Expect::Denied(403, "you can only create DBInstances you own"),
        ),
        (
            "the platform creates one for dave",
            create(PLATFORM, "dave", "ledger", 30800, small()),
            &snapshot,
            Expect::Allowed,
        ),
        ("carol's dry run", dry_run, &snapshot, Expect::Allowed),
        (
            "alice deletes one (object: null)",
            delete,
            &fuller,
            Expect::Allowed,
        ),
    ];

    let mut wrong = 0;
    for (what, body, snapshot, expect) in cases {
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let response = match parse(&body) {
            Ok(request) => review(&request, snapshot, &config),
            Err(rejection) => *rejection.response,
        };
        let outcome = if response.allowed {
            match &response.warnings {
                Some(w) => format!("allowed (warning: {})", w.join("; ")),
                None => "allowed".to_owned(),
            }
        } else {
            format!(
                "denied {}: {}",
                response.result.code, response.result.message
            )
        };
        println!("{what:<40} → {outcome}");
        let right = match expect {
            Expect::Allowed => response.allowed,
            Expect::Denied(code, words) => {
                !response.allowed
                    && response.result.code == code
                    && response.result.message.contains(words)
            }
        };
        if !right {
            eprintln!("  ✗ unexpected answer for: {what}");
            wrong += 1;
        }
    }
    if wrong == 0 {
        println!("\nall answers as expected");
        ExitCode::SUCCESS
    } else {
        eprintln!("\n{wrong} unexpected answers");
        ExitCode::FAILURE
    }
}
