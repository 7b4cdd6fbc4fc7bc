//! What every scenario needs: the cluster `.ci/kube-cluster up` started (paths from the
//! environment), clients under each identity, waiting with a deadline, objects to create, and
//! stopping or starting one of the cluster's components.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use dbtree_adapters::kube::{
    DBInstance, DBInstanceSpec, EngineKind, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    OWNER_LABEL, PresetKind, ResourcesSpec, RunStateSpec, SecretRef,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Where the cluster's files are, as `.ci/kube-cluster up` wrote them to `<state>/env`.
#[derive(Debug)]
pub(crate) struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The environment's `DBTREE_E2E_*` variables, else the `env` file of the default state
    /// directory (so a test can be run by hand against a cluster that is up).
    pub(crate) fn get() -> &'static Env {
        static ENV: OnceLock<Env> = OnceLock::new();
        ENV.get_or_init(|| {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let mut vars: BTreeMap<String, String> = std::env::vars()
                .filter(|(k, _)| k.starts_with("DBTREE_E2E_"))
                .collect();
            if !vars.contains_key("DBTREE_E2E_ADMIN_KUBECONFIG") {
                let state = std::env::var("DBTREE_KUBE_STATE").map_or_else(
                    |_| {
                        PathBuf::from(std::env::var("HOME").unwrap_or_default())
                            .join(".cache/dbtree/cluster")
                    },
                    PathBuf::from,
                );
                let file = state.join("env");
                let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
                    panic!(
                        "no DBTREE_E2E_* variables and no {} ({e}): start a cluster with \
                         `.ci/kube-cluster up`, or run `.ci/kube-e2e`",
                        file.display()
                    )
                });
                vars.extend(text.lines().filter_map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                }));
            }
            Env { vars }
        })
    }

    /// A variable (`ADMIN_KUBECONFIG` for `DBTREE_E2E_ADMIN_KUBECONFIG`).
    pub(crate) fn var(&self, name: &str) -> &str {
        self.vars
            .get(&format!("DBTREE_E2E_{name}"))
            .unwrap_or_else(|| panic!("DBTREE_E2E_{name} is not set"))
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(self.var(name))
    }
}

/// Who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    /// `system:masters`.
    Admin,
    /// A plain user with the `dbtree-tenant` role in namespace `alice`.
    Alice,
    /// `system:serviceaccount:dbtree:dbtree-server`, the trusted platform identity.
    Server,
    /// `system:serviceaccount:dbtree:dbtree-operator`.
    Operator,
    /// `system:serviceaccount:dbtree:dbtree-webhook`.
    Webhook,
}

/// A client acting as `who`, from the kubeconfig `.ci/kube-cluster` wrote for it.
pub(crate) async fn client(who: Who) -> Client {
    let var = match who {
        Who::Admin => "ADMIN_KUBECONFIG",
        Who::Alice => "ALICE_KUBECONFIG",
        Who::Server => "SERVER_KUBECONFIG",
        Who::Operator => "OPERATOR_KUBECONFIG",
        Who::Webhook => "WEBHOOK_KUBECONFIG",
    };
    client_from(&Env::get().path(var)).await
}

pub(crate) async fn client_from(kubeconfig: &Path) -> Client {
    let file = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    Client::try_from(config).unwrap()
}

/// Scenarios that stop a component (the webhook, the leading operator) take this for writing;
/// every other scenario holds it for reading, so they run side by side but never while a
/// component is down.
static COMPONENTS: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

pub(crate) async fn components_up() -> RwLockReadGuard<'static, ()> {
    COMPONENTS.read().await
}

pub(crate) async fn components_exclusive() -> RwLockWriteGuard<'static, ()> {
    COMPONENTS.write().await
}

/// `.ci/kube-cluster stop|start <component>`.
pub(crate) fn cluster_component(action: &str, component: &str) {
    let env = Env::get();
    let status = std::process::Command::new(env.var("CLUSTER_SCRIPT"))
        .args([action, component])
        .env("DBTREE_KUBE_STATE", env.var("STATE"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "kube-cluster {action} {component}: {status}"
    );
}

/// A component stopped with `.ci/kube-cluster stop`, started again when this is dropped (also
/// when the scenario panics), so that one failure does not cascade into the others.
#[derive(Debug)]
pub(crate) struct Stopped(String);

impl Stopped {
    pub(crate) fn stop(component: &str) -> Stopped {
        cluster_component("stop", component);
        Stopped(component.to_owned())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // No assertion here: this may run while a panic unwinds.
        let env = Env::get();
        let started = std::process::Command::new(env.var("CLUSTER_SCRIPT"))
            .args(["start", &self.0])
            .env("DBTREE_KUBE_STATE", env.var("STATE"))
            .status();
        if !matches!(started, Ok(s) if s.success()) {
            eprintln!("could not start {} again: {started:?}", self.0);
        }
    }
}

/// Polls `probe` every 200 ms until it answers `Ok`, and panics with its last `Err` after
/// `timeout`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {timeout:?}; last seen: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh id in the form the server uses (a UUID).
pub(crate) fn uuid() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    dbtree_core::ids::InstanceId::from_random_bytes(bytes).to_string()
}

/// The tiny preset's resources for `engine`, as `dbtree-core` defines them.
pub(crate) fn tiny(engine: EngineKind) -> ResourcesSpec {
    let engine = match engine {
        EngineKind::Postgresql => dbtree_core::instance::Engine::Postgresql,
        EngineKind::Redis => dbtree_core::instance::Engine::Redis,
        EngineKind::Mongodb => dbtree_core::instance::Engine::Mongodb,
    };
    let r =
        dbtree_core::instance::preset(engine, dbtree_core::instance::PresetSize::Tiny).resources;
    ResourcesSpec {
        cpu_millis: i32::try_from(r.cpu.0).unwrap(),
        memory_mib: i32::try_from(r.memory_mib).unwrap(),
        disk_gib: i32::try_from(r.disk_gib).unwrap(),
    }
}

/// A tiny `DBInstance` named `dbi-<instance id>` (as the server names them) with its
/// credentials Secret `dbi-<id>-credentials`, labelled like the server's.
pub(crate) fn instance(
    namespace: &str,
    owner: &str,
    engine: EngineKind,
    node_port: i32,
) -> DBInstance {
    let id = uuid();
    let name = format!("dbi-{id}");
    let mut dbi = DBInstance::new(
        &name,
        DBInstanceSpec {
            engine,
            preset: Some(PresetKind::Tiny),
            resources: tiny(engine),
            owner: owner.to_owned(),
            instance_id: id.clone(),
            display_name: format!("e2e-{}", &id[..8]),
            node_port,
            run_state: RunStateSpec::Running,
            secret_ref: SecretRef {
                name: format!("{name}-credentials"),
            },
            credentials_version: 0,
            engine_config: BTreeMap::new(),
            backup_schedule: None,
        },
    );
    dbi.metadata.namespace = Some(namespace.to_owned());
    dbi.metadata.labels = Some(BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (INSTANCE_LABEL.to_owned(), id),
        (OWNER_LABEL.to_owned(), owner.to_owned()),
    ]));
    dbi
}

/// The credentials Secret `dbi`'s `secretRef` names.
pub(crate) fn credentials(dbi: &DBInstance, password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(dbi.spec.secret_ref.name.clone()),
            namespace: dbi.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".to_owned(), "app".to_owned()),
            ("password".to_owned(), password.to_owned()),
        ])),
        ..Secret::default()
    }
}

/// Creates the namespace (ignoring that it exists).
pub(crate) async fn ensure_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// Creates `dbi` and its Secret as `client`, returning the stored object.
pub(crate) async fn create_with_secret(client: &Client, dbi: &DBInstance) -> DBInstance {
    let ns = dbi.metadata.namespace.as_deref().unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &credentials(dbi, "e2e-initial-password-000"),
        )
        .await
        .unwrap_or_else(|e| panic!("creating the Secret of {}: {e}", name(dbi)));
    let api: Api<DBInstance> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), dbi)
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", name(dbi)))
}

pub(crate) fn name(dbi: &DBInstance) -> String {
    dbi.metadata.name.clone().unwrap_or_default()
}

pub(crate) fn api_of(client: &Client, dbi: &DBInstance) -> Api<DBInstance> {
    Api::namespaced(client.clone(), dbi.metadata.namespace.as_deref().unwrap())
}

/// The phase, message and observed generation of the instance as stored now.
pub(crate) fn describe(dbi: &DBInstance) -> String {
    let status = dbi.status.as_ref();
    format!(
        "generation {:?}, phase {:?}, message {:?}, observedGeneration {:?}",
        dbi.metadata.generation,
        status.and_then(|s| s.phase),
        status.and_then(|s| s.message.clone()),
        status.and_then(|s| s.observed_generation),
    )
}

/// Waits until the instance's status, describing its current generation, has `phase`.
pub(crate) async fn wait_phase(
    client: &Client,
    dbi: &DBInstance,
    phase: dbtree_adapters::kube::Phase,
    timeout: Duration,
) -> DBInstance {
    let api = api_of(client, dbi);
    let name = name(dbi);
    eventually(&format!("{name} reaches phase {phase:?}"), timeout, || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let now = api.get(&name).await.map_err(|e| e.to_string())?;
            let status = now.status.as_ref();
            let current = status.and_then(|s| s.observed_generation) == now.metadata.generation;
            if current && status.and_then(|s| s.phase) == Some(phase) {
                Ok(now)
            } else {
                Err(describe(&now))
            }
        }
    })
    .await
}

/// Deletes the instance and waits until it is gone.
pub(crate) async fn delete_and_wait(client: &Client, dbi: &DBInstance, timeout: Duration) {
    let api = api_of(client, dbi);
    let name = name(dbi);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return,
        Err(e) => panic!("deleting {name}: {e}"),
    }
    eventually(&format!("{name} is gone"), timeout, || {
        let api = api.clone();
        let name = name.clone();
        async move {
            match api.get_opt(&name).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(o) => Err(format!(
                    "still there: finalizers {:?}, {}",
                    o.metadata.finalizers,
                    describe(&o)
                )),
            }
        }
    })
    .await;
}

/// The message of an API error, or a panic naming what was expected instead of success.
pub(crate) fn refusal<T: std::fmt::Debug>(
    result: Result<T, kube::Error>,
    what: &str,
) -> kube::core::Status {
    match result {
        Ok(value) => panic!("{what}: expected a refusal, got {value:?}"),
        Err(kube::Error::Api(status)) => *status,
        Err(other) => panic!("{what}: expected an API refusal, got {other}"),
    }
}

/// How long a scenario waits for the cluster to converge: generous for a loaded 2-core machine,
/// short enough that a hang fails the run in minutes.
pub(crate) const CONVERGE: Duration = Duration::from_secs(60);
