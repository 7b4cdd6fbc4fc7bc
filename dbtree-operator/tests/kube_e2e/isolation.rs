//! Tenant isolation as the API server stores it (PRODUCT.md §7): for each engine, dbtree's
//! administrator credential is a Secret of its own, made by the operator under a name the API
//! server chose, controlled by the instance, immutable, and read only by the containers that
//! need it; the tenant's Secret is a different one; the pods pass Pod Security `restricted`;
//! a kubectl tenant cannot read Secrets at all. (kwok runs no container, so the engines'
//! refusals themselves are tested against real engines elsewhere: `children/tenant_tests.rs`.)

use dbtree_adapters::kube::{DBInstance, EngineKind, Phase};
use dbtree_operator::children::{ADMIN_PASSWORD_ENV, ChildNames};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::support::{
    CONVERGE, Who, client, components_up, create_with_secret, delete_and_wait, eventually,
    instance, refusal, uuid, wait_phase,
};

fn secret_refs(container: &Container) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|e| {
            let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((e.name.clone(), r.name.clone()))
        })
        .collect()
}

async fn check_engine(server: &Client, admin: &Client, engine: EngineKind, port: i32) {
    let owner = uuid();
    let ns = format!("dbtree-user-{owner}");
    let namespaces: Api<Namespace> = Api::all(server.clone());
    let restricted = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(std::collections::BTreeMap::from([(
                "pod-security.kubernetes.io/enforce".to_owned(),
                "restricted".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &restricted)
        .await
        .unwrap();
    let dbi: DBInstance = create_with_secret(server, &instance(&ns, &owner, engine, port)).await;
    let ready = wait_phase(admin, &dbi, Phase::Ready, CONVERGE).await;
    let name = ready.name_any();
    let tenant_secret = ready.spec.secret_ref.name.clone();

    // The pod the API server admitted (under `restricted`): who reads which Secret.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pod = pods.get(&format!("{name}-0")).await.unwrap();
    let spec = pod.spec.unwrap();
    let main = &spec.containers[0];
    let writer = match engine {
        EngineKind::Redis => main.clone(),
        EngineKind::Postgresql | EngineKind::Mongodb => {
            let init = spec.init_containers.clone().unwrap_or_default();
            assert_eq!(init.len(), 1, "{engine:?}: one setup step");
            assert!(
                secret_refs(main).is_empty(),
                "{engine:?}: the engine process itself sees no credential"
            );
            init[0].clone()
        }
    };
    let refs = secret_refs(&writer);
    let admin_secret = refs
        .iter()
        .find(|(env, _)| env == ADMIN_PASSWORD_ENV)
        .map(|(_, secret)| secret.clone())
        .unwrap_or_else(|| panic!("{engine:?}: no administrator password in {refs:?}"));
    assert!(
        admin_secret.starts_with(&ChildNames::for_instance(&name).admin_secret)
            && admin_secret.len() > ChildNames::for_instance(&name).admin_secret.len(),
        "{engine:?}: a name the API server completed: {admin_secret}"
    );
    assert_ne!(admin_secret, tenant_secret);
    for (env, secret) in &refs {
        if env != ADMIN_PASSWORD_ENV {
            assert_eq!(secret, &tenant_secret, "{engine:?}: {env}");
        }
    }

    // The administrator Secret: the operator's, controlled by the instance, immutable.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let stored = secrets.get(&admin_secret).await.unwrap();
    let controller = stored
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.controller == Some(true))
        .expect("a controller");
    assert_eq!(Some(controller.uid), ready.metadata.uid);
    assert_eq!(stored.immutable, Some(true));
    let data = stored.data.unwrap_or_default();
    let password = String::from_utf8(data["password"].0.clone()).unwrap();
    assert_eq!(password.len(), 32);
    let username = String::from_utf8(data["username"].0.clone()).unwrap();
    let expected_admin = match engine {
        EngineKind::Postgresql => "postgres",
        EngineKind::Redis | EngineKind::Mongodb => "dbtree-admin",
    };
    assert_eq!(username, expected_admin);

    // What the engine is told, as stored.
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let files = maps
        .get(&ChildNames::for_instance(&name).config_map)
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    match engine {
        EngineKind::Postgresql => {
            assert!(
                files["setup.sql"]
                    .contains("NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
            );
            assert!(!files["pg_hba.conf"].contains("trust"));
        }
        EngineKind::Redis => {
            assert!(files["redis.conf"].contains("enable-debug-command no"));
            assert!(files["redis.conf"].contains("enable-module-command no"));
            assert!(
                files["start.sh"].contains("-config -module -debug -shutdown -acl +acl|whoami")
            );
        }
        EngineKind::Mongodb => {
            assert!(files["setup.js"].contains("[{ role: \"dbOwner\", db: tenant }]"));
        }
    }

    // Deleted with the instance.
    delete_and_wait(server, &ready, CONVERGE).await;
    eventually(
        "the administrator Secret goes with the instance",
        CONVERGE,
        || {
            let (secrets, admin_secret) = (secrets.clone(), admin_secret.clone());
            async move {
                match secrets
                    .get_opt(&admin_secret)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => Ok(()),
                    Some(_) => Err("still there".to_owned()),
                }
            }
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn each_engine_gets_an_administrator_secret_of_its_own_and_a_tenant_secret_apart() {
    let _up = components_up().await;
    let server = client(Who::Server).await;
    let admin = client(Who::Admin).await;
    tokio::join!(
        check_engine(&server, &admin, EngineKind::Postgresql, 31070),
        check_engine(&server, &admin, EngineKind::Redis, 31071),
        check_engine(&server, &admin, EngineKind::Mongodb, 31072),
    );
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn a_kubectl_tenant_cannot_read_the_secrets_beside_its_instances() {
    let _up = components_up().await;
    let alice = client(Who::Alice).await;
    let secrets: Api<Secret> = Api::namespaced(alice, "alice");
    let status = refusal(
        secrets.list(&ListParams::default()).await,
        "alice listing Secrets",
    );
    assert_eq!(status.code, 403, "{status:?}");
    let status = refusal(secrets.get("anything").await, "alice reading a Secret");
    assert_eq!(status.code, 403, "{status:?}");
}
