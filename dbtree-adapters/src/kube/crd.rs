//! `DBInstance` (`dbinstances.dbtree.cloud/v1`): one database instance. The server writes the
//! spec (including the desired run state); only the operator writes the status.

// `KubeSchema` re-emits each struct it derives inside a private module to build the schema;
// those copies are `pub` but unreachable by construction.
#![allow(unreachable_pub)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A database instance.
#[derive(CustomResource, KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "dbtree.cloud",
    version = "v1",
    kind = "DBInstance",
    plural = "dbinstances",
    shortname = "dbi",
    namespaced,
    status = "DBInstanceStatus",
    cel,
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.engine"}"#,
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Desired","type":"string","jsonPath":".spec.runState"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"NodePort","type":"integer","jsonPath":".spec.nodePort"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.spec.engine == oldSelf.spec.engine").message("spec.engine is immutable"),
    validation = Rule::new("self.spec.instanceId == oldSelf.spec.instanceId").message("spec.instanceId is immutable"),
    validation = Rule::new("self.spec.owner == oldSelf.spec.owner").message("spec.owner is immutable"),
    validation = Rule::new("self.spec.resources.diskGib >= oldSelf.spec.resources.diskGib").message("spec.resources.diskGib cannot shrink")
)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceSpec {
    /// The engine (immutable).
    pub engine: EngineKind,
    /// The preset size, if created from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<PresetKind>,
    /// Compute, memory and disk.
    pub resources: ResourcesSpec,
    /// The dbtree user who owns it (set by the trusted platform account; immutable).
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 64").message("spec.owner must be 1-64 characters"))]
    pub owner: String,
    /// The dbtree instance id (immutable).
    #[x_kube(validation = Rule::new("size(self) == 36").message("spec.instanceId must be a UUID"))]
    pub instance_id: String,
    /// The name the user chose (a DNS label, 3-40 characters).
    #[x_kube(validation = Rule::new("size(self) >= 3 && size(self) <= 40 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("spec.displayName must be a DNS label of 3-40 characters"))]
    pub display_name: String,
    /// The NodePort the database is reached on.
    #[x_kube(validation = Rule::new("self >= 30000 && self <= 32767").message("spec.nodePort must be within 30000-32767"))]
    pub node_port: i32,
    /// Whether the database should run (one replica) or be scaled to zero.
    pub run_state: RunStateSpec,
    /// The Secret with `username` and `password`.
    pub secret_ref: SecretRef,
    /// Raised to make the operator apply a rotated password.
    #[serde(default)]
    pub credentials_version: i64,
    /// Engine settings the operator renders into the engine's configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub engine_config: BTreeMap<String, String>,
    /// Backup schedule (cron, five fields), if backups are wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_schedule: Option<String>,
}

/// Engines.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// PostgreSQL.
    Postgresql,
    /// Redis.
    Redis,
    /// MongoDB (standalone).
    Mongodb,
}

/// Preset sizes.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PresetKind {
    /// Tiny.
    Tiny,
    /// Small.
    Small,
    /// Medium.
    Medium,
    /// Large.
    Large,
}

/// Compute, memory and disk.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// CPU in millicores.
    #[x_kube(validation = Rule::new("self >= 100 && self <= 2000").message("spec.resources.cpuMillis must be 100-2000"))]
    pub cpu_millis: i32,
    /// Memory in MiB.
    #[x_kube(validation = Rule::new("self >= 128 && self <= 4096").message("spec.resources.memoryMib must be 128-4096"))]
    pub memory_mib: i32,
    /// Disk in GiB.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 50").message("spec.resources.diskGib must be 1-50"))]
    pub disk_gib: i32,
}

/// The run state the operator must hold.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum RunStateSpec {
    /// One replica.
    Running,
    /// Zero replicas, by the owner.
    Stopped,
    /// Zero replicas, by billing.
    Paused,
}

/// A reference to a Secret in the same namespace.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
}

/// Where an instance stands, as the operator sees it.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Phase {
    /// Objects are being created or the database is starting.
    Provisioning,
    /// Accepting connections.
    Ready,
    /// Scaled to zero as asked.
    Stopped,
    /// Cannot be brought up (the message says why); retried.
    Failed,
}

/// Written by the operator only.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DBInstanceStatus {
    /// Summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Why, in words, when there is something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Ready` and `Provisioned` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready engine replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;

    fn spec() -> DBInstanceSpec {
        DBInstanceSpec {
            engine: EngineKind::Redis,
            preset: Some(PresetKind::Tiny),
            resources: ResourcesSpec {
                cpu_millis: 100,
                memory_mib: 128,
                disk_gib: 1,
            },
            owner: "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4e".into(),
            instance_id: "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f".into(),
            display_name: "cache".into(),
            node_port: 30001,
            run_state: RunStateSpec::Running,
            secret_ref: SecretRef {
                name: "dbi-x-credentials".into(),
            },
            credentials_version: 0,
            engine_config: BTreeMap::new(),
            backup_schedule: None,
        }
    }

    #[test]
    fn the_crd_has_short_name_status_columns_and_rules() {
        let crd = serde_json::to_value(DBInstance::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "dbinstances.dbtree.cloud");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["dbi"]));
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], json!({}));
        assert_eq!(
            version["additionalPrinterColumns"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
        let text = crd.to_string();
        for rule in [
            "spec.engine is immutable",
            "spec.nodePort must be within 30000-32767",
            "spec.displayName must be a DNS label",
        ] {
            assert!(text.contains(rule), "{rule}");
        }
    }

    #[test]
    fn cel_rules_hold_client_side() {
        let good = DBInstance::new("dbi-x", spec());
        assert!(good.validate_cel().is_ok(), "{:?}", good.validate_cel());
        let mut bad_port = good.clone();
        bad_port.spec.node_port = 29999;
        assert!(bad_port.validate_cel().is_err());
        let mut bad_name = good.clone();
        bad_name.spec.display_name = "x".repeat(41);
        assert!(bad_name.validate_cel().is_err());
        let mut upper = good.clone();
        upper.spec.display_name = "Cache".into();
        assert!(upper.validate_cel().is_err());
        let mut changed_engine = good.clone();
        changed_engine.spec.engine = EngineKind::Postgresql;
        assert!(
            changed_engine.validate_cel_update(&good).is_err(),
            "the engine is immutable"
        );
        let mut stopped = good.clone();
        stopped.spec.run_state = RunStateSpec::Stopped;
        assert!(
            stopped.validate_cel_update(&good).is_ok(),
            "the run state may change"
        );
        let mut shrunk = good.clone();
        shrunk.spec.resources.disk_gib = 0;
        assert!(shrunk.validate_cel().is_err());
    }
}
