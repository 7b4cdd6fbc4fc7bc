//! The objects one `DBInstance` stands for, computed by a pure function of the instance.
//!
//! Every child carries a controller owner reference to its `DBInstance` and the dbtree labels.
//! The data volume is a standalone PVC (not a `volumeClaimTemplate`): its size follows
//! `spec.resources.diskGib` by server-side apply (a template is immutable), and cleanup deletes
//! it by name.

mod admin;
mod engine_config;
mod mongodb;
mod pod;
mod postgres;
mod redis;

use std::collections::BTreeMap;

use dbtree_adapters::kube::{
    DBInstance, EngineKind, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL,
    RunStateSpec,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Service, ServicePort, ServiceSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

pub use admin::{
    ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_LEN, admin_password, admin_secret, admin_username,
};
pub use engine_config::EngineSettings;
pub use redis::{ADMIN_USER as REDIS_ADMIN_USER, TENANT_ACL_RULES as REDIS_TENANT_ACL_RULES};

/// Field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "dbtree-operator";
/// The finalizer the operator holds on every `DBInstance` until its cleanup is done.
pub const FINALIZER: &str = "dbtree.cloud/cleanup";
/// Pod-template annotation that restarts the engine when `spec.credentialsVersion` is raised.
pub const CREDENTIALS_VERSION_ANNOTATION: &str = "dbtree.cloud/credentials-version";
/// Pod-template annotation that restarts the engine when its rendered configuration changes.
pub const CONFIG_HASH_ANNOTATION: &str = "dbtree.cloud/config-hash";
/// Longest `DBInstance` name the children's names can be derived from (a StatefulSet's pods
/// carry `<name>-<10-character revision hash>` as a label value, at most 63 characters).
pub const MAX_INSTANCE_NAME_LEN: usize = 52;

/// What the operator deployment decides, not the instance: images and storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildrenConfig {
    /// PostgreSQL image (the official image's entrypoint conventions are assumed).
    pub postgres_image: String,
    /// Redis image.
    pub redis_image: String,
    /// MongoDB image (ships `mongod` and `mongosh`).
    pub mongodb_image: String,
    /// Storage class of the data volumes; the cluster default when `None`.
    pub storage_class: Option<String>,
}

/// Default PostgreSQL image.
pub const DEFAULT_POSTGRES_IMAGE: &str = "docker.io/library/postgres:17.6";
/// Default Redis image.
pub const DEFAULT_REDIS_IMAGE: &str = "docker.io/library/redis:7.4.6";
/// Default MongoDB image.
pub const DEFAULT_MONGODB_IMAGE: &str = "docker.io/library/mongo:8.0.15";

impl Default for ChildrenConfig {
    fn default() -> Self {
        Self {
            postgres_image: DEFAULT_POSTGRES_IMAGE.into(),
            redis_image: DEFAULT_REDIS_IMAGE.into(),
            mongodb_image: DEFAULT_MONGODB_IMAGE.into(),
            storage_class: None,
        }
    }
}

/// The children of one instance, in the order they are applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// The engine's configuration files and scripts.
    pub config_map: ConfigMap,
    /// The data volume.
    pub data: PersistentVolumeClaim,
    /// The NodePort Service.
    pub service: Service,
    /// Ingress on the database port only; no egress.
    pub network_policy: NetworkPolicy,
    /// One engine pod (or none when stopped or paused).
    pub stateful_set: StatefulSet,
}

/// The names of an instance's children, derived from the `DBInstance` name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildNames {
    /// StatefulSet, Service and NetworkPolicy.
    pub workload: String,
    /// ConfigMap.
    pub config_map: String,
    /// PersistentVolumeClaim.
    pub data: String,
    /// The `generateName` prefix of dbtree's administrative Secret for the engine (`<name>-admin-`;
    /// the API server completes the name). Not a valid Secret name by itself: until
    /// [`Children::with_admin_secret`] names the real one, the pod template cannot be applied.
    pub admin_secret: String,
}

impl ChildNames {
    /// Names for the instance called `instance_name`.
    pub fn for_instance(instance_name: &str) -> Self {
        Self {
            workload: instance_name.to_owned(),
            config_map: format!("{instance_name}-config"),
            data: format!("{instance_name}-data"),
            admin_secret: format!("{instance_name}-admin-"),
        }
    }
}

/// Why an instance's children cannot be built: the spec or metadata itself is wrong, so
/// retrying without a change cannot help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Objects read from the API server always have these.
    #[error("metadata.{field} is missing")]
    MissingMetadata {
        /// `name`, `namespace` or `uid`.
        field: &'static str,
    },
    /// The children's names would not be valid.
    #[error(
        "metadata.name {name:?} must be a DNS-1035 label (lower-case letters, digits, '-', \
         starting with a letter) of at most {max} characters"
    )]
    BadName {
        /// The name.
        name: String,
        /// The longest allowed.
        max: usize,
    },
    /// `spec.engineConfig` has a key the engine does not take.
    #[error("spec.engineConfig.{key} is not a setting dbtree accepts for {engine}")]
    UnknownSetting {
        /// The engine.
        engine: &'static str,
        /// The key.
        key: String,
    },
    /// `spec.engineConfig` has a value out of range or of the wrong form.
    #[error("spec.engineConfig.{key}: {reason}")]
    BadSettingValue {
        /// The key.
        key: String,
        /// What is expected.
        reason: String,
    },
}

/// The data claim to apply, given the one that exists. A claim's storage class cannot change
/// once it is created: the existing class is kept, so that changing the operator's storage class
/// affects new instances only instead of failing every reconcile of the old ones.
pub fn keep_storage_class(
    mut desired: PersistentVolumeClaim,
    existing: Option<&PersistentVolumeClaim>,
) -> PersistentVolumeClaim {
    if let (Some(existing), Some(spec)) = (existing, desired.spec.as_mut()) {
        spec.storage_class_name = existing
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone());
    }
    desired
}

/// Replicas the StatefulSet must have for a run state.
pub fn desired_replicas(run_state: RunStateSpec) -> i32 {
    match run_state {
        RunStateSpec::Running => 1,
        RunStateSpec::Stopped | RunStateSpec::Paused => 0,
    }
}

/// The engine's name as used in labels, messages and settings.
pub fn engine_name(engine: EngineKind) -> &'static str {
    match engine {
        EngineKind::Postgresql => "postgresql",
        EngineKind::Redis => "redis",
        EngineKind::Mongodb => "mongodb",
    }
}

/// The port an engine listens on inside its pod.
pub fn engine_port(engine: EngineKind) -> i32 {
    match engine {
        EngineKind::Postgresql => 5432,
        EngineKind::Redis => 6379,
        EngineKind::Mongodb => 27017,
    }
}

/// Every child of `dbi`, as the operator will apply it.
///
/// # Errors
/// [`SpecError`] when the metadata lacks a name, namespace or uid, the name cannot prefix the
/// children's names, or `spec.engineConfig` holds an unknown key or a bad value.
pub fn desired_children(dbi: &DBInstance, config: &ChildrenConfig) -> Result<Children, SpecError> {
    let meta = child_meta(dbi)?;
    let name = dbi.meta().name.clone().unwrap_or_default();
    let spec = &dbi.spec;
    let settings = EngineSettings::validate(spec.engine, &spec.engine_config)?;
    let names = ChildNames::for_instance(&name);
    let plan = match spec.engine {
        EngineKind::Postgresql => {
            postgres::plan(spec, &settings, &config.postgres_image, &names.admin_secret)
        }
        EngineKind::Redis => redis::plan(spec, &settings, &config.redis_image, &names.admin_secret),
        EngineKind::Mongodb => {
            mongodb::plan(spec, &settings, &config.mongodb_image, &names.admin_secret)
        }
    };
    let config_map = ConfigMap {
        metadata: meta.object(&names.config_map),
        data: Some(plan.files.clone()),
        ..ConfigMap::default()
    };
    Ok(Children {
        data: data_claim(
            &meta,
            &names,
            spec.resources.disk_gib,
            config.storage_class.clone(),
        ),
        service: service(&meta, &names, spec.engine, spec.node_port),
        network_policy: network_policy(&meta, &names, spec.engine),
        stateful_set: pod::stateful_set(&meta, &names, spec, plan),
        config_map,
    })
}

/// The metadata of `dbi`'s children, after checking that its name can prefix theirs.
fn child_meta(dbi: &DBInstance) -> Result<ChildMeta, SpecError> {
    let name = dbi
        .meta()
        .name
        .clone()
        .ok_or(SpecError::MissingMetadata { field: "name" })?;
    let namespace = dbi
        .namespace()
        .ok_or(SpecError::MissingMetadata { field: "namespace" })?;
    let owner = dbi
        .controller_owner_ref(&())
        .ok_or(SpecError::MissingMetadata { field: "uid" })?;
    check_name(&name)?;
    Ok(ChildMeta {
        namespace,
        owner: OwnerReference {
            block_owner_deletion: Some(true),
            ..owner
        },
        labels: instance_labels(dbi),
    })
}

/// Metadata shared by every child of one instance.
#[derive(Clone, Debug)]
pub(crate) struct ChildMeta {
    namespace: String,
    owner: OwnerReference,
    labels: BTreeMap<String, String>,
}

impl ChildMeta {
    fn object(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels.clone()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// The labels that select the instance's pod (a subset of its labels: the StatefulSet's
    /// selector is immutable, so it holds only what never changes).
    fn selector(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .filter(|(k, _)| k.as_str() == INSTANCE_LABEL || k.as_str() == MANAGED_BY_LABEL)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The labels every child carries. The owner label is set only when the owner is a valid label
/// value (it always is for the server's UUIDs).
pub fn instance_labels(dbi: &DBInstance) -> BTreeMap<String, String> {
    let spec = &dbi.spec;
    let mut labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (
            "app.kubernetes.io/name".to_owned(),
            engine_name(spec.engine).to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            "database".to_owned(),
        ),
    ]);
    let instance = dbi.meta().name.clone().unwrap_or_default();
    labels.insert(
        INSTANCE_LABEL.to_owned(),
        label_value(&spec.instance_id, &instance),
    );
    if is_label_value(&spec.owner) {
        labels.insert(OWNER_LABEL.to_owned(), spec.owner.clone());
    }
    labels
}

/// `preferred` when it is a valid label value, else `fallback` (the object's name, which
/// [`check_name`] makes valid).
fn label_value(preferred: &str, fallback: &str) -> String {
    if is_label_value(preferred) {
        preferred.to_owned()
    } else {
        fallback.to_owned()
    }
}

fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn check_name(name: &str) -> Result<(), SpecError> {
    let bytes = name.as_bytes();
    let ok = !name.is_empty()
        && name.len() <= MAX_INSTANCE_NAME_LEN
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadName {
            name: name.to_owned(),
            max: MAX_INSTANCE_NAME_LEN,
        })
    }
}

fn data_claim(
    meta: &ChildMeta,
    names: &ChildNames,
    disk_gib: i32,
    storage_class: Option<String>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta.object(&names.data),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(format!("{disk_gib}Gi")),
                )])),
                limits: None,
            }),
            storage_class_name: storage_class,
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn service(meta: &ChildMeta, names: &ChildNames, engine: EngineKind, node_port: i32) -> Service {
    let port = engine_port(engine);
    Service {
        metadata: meta.object(&names.workload),
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            selector: Some(meta.selector()),
            ports: Some(vec![ServicePort {
                name: Some(engine_name(engine).to_owned()),
                protocol: Some("TCP".into()),
                port,
                target_port: Some(IntOrString::Int(port)),
                node_port: Some(node_port),
                ..ServicePort::default()
            }]),
            external_traffic_policy: Some("Cluster".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn network_policy(meta: &ChildMeta, names: &ChildNames, engine: EngineKind) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta.object(&names.workload),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(meta.selector()),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            // From anywhere (NodePort traffic arrives from outside the cluster), to the
            // database port only. No egress rule: the engine calls nothing.
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![NetworkPolicyPort {
                    protocol: Some("TCP".into()),
                    port: Some(IntOrString::Int(engine_port(engine))),
                    end_port: None,
                }]),
            }]),
            egress: Some(Vec::new()),
        }),
    }
}

/// What an engine module decides: its port's files, its containers and where data lives.
#[derive(Clone, Debug)]
pub(crate) struct EnginePlan {
    pub(crate) engine: EngineKind,
    /// ConfigMap data, mounted read-only at [`CONFIG_DIR`].
    pub(crate) files: BTreeMap<String, String>,
    /// The engine container, before the shared parts (resources, mounts, security) are added.
    pub(crate) main: k8s_openapi::api::core::v1::Container,
    /// A container that runs before the engine on every start, if the engine needs one.
    pub(crate) init: Option<k8s_openapi::api::core::v1::Container>,
    /// Where the data volume is mounted.
    pub(crate) data_path: &'static str,
    /// Writable scratch directories (emptyDir), by volume name.
    pub(crate) scratch: Vec<(&'static str, &'static str)>,
}

/// Where the ConfigMap is mounted in the engine's containers.
pub const CONFIG_DIR: &str = "/etc/dbtree";

#[cfg(test)]
mod tenant_postgres_tests;
#[cfg(test)]
mod tenant_tests;
#[cfg(test)]
mod tests;
