//! The StatefulSet around an engine plan: resources from the spec, the data PVC, the ConfigMap,
//! scratch space, a locked-down security context, and annotations that restart the pod when
//! the configuration or the credentials change.

use std::collections::BTreeMap;

use dbtree_adapters::kube::DBInstanceSpec;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    CONFIG_DIR, CONFIG_HASH_ANNOTATION, CREDENTIALS_VERSION_ANNOTATION, ChildMeta, ChildNames,
    EnginePlan, desired_replicas, engine_port,
};

/// The user and group the official engine images run their server as.
const ENGINE_UID: i64 = 999;

pub(crate) fn stateful_set(
    meta: &ChildMeta,
    names: &ChildNames,
    spec: &DBInstanceSpec,
    plan: EnginePlan,
) -> StatefulSet {
    let annotations = BTreeMap::from([
        (
            CONFIG_HASH_ANNOTATION.to_owned(),
            format!("{:016x}", config_hash(&plan.files)),
        ),
        (
            CREDENTIALS_VERSION_ANNOTATION.to_owned(),
            spec.credentials_version.to_string(),
        ),
    ]);
    let mut mounts = vec![
        mount("data", plan.data_path, false),
        mount("config", CONFIG_DIR, true),
    ];
    mounts.extend(
        plan.scratch
            .iter()
            .map(|(name, path)| mount(name, path, false)),
    );
    let resources = resources(spec.resources.cpu_millis, spec.resources.memory_mib);
    let main = Container {
        ports: Some(vec![ContainerPort {
            name: Some("db".into()),
            container_port: engine_port(plan.engine),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(resources.clone()),
        volume_mounts: Some(mounts.clone()),
        security_context: Some(container_security()),
        ..plan.main
    };
    let init = plan.init.map(|init| Container {
        resources: Some(resources),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..init
    });
    let mut volumes = vec![
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: names.data.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config_map.clone(),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    volumes.extend(plan.scratch.iter().map(|(name, _)| Volume {
        name: (*name).to_owned(),
        // `run` may hold credentials (Redis's ACL file): memory, never the node's disk.
        empty_dir: Some(EmptyDirVolumeSource {
            medium: (*name == "run").then(|| "Memory".to_owned()),
            size_limit: Some(Quantity("64Mi".into())),
        }),
        ..Volume::default()
    }));
    let selector = meta.selector();
    StatefulSet {
        metadata: meta.object(&names.workload),
        spec: Some(StatefulSetSpec {
            replicas: Some(desired_replicas(spec.run_state)),
            service_name: Some(names.workload.clone()),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            pod_management_policy: Some("OrderedReady".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: None,
            }),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta.labels.clone()),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    init_containers: init.map(|c| vec![c]),
                    containers: vec![main],
                    volumes: Some(volumes),
                    security_context: Some(pod_security()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// Requests equal limits (Guaranteed QoS): the capacity the webhook counted is what the node
/// reserves, and the engine's memory settings are computed from the same limit.
fn resources(cpu_millis: i32, memory_mib: i32) -> ResourceRequirements {
    let quantities = BTreeMap::from([
        ("cpu".to_owned(), Quantity(format!("{cpu_millis}m"))),
        ("memory".to_owned(), Quantity(format!("{memory_mib}Mi"))),
    ]);
    ResourceRequirements {
        requests: Some(quantities.clone()),
        limits: Some(quantities),
        claims: None,
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(ENGINE_UID),
        run_as_group: Some(ENGINE_UID),
        fs_group: Some(ENGINE_UID),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// An environment variable read from the credentials Secret (which must exist: not optional).
pub(crate) fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// A probe running `script` with `sh -c` (so it can read the container's environment).
pub(crate) fn exec_probe(script: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.to_owned()]),
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// A probe that opens a TCP connection to `port`.
pub(crate) fn tcp_probe(port: i32, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// FNV-1a over the files' names and contents: stable across processes and versions, which a
/// restart trigger needs (std's hasher is randomly seeded).
pub(crate) fn config_hash(files: &BTreeMap<String, String>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, content) in files {
        for byte in name.bytes().chain([0]).chain(content.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The ConfigMap file of the setup step (PostgreSQL and MongoDB keep users in their data, so
/// both Secrets are applied to it on every start).
pub(crate) const SETUP_FILE: &str = "setup.sh";

/// The environment that carries both credentials into a container: the tenant's user name and
/// password from its credentials Secret, the administrator's password from the operator's
/// Secret. Both Secrets must exist (not optional).
pub(crate) fn tenant_and_admin_env(tenant_secret: &str, admin_secret: &str) -> Vec<EnvVar> {
    vec![
        secret_env("DBTREE_USERNAME", tenant_secret, "username"),
        secret_env("DBTREE_PASSWORD", tenant_secret, "password"),
        secret_env(super::ADMIN_PASSWORD_ENV, admin_secret, "password"),
    ]
}

/// The init container that runs [`SETUP_FILE`] with the engine's image before the engine.
pub(crate) fn setup_container(image: &str, env: Vec<EnvVar>) -> Container {
    Container {
        name: "setup".into(),
        image: Some(image.to_owned()),
        command: Some(vec!["sh".into(), format!("{CONFIG_DIR}/{SETUP_FILE}")]),
        env: Some(env),
        ..Container::default()
    }
}
