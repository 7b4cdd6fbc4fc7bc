#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use dbtree_adapters::kube::{
    DBInstance, DBInstanceSpec, EngineKind, INSTANCE_LABEL, MANAGED_BY_LABEL, OWNER_LABEL,
    PresetKind, ResourcesSpec, RunStateSpec, SecretRef,
};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::json;

use super::*;

const ID: &str = "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4f";
const OWNER: &str = "0190c1c6-6c5f-4a8e-9d4c-2f0a1b2c3d4e";

fn instance(engine: EngineKind, memory_mib: i32) -> DBInstance {
    let name = format!("dbi-{ID}");
    let mut dbi = DBInstance::new(
        &name,
        DBInstanceSpec {
            engine,
            preset: Some(PresetKind::Small),
            resources: ResourcesSpec {
                cpu_millis: 250,
                memory_mib,
                disk_gib: 5,
            },
            owner: OWNER.into(),
            instance_id: ID.into(),
            display_name: "orders".into(),
            node_port: 30123,
            run_state: RunStateSpec::Running,
            secret_ref: SecretRef {
                name: format!("{name}-credentials"),
            },
            credentials_version: 3,
            engine_config: BTreeMap::new(),
            backup_schedule: None,
        },
    );
    dbi.metadata.namespace = Some(format!("dbtree-user-{OWNER}"));
    dbi.metadata.uid = Some("5d0c1c3a-1111-2222-3333-444455556666".into());
    dbi
}

fn pod(children: &Children) -> &PodSpec {
    children
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn main_container(children: &Children) -> &Container {
    &pod(children).containers[0]
}

fn file<'a>(children: &'a Children, name: &str) -> &'a str {
    children
        .config_map
        .data
        .as_ref()
        .unwrap()
        .get(name)
        .unwrap()
}

#[test]
fn every_child_is_owned_labelled_and_namespaced() {
    for engine in [
        EngineKind::Postgresql,
        EngineKind::Redis,
        EngineKind::Mongodb,
    ] {
        let dbi = instance(engine, 512);
        let c = desired_children(&dbi, &ChildrenConfig::default()).unwrap();
        let metas = [
            &c.config_map.metadata,
            &c.data.metadata,
            &c.service.metadata,
            &c.network_policy.metadata,
            &c.stateful_set.metadata,
        ];
        for meta in metas {
            assert_eq!(
                meta.namespace.as_deref(),
                Some(format!("dbtree-user-{OWNER}").as_str())
            );
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "DBInstance");
            assert_eq!(owners[0].api_version, "dbtree.cloud/v1");
            assert_eq!(owners[0].name, format!("dbi-{ID}"));
            assert_eq!(owners[0].uid, "5d0c1c3a-1111-2222-3333-444455556666");
            assert_eq!(owners[0].controller, Some(true));
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels[MANAGED_BY_LABEL], "dbtree");
            assert_eq!(labels[INSTANCE_LABEL], ID);
            assert_eq!(labels[OWNER_LABEL], OWNER);
            assert_eq!(labels["app.kubernetes.io/name"], engine_name(engine));
        }
        assert_eq!(
            c.stateful_set.metadata.name.as_deref(),
            Some(format!("dbi-{ID}").as_str())
        );
        assert_eq!(
            c.data.metadata.name.as_deref(),
            Some(format!("dbi-{ID}-data").as_str())
        );
        assert_eq!(
            c.config_map.metadata.name.as_deref(),
            Some(format!("dbi-{ID}-config").as_str())
        );
    }
}

#[test]
fn an_existing_claim_keeps_its_storage_class() {
    let config = ChildrenConfig {
        storage_class: Some("fast-ssd".into()),
        ..ChildrenConfig::default()
    };
    let desired = desired_children(&instance(EngineKind::Redis, 512), &config)
        .unwrap()
        .data;
    let existing = |class: Option<&str>| PersistentVolumeClaim {
        spec: Some(PersistentVolumeClaimSpec {
            storage_class_name: class.map(str::to_owned),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let class = |claim: &PersistentVolumeClaim| {
        claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
    };
    // new: the configured class
    assert_eq!(
        class(&keep_storage_class(desired.clone(), None)).as_deref(),
        Some("fast-ssd")
    );
    // created earlier with another class, or with the cluster default: kept as it is
    let kept = keep_storage_class(desired.clone(), Some(&existing(Some("local-path"))));
    assert_eq!(class(&kept).as_deref(), Some("local-path"));
    assert_eq!(
        class(&keep_storage_class(desired.clone(), Some(&existing(None)))),
        None
    );
    // everything else still follows the spec
    assert_eq!(
        kept.spec.as_ref().unwrap().resources,
        desired.spec.unwrap().resources
    );
}

#[test]
fn service_network_policy_and_volume_follow_the_spec() {
    for (engine, port) in [
        (EngineKind::Postgresql, 5432),
        (EngineKind::Redis, 6379),
        (EngineKind::Mongodb, 27017),
    ] {
        let config = ChildrenConfig {
            storage_class: Some("local-path".into()),
            ..ChildrenConfig::default()
        };
        let c = desired_children(&instance(engine, 512), &config).unwrap();
        let service = serde_json::to_value(&c.service).unwrap();
        assert_eq!(service["spec"]["type"], "NodePort");
        assert_eq!(
            service["spec"]["ports"],
            json!([{
                "name": engine_name(engine), "protocol": "TCP", "port": port, "targetPort": port, "nodePort": 30123
            }])
        );
        assert_eq!(service["spec"]["selector"][INSTANCE_LABEL], ID);
        let policy = serde_json::to_value(&c.network_policy).unwrap();
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(
            policy["spec"]["ingress"],
            json!([{ "ports": [{ "protocol": "TCP", "port": port }] }])
        );
        assert_eq!(policy["spec"]["egress"], json!([]), "no egress at all");
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"][INSTANCE_LABEL],
            ID
        );
        let claim = serde_json::to_value(&c.data).unwrap();
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
        assert_eq!(claim["spec"]["storageClassName"], "local-path");
        assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    }
}

#[test]
fn the_pod_gets_resources_probes_secret_volumes_and_restart_annotations() {
    for engine in [
        EngineKind::Postgresql,
        EngineKind::Redis,
        EngineKind::Mongodb,
    ] {
        let dbi = instance(engine, 768);
        let c = desired_children(&dbi, &ChildrenConfig::default())
            .unwrap()
            .with_admin_secret(&format!("dbi-{ID}-admin-x7k2p"));
        let sts = serde_json::to_value(&c.stateful_set).unwrap();
        assert_eq!(sts["spec"]["replicas"], 1);
        let container = serde_json::to_value(main_container(&c)).unwrap();
        let quantities = json!({ "cpu": "250m", "memory": "768Mi" });
        assert_eq!(
            container["resources"],
            json!({ "requests": quantities, "limits": quantities })
        );
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            assert!(container[probe].is_object(), "{engine:?} {probe}");
        }
        assert_eq!(container["ports"][0]["containerPort"], engine_port(engine));
        // The container that writes the users (Redis's own, the others' setup step) reads the
        // tenant's user name and password and the administrator's password, each from its
        // own Secret.
        let writer = if engine == EngineKind::Redis {
            container.clone()
        } else {
            serde_json::to_value(&pod(&c).init_containers.as_ref().unwrap()[0]).unwrap()
        };
        let secret_refs: Vec<(String, String, String)> = writer["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                let r = e.get("valueFrom")?.get("secretKeyRef")?;
                Some((
                    e["name"].as_str()?.to_owned(),
                    r["name"].as_str()?.to_owned(),
                    r["key"].as_str()?.to_owned(),
                ))
            })
            .collect();
        let tenant = format!("dbi-{ID}-credentials");
        assert_eq!(
            secret_refs,
            vec![
                ("DBTREE_USERNAME".into(), tenant.clone(), "username".into()),
                ("DBTREE_PASSWORD".into(), tenant, "password".into()),
                (
                    ADMIN_PASSWORD_ENV.into(),
                    format!("dbi-{ID}-admin-x7k2p"),
                    "password".into()
                ),
            ],
            "{engine:?}"
        );
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        let template = &sts["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"][CREDENTIALS_VERSION_ANNOTATION],
            "3"
        );
        let volumes = template["spec"]["volumes"].as_array().unwrap();
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == format!("dbi-{ID}-data"))
        );
        assert!(
            volumes
                .iter()
                .any(|v| v["configMap"]["name"] == format!("dbi-{ID}-config"))
        );
        assert_eq!(template["spec"]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(template["spec"]["automountServiceAccountToken"], false);
    }
}

#[test]
fn stopped_and_paused_scale_to_zero() {
    for (state, replicas) in [
        (RunStateSpec::Running, 1),
        (RunStateSpec::Stopped, 0),
        (RunStateSpec::Paused, 0),
    ] {
        let mut dbi = instance(EngineKind::Redis, 128);
        dbi.spec.run_state = state;
        let c = desired_children(&dbi, &ChildrenConfig::default()).unwrap();
        assert_eq!(
            c.stateful_set.spec.unwrap().replicas,
            Some(replicas),
            "{state:?}"
        );
    }
}

#[test]
fn the_config_map_holds_what_each_engine_loads() {
    let mut redis = instance(EngineKind::Redis, 128);
    redis
        .spec
        .engine_config
        .insert("maxmemory-policy".into(), "allkeys-lru".into());
    let c = desired_children(&redis, &ChildrenConfig::default()).unwrap();
    let conf = file(&c, "redis.conf");
    for line in [
        "maxmemory 96mb",
        "maxmemory-policy allkeys-lru",
        "appendonly yes",
        "aclfile /run/dbtree/users.acl",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} in {conf}");
    }
    assert_eq!(
        main_container(&c).command.as_ref().unwrap()[1],
        "/etc/dbtree/start.sh"
    );
    assert!(file(&c, "start.sh").contains("user default off"));

    let c = desired_children(
        &instance(EngineKind::Postgresql, 512),
        &ChildrenConfig::default(),
    )
    .unwrap();
    let conf = file(&c, "postgresql.conf");
    for line in [
        "shared_buffers = 128MB",
        "max_connections = 64",
        "listen_addresses = '*'",
        "log_statement = 'none'",
    ] {
        assert!(conf.lines().any(|l| l == line), "{line} in {conf}");
    }
    assert_eq!(
        main_container(&c).command.as_ref().unwrap(),
        &["postgres", "-c", "config_file=/etc/dbtree/postgresql.conf"]
    );
    let init = &pod(&c).init_containers.as_ref().unwrap()[0];
    assert_eq!(init.command.as_ref().unwrap()[1], "/etc/dbtree/setup.sh");

    let c = desired_children(
        &instance(EngineKind::Mongodb, 512),
        &ChildrenConfig::default(),
    )
    .unwrap();
    let conf = file(&c, "mongod.conf");
    assert!(conf.contains("cacheSizeGB: 0.25"), "{conf}");
    assert!(conf.contains("authorization: enabled"), "{conf}");
    assert_eq!(
        main_container(&c).command.as_ref().unwrap(),
        &["mongod", "--config", "/etc/dbtree/mongod.conf"]
    );
}

#[test]
fn a_config_change_changes_the_pod_annotation() {
    let hash = |memory| {
        let c = desired_children(
            &instance(EngineKind::Redis, memory),
            &ChildrenConfig::default(),
        )
        .unwrap();
        c.stateful_set
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    assert_eq!(hash(128), hash(128), "stable");
    assert_ne!(hash(128), hash(256));
}

#[test]
fn bad_metadata_and_settings_are_spec_errors() {
    let config = ChildrenConfig::default();
    let mut no_uid = instance(EngineKind::Redis, 128);
    no_uid.metadata.uid = None;
    assert_eq!(
        desired_children(&no_uid, &config).unwrap_err(),
        SpecError::MissingMetadata { field: "uid" }
    );
    let mut long = instance(EngineKind::Redis, 128);
    long.metadata.name = Some(format!("a{}", "b".repeat(MAX_INSTANCE_NAME_LEN)));
    assert!(matches!(
        desired_children(&long, &config),
        Err(SpecError::BadName { .. })
    ));
    let mut digit_first = instance(EngineKind::Redis, 128);
    digit_first.metadata.name = Some("1abc".into());
    assert!(matches!(
        desired_children(&digit_first, &config),
        Err(SpecError::BadName { .. })
    ));
    let mut injected = instance(EngineKind::Redis, 128);
    injected
        .spec
        .engine_config
        .insert("appendonly".into(), "yes\nrequirepass x".into());
    assert!(matches!(
        desired_children(&injected, &config),
        Err(SpecError::BadSettingValue { .. })
    ));
}

#[test]
fn an_owner_that_is_not_a_label_value_is_left_out_of_the_labels() {
    let mut dbi = instance(EngineKind::Redis, 128);
    dbi.spec.owner = "system:serviceaccount:team:deployer".into();
    let labels = instance_labels(&dbi);
    assert!(!labels.contains_key(OWNER_LABEL));
    assert_eq!(labels[INSTANCE_LABEL], ID);
}
