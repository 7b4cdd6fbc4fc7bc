//! `KubeCluster`: instances as `DBInstance` objects that the dbtree operator turns into running
//! databases. The server writes what it wants (the spec, including the run state) and learns
//! what happened by watching the objects' status; it never waits on a page being open.
//!
//! Every write is idempotent: namespaces, Secrets and `DBInstance`s are server-side applied with
//! one field manager, so a provisioning repeated after a crash converges on the same objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use dbtree_core::boundary::{
    Cluster, ClusterError, ClusterEvent, EventStream, Observation, ProvisionRequest, Teardown,
    UsageReport,
};
use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Credentials, Engine, RunState};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use parking_lot::RwLock;
use serde_json::json;

use super::crd::{
    DBInstance, DBInstanceSpec, EngineKind, Phase, ResourcesSpec, RunStateSpec, SecretRef,
};
use super::names::{
    FIELD_MANAGER, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_LABEL, namespace_for,
    object_name, secret_name,
};
use super::retry::{RetryPolicy, retrying, to_cluster_error};

/// The Kubernetes cluster driver. Cheap to clone; clones share the namespace cache.
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
    retry: RetryPolicy,
    /// Where each known instance lives, learned from provisioning and from the watch.
    namespaces: Arc<RwLock<HashMap<InstanceId, String>>>,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("retry", &self.retry)
            .field("known_instances", &self.namespaces.read().len())
            .finish_non_exhaustive()
    }
}

impl KubeCluster {
    /// A driver talking through `client`, with the default [`RetryPolicy`].
    pub fn new(client: Client) -> KubeCluster {
        KubeCluster {
            client,
            retry: RetryPolicy::default(),
            namespaces: Arc::default(),
        }
    }

    /// A driver configured from the environment: the in-cluster service account, or the
    /// local kubeconfig.
    ///
    /// # Errors
    /// [`ClusterError`] (permanent) when no configuration is found.
    pub async fn from_env() -> Result<KubeCluster, ClusterError> {
        let client = Client::try_default().await.map_err(|e| {
            ClusterError::permanent(format!(
                "no Kubernetes configuration (in-cluster or kubeconfig): {e}"
            ))
        })?;
        Ok(KubeCluster::new(client))
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> KubeCluster {
        self.retry = retry;
        self
    }

    /// The namespace of `instance`: from the cache, else from the cluster (its `DBInstance`,
    /// or failing that its credentials Secret, found by label). `None` if the cluster holds
    /// neither.
    async fn locate(&self, instance: InstanceId) -> Result<Option<String>, ClusterError> {
        if let Some(namespace) = self.namespaces.read().get(&instance) {
            return Ok(Some(namespace.clone()));
        }
        let selector = format!("{INSTANCE_LABEL}={instance}");
        let params = ListParams::default().labels(&selector);
        let objects: Api<DBInstance> = Api::all(self.client.clone());
        let found = retrying(self.retry, "finding the DBInstance", || {
            objects.list_metadata(&params)
        })
        .await
        .map_err(|e| to_cluster_error("finding the DBInstance", &e))?;
        let mut namespace = found.items.into_iter().find_map(|o| o.metadata.namespace);
        if namespace.is_none() {
            let secrets: Api<Secret> = Api::all(self.client.clone());
            let found = retrying(self.retry, "finding the credentials Secret", || {
                secrets.list_metadata(&params)
            })
            .await
            .map_err(|e| to_cluster_error("finding the credentials Secret", &e))?;
            namespace = found.items.into_iter().find_map(|o| o.metadata.namespace);
        }
        if let Some(namespace) = &namespace {
            self.namespaces.write().insert(instance, namespace.clone());
        }
        Ok(namespace)
    }

    async fn apply_secret(
        &self,
        namespace: &str,
        instance: InstanceId,
        owner: &str,
        credentials: &Credentials,
    ) -> Result<(), ClusterError> {
        let secret = secret_object(namespace, instance, owner, credentials);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let name = secret_name(instance);
        let patch = Patch::Apply(&secret);
        retrying(self.retry, "applying the credentials Secret", || {
            secrets.patch(&name, &params, &patch)
        })
        .await
        .map_err(|e| to_cluster_error("applying the credentials Secret", &e))?;
        Ok(())
    }
}

fn labels(instance: InstanceId, owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (INSTANCE_LABEL.to_owned(), instance.to_string()),
        (OWNER_LABEL.to_owned(), owner.to_owned()),
    ])
}

/// A user's namespace. Pod Security `restricted` is enforced in it: the operator's engine pods
/// meet it (non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp), and
/// nothing else is meant to run there.
fn namespace_object(owner: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(format!("dbtree-user-{owner}")),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
                (OWNER_LABEL.to_owned(), owner.to_owned()),
                (
                    "pod-security.kubernetes.io/enforce".to_owned(),
                    "restricted".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

fn secret_object(
    namespace: &str,
    instance: InstanceId,
    owner: &str,
    credentials: &Credentials,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(instance)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(instance, owner)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        string_data: Some(BTreeMap::from([
            ("username".to_owned(), credentials.username.clone()),
            (
                "password".to_owned(),
                credentials.password.expose().to_owned(),
            ),
        ])),
        ..Secret::default()
    }
}

fn engine_kind(engine: Engine) -> EngineKind {
    match engine {
        Engine::Postgresql => EngineKind::Postgresql,
        Engine::Redis => EngineKind::Redis,
        Engine::Mongodb => EngineKind::Mongodb,
    }
}

fn run_state_spec(state: RunState) -> RunStateSpec {
    match state {
        RunState::Running => RunStateSpec::Running,
        RunState::Stopped => RunStateSpec::Stopped,
        RunState::Paused => RunStateSpec::Paused,
    }
}

/// The `DBInstance` that asks the operator for `request`'s instance.
pub fn instance_object(request: &ProvisionRequest) -> DBInstance {
    let owner = request.owner.to_string();
    let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut object = DBInstance::new(
        &object_name(request.instance),
        DBInstanceSpec {
            engine: engine_kind(request.engine),
            preset: None,
            resources: ResourcesSpec {
                cpu_millis: clamp(request.resources.cpu.0),
                memory_mib: clamp(request.resources.memory_mib),
                disk_gib: clamp(request.resources.disk_gib),
            },
            owner: owner.clone(),
            instance_id: request.instance.to_string(),
            display_name: request.name.as_str().to_owned(),
            node_port: i32::from(request.node_port.0),
            run_state: run_state_spec(request.run_state),
            secret_ref: SecretRef {
                name: secret_name(request.instance),
            },
            credentials_version: 0,
            engine_config: BTreeMap::new(),
            backup_schedule: None,
        },
    );
    object.metadata.namespace = Some(namespace_for(request.owner));
    object.metadata.labels = Some(labels(request.instance, &owner));
    object
}

/// What a watched object tells dbtree, if anything: only a status that describes the current
/// spec counts (a status older than the latest spec change is about to be replaced).
pub fn observation(object: &DBInstance) -> Option<(InstanceId, Observation)> {
    let instance = object.spec.instance_id.parse().ok()?;
    if object.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = object.status.as_ref()?;
    if let (Some(observed), Some(generation)) =
        (status.observed_generation, object.metadata.generation)
        && observed < generation
    {
        return None;
    }
    let observation = match status.phase? {
        Phase::Ready => Observation::Ready,
        Phase::Failed => Observation::Failed {
            reason: status
                .message
                .clone()
                .unwrap_or_else(|| "the operator could not bring the database up".to_owned()),
        },
        Phase::Provisioning | Phase::Stopped => return None,
    };
    Some((instance, observation))
}

#[async_trait]
impl Cluster for KubeCluster {
    async fn provision(&self, request: &ProvisionRequest) -> Result<(), ClusterError> {
        let owner = request.owner.to_string();
        let namespace = namespace_for(request.owner);
        let params = PatchParams::apply(FIELD_MANAGER).force();

        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let ns = namespace_object(&owner);
        let patch = Patch::Apply(&ns);
        retrying(self.retry, "applying the user's namespace", || {
            namespaces.patch(&namespace, &params, &patch)
        })
        .await
        .map_err(|e| to_cluster_error("applying the user's namespace", &e))?;

        self.apply_secret(&namespace, request.instance, &owner, &request.credentials)
            .await?;

        let object = instance_object(request);
        let objects: Api<DBInstance> = Api::namespaced(self.client.clone(), &namespace);
        let name = object_name(request.instance);
        let patch = Patch::Apply(&object);
        retrying(self.retry, "applying the DBInstance", || {
            objects.patch(&name, &params, &patch)
        })
        .await
        .map_err(|e| to_cluster_error("applying the DBInstance", &e))?;
        self.namespaces.write().insert(request.instance, namespace);
        Ok(())
    }

    async fn set_run_state(
        &self,
        instance: InstanceId,
        state: RunState,
    ) -> Result<(), ClusterError> {
        let Some(namespace) = self.locate(instance).await? else {
            return Err(ClusterError::not_found(
                "the cluster has no DBInstance for it",
            ));
        };
        let objects: Api<DBInstance> = Api::namespaced(self.client.clone(), &namespace);
        let patch = Patch::Merge(json!({ "spec": { "runState": run_state_spec(state) } }));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let name = object_name(instance);
        let result = retrying(self.retry, "setting the run state", || {
            objects.patch(&name, &params, &patch)
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let error = to_cluster_error("setting the run state", &e);
                if error.kind == dbtree_core::boundary::ClusterErrorKind::NotFound {
                    self.namespaces.write().remove(&instance);
                }
                Err(error)
            }
        }
    }

    async fn rotate_credentials(
        &self,
        instance: InstanceId,
        credentials: &Credentials,
    ) -> Result<(), ClusterError> {
        let Some(namespace) = self.locate(instance).await? else {
            return Err(ClusterError::not_found(
                "the cluster has no DBInstance for it",
            ));
        };
        let objects: Api<DBInstance> = Api::namespaced(self.client.clone(), &namespace);
        let name = object_name(instance);
        let current = retrying(self.retry, "reading the DBInstance", || objects.get(&name))
            .await
            .map_err(|e| to_cluster_error("reading the DBInstance", &e))?;
        self.apply_secret(&namespace, instance, &current.spec.owner, credentials)
            .await?;
        // Raise credentialsVersion so the operator applies the new Secret to the engine. The
        // resourceVersion makes a concurrent change a 409, which re-reads and tries again.
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        retrying(self.retry, "announcing the new credentials", || {
            let objects = objects.clone();
            let name = name.clone();
            let params = params.clone();
            async move {
                let latest = objects.get(&name).await?;
                let patch = Patch::Merge(json!({
                    "metadata": { "resourceVersion": latest.resource_version() },
                    "spec": { "credentialsVersion": latest.spec.credentials_version.saturating_add(1) },
                }));
                objects.patch(&name, &params, &patch).await
            }
        })
        .await
        .map_err(|e| to_cluster_error("announcing the new credentials", &e))?;
        Ok(())
    }

    async fn delete(&self, instance: InstanceId) -> Result<Teardown, ClusterError> {
        let Some(namespace) = self.locate(instance).await? else {
            return Ok(Teardown::Complete);
        };
        let objects: Api<DBInstance> = Api::namespaced(self.client.clone(), &namespace);
        let params = DeleteParams::foreground();
        let name = object_name(instance);
        let existed = match retrying(self.retry, "deleting the DBInstance", || {
            objects.delete(&name, &params)
        })
        .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(e) => return Err(to_cluster_error("deleting the DBInstance", &e)),
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let name = secret_name(instance);
        let params = DeleteParams::default();
        match retrying(self.retry, "deleting the credentials Secret", || {
            secrets.delete(&name, &params)
        })
        .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(to_cluster_error("deleting the credentials Secret", &e)),
        }
        if existed {
            // The operator's finalizer removes the database first; the watch reports `Gone`.
            Ok(Teardown::Pending)
        } else {
            self.namespaces.write().remove(&instance);
            Ok(Teardown::Complete)
        }
    }

    /// The operator does not report engine usage (its `DBInstance` status carries phase,
    /// conditions and ready replicas only), so there is nothing honest to answer but "not
    /// available".
    async fn usage(&self, _instance: InstanceId) -> Result<UsageReport, ClusterError> {
        Ok(UsageReport::NotAvailable {
            reason: "the Kubernetes operator does not report engine usage yet".into(),
        })
    }

    fn events(&self) -> EventStream {
        let objects: Api<DBInstance> = Api::all(self.client.clone());
        let config =
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
        let namespaces = Arc::clone(&self.namespaces);
        // The last observation passed on per instance: a relist repeats every object, and
        // dbtree needs to hear about a change once.
        let mut last: HashMap<InstanceId, Observation> = HashMap::new();
        let stream = watcher(objects, config)
            .default_backoff()
            .filter_map(move |event| {
                let out = match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                        if let (Ok(id), Some(namespace)) = (
                            object.spec.instance_id.parse::<InstanceId>(),
                            object.namespace(),
                        ) {
                            namespaces.write().insert(id, namespace);
                        }
                        observation(&object).and_then(|(instance, observation)| {
                            (last.get(&instance) != Some(&observation)).then(|| {
                                last.insert(instance, observation.clone());
                                ClusterEvent {
                                    instance,
                                    observation,
                                }
                            })
                        })
                    }
                    Ok(watcher::Event::Delete(object)) => object
                        .spec
                        .instance_id
                        .parse::<InstanceId>()
                        .ok()
                        .map(|instance| {
                            last.remove(&instance);
                            namespaces.write().remove(&instance);
                            ClusterEvent {
                                instance,
                                observation: Observation::Gone,
                            }
                        }),
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                    Err(error) => {
                        tracing::warn!(%error, "watching DBInstances failed; backing off");
                        None
                    }
                };
                std::future::ready(out)
            });
        Box::pin(stream)
    }
}

#[cfg(test)]
mod tests {
    use dbtree_core::ids::UserId;
    use dbtree_core::instance::{InstanceName, MilliCpu, NodePort, Password, Resources};

    use super::super::crd::DBInstanceStatus;
    use super::*;

    pub(super) fn request() -> ProvisionRequest {
        let password = Password::generate(|| 0x5eed_1234).unwrap();
        ProvisionRequest {
            instance: InstanceId::from_random_bytes([7; 16]),
            owner: UserId::from_random_bytes([9; 16]),
            name: InstanceName::parse("orders-db").unwrap(),
            engine: Engine::Postgresql,
            resources: Resources {
                cpu: MilliCpu(500),
                memory_mib: 512,
                disk_gib: 5,
            },
            node_port: NodePort(30042),
            run_state: RunState::Running,
            credentials: Credentials::new(Engine::Postgresql, password),
        }
    }

    #[test]
    fn the_object_carries_every_spec_field_and_passes_its_cel_rules() {
        let request = request();
        let object = instance_object(&request);
        assert_eq!(
            object.metadata.name.as_deref(),
            Some(object_name(request.instance).as_str())
        );
        assert_eq!(
            object.metadata.namespace.as_deref(),
            Some(namespace_for(request.owner).as_str())
        );
        assert_eq!(object.spec.engine, EngineKind::Postgresql);
        assert_eq!(
            object.spec.resources,
            ResourcesSpec {
                cpu_millis: 500,
                memory_mib: 512,
                disk_gib: 5
            }
        );
        assert_eq!(object.spec.node_port, 30042);
        assert_eq!(object.spec.display_name, "orders-db");
        assert_eq!(object.spec.run_state, RunStateSpec::Running);
        assert_eq!(object.spec.secret_ref.name, secret_name(request.instance));
        assert_eq!(object.spec.instance_id, request.instance.to_string());
        assert!(object.validate_cel().is_ok(), "{:?}", object.validate_cel());
        let text = serde_json::to_string(&object).unwrap();
        assert!(
            !text.contains(request.credentials.password.expose()),
            "no password in the object"
        );
        assert_eq!(
            namespace_object(&request.owner.to_string()).metadata.name,
            Some(namespace_for(request.owner))
        );
    }

    fn with_status(phase: Phase, generation: i64, observed: i64) -> DBInstance {
        let mut object = instance_object(&request());
        object.metadata.generation = Some(generation);
        object.status = Some(DBInstanceStatus {
            phase: Some(phase),
            message: Some("image pull failed".into()),
            observed_generation: Some(observed),
            ..DBInstanceStatus::default()
        });
        object
    }

    #[test]
    fn only_a_current_ready_or_failed_status_is_an_observation() {
        let id = request().instance;
        assert_eq!(
            observation(&with_status(Phase::Ready, 2, 2)),
            Some((id, Observation::Ready))
        );
        assert_eq!(
            observation(&with_status(Phase::Failed, 2, 2)),
            Some((
                id,
                Observation::Failed {
                    reason: "image pull failed".into()
                }
            ))
        );
        assert_eq!(
            observation(&with_status(Phase::Ready, 3, 2)),
            None,
            "stale status"
        );
        assert_eq!(observation(&with_status(Phase::Provisioning, 1, 1)), None);
        assert_eq!(observation(&with_status(Phase::Stopped, 1, 1)), None);
        let mut deleting = with_status(Phase::Ready, 1, 1);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(observation(&deleting), None);
        assert_eq!(
            observation(&instance_object(&request())),
            None,
            "no status yet"
        );
    }
}
