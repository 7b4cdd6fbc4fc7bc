//! Shared by the webhook tests and benches: fixtures, a snapshot builder, and a throwaway PKI.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use dbtree_adapters::kube::{
    DBInstance, DBInstanceSpec, DBInstanceStatus, EngineKind, Phase, ResourcesSpec, RunStateSpec,
    SecretRef,
};
use dbtree_core::instance::InstancePolicy;
use dbtree_operator::webhook::{Snapshot, WebhookConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::admission::AdmissionResponse;
use serde_json::Value;

/// The platform's service account, trusted to name owners.
pub(crate) const PLATFORM: &str = "system:serviceaccount:dbtree:dbtree-server";
/// The owner in `create.json` and `update_start.json`.
pub(crate) const OWNER: &str = "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4e";

/// A fixture from `tests/webhook/fixtures`.
pub(crate) fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/webhook/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sets the value at a JSON pointer (creating nothing: the parent must exist).
pub(crate) fn set(review: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let target = review
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the fixture"));
    match target {
        Value::Object(map) => {
            map.insert(key.replace("~1", "/"), value);
        }
        other => panic!("{parent} is not an object: {other}"),
    }
}

/// The configuration the tests use: the platform account is trusted, the product's policy.
pub(crate) fn config() -> WebhookConfig {
    WebhookConfig::new([PLATFORM], InstancePolicy::default())
}

/// A `DBInstance` as the cache would hold it.
#[derive(Clone, Debug)]
pub(crate) struct Obj {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) owner: String,
    pub(crate) display_name: String,
    pub(crate) engine: EngineKind,
    pub(crate) cpu_millis: i32,
    pub(crate) memory_mib: i32,
    pub(crate) node_port: i32,
    pub(crate) run_state: RunStateSpec,
    pub(crate) phase: Option<Phase>,
    pub(crate) deleting: bool,
}

impl Obj {
    /// A running custom PostgreSQL instance of `owner` named `display_name` on `node_port`.
    pub(crate) fn new(owner: &str, display_name: &str, node_port: i32) -> Obj {
        Obj {
            namespace: format!("ns-{owner}"),
            name: format!("dbi-{owner}-{display_name}"),
            owner: owner.to_owned(),
            display_name: display_name.to_owned(),
            engine: EngineKind::Postgresql,
            cpu_millis: 100,
            memory_mib: 256,
            node_port,
            run_state: RunStateSpec::Running,
            phase: Some(Phase::Ready),
            deleting: false,
        }
    }

    pub(crate) fn size(mut self, cpu_millis: i32, memory_mib: i32) -> Obj {
        self.cpu_millis = cpu_millis;
        self.memory_mib = memory_mib;
        self
    }

    pub(crate) fn run_state(mut self, run_state: RunStateSpec) -> Obj {
        self.run_state = run_state;
        self
    }

    pub(crate) fn deleting(mut self) -> Obj {
        self.deleting = true;
        self
    }

    pub(crate) fn at(mut self, namespace: &str, name: &str) -> Obj {
        self.namespace = namespace.to_owned();
        self.name = name.to_owned();
        self
    }

    pub(crate) fn build(&self) -> DBInstance {
        let mut o = DBInstance::new(
            &self.name,
            DBInstanceSpec {
                engine: self.engine,
                preset: None,
                resources: ResourcesSpec {
                    cpu_millis: self.cpu_millis,
                    memory_mib: self.memory_mib,
                    disk_gib: 5,
                },
                owner: self.owner.clone(),
                instance_id: "00000000-0000-4000-8000-000000000000".to_owned(),
                display_name: self.display_name.clone(),
                node_port: self.node_port,
                run_state: self.run_state,
                secret_ref: SecretRef {
                    name: format!("{}-credentials", self.name),
                },
                credentials_version: 0,
                engine_config: BTreeMap::new(),
                backup_schedule: None,
            },
        );
        o.metadata.namespace = Some(self.namespace.clone());
        if self.deleting {
            o.metadata.deletion_timestamp = Some(Time(Default::default()));
        }
        o.status = Some(DBInstanceStatus {
            phase: self.phase,
            ..DBInstanceStatus::default()
        });
        o
    }
}

/// A snapshot of these objects.
pub(crate) fn snapshot(objects: &[Obj]) -> Snapshot {
    Snapshot::new(objects.iter().map(|o| Arc::new(o.build())).collect())
}

/// Parses `review` as the server does and reviews it.
pub(crate) fn run(review: &Value, snapshot: &Snapshot) -> AdmissionResponse {
    let body = serde_json::to_vec(review).unwrap_or_default();
    match dbtree_operator::webhook::parse(&body) {
        Ok(request) => dbtree_operator::webhook::review(&request, snapshot, &config()),
        Err(rejection) => *rejection.response,
    }
}

/// A throwaway certificate authority and a server certificate for `localhost` / 127.0.0.1.
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dbtree test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
        Pki {
            ca_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// A client trusting only this CA.
    pub(crate) fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }
}
