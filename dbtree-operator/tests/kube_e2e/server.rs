//! `dbtree-server --cluster kube` (embedded SQLite) against the real cluster, as
//! `system:serviceaccount:dbtree:dbtree-server`: an instance created over HTTP becomes a
//! `DBInstance`, its status is followed by the watch until `running`; stop, start, rotate and
//! delete go through the cluster; a server killed in the middle and started again rediscovers
//! what it had.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dbtree_adapters::kube::{DBInstance, INSTANCE_LABEL, Phase, RunStateSpec};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::{CONVERGE, Env, Who, client, components_up, eventually, uuid, wait_phase};

/// One `dbtree-server` process.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    fn start(data_dir: &Path, port: u16) -> Server {
        let env = Env::get();
        let binary = std::env::var("DBTREE_E2E_SERVER_BIN").map_or_else(
            |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/dbtree-server"),
            PathBuf::from,
        );
        assert!(
            binary.exists(),
            "{} does not exist: `cargo build -p dbtree-server` (or set DBTREE_E2E_SERVER_BIN)",
            binary.display()
        );
        let log = data_dir.join("server.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(binary)
            .env("KUBECONFIG", env.path("SERVER_KUBECONFIG"))
            .env("DBTREE_CLUSTER", "kube")
            .env("DBTREE_DATA_DIR", data_dir)
            .env("DBTREE_LISTEN", format!("127.0.0.1:{port}"))
            // Apart from the ports the other scenarios pick by hand.
            .env("DBTREE_NODE_PORT_FIRST", "30100")
            .env("DBTREE_NODE_PORT_LAST", "30199")
            .env("DBTREE_LOG", "info")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn ready(&self, http: &reqwest::Client) {
        let url = format!("{}/readyz", self.base);
        eventually("dbtree-server is ready", CONVERGE, || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http.get(&url).send().await.map_err(|e| e.to_string())?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(r.status().to_string())
                }
            }
        })
        .await;
    }

    /// Kills the process (SIGKILL: a crash, nothing is flushed or released).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP client signed in as `email`, with the code the console mailer logged.
struct User {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl User {
    async fn sign_in(server: &Server, http: &reqwest::Client, email: &str) -> User {
        let r = http
            .post(format!("{}/api/v1/auth/code", server.base))
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
        let needle = format!("sign-in code for {email}: ");
        let code = eventually(
            "the sign-in code is logged",
            Duration::from_secs(10),
            || {
                let text = server.log_text();
                let code = text
                    .rfind(&needle)
                    .map(|i| text[i + needle.len()..].chars().take(6).collect::<String>());
                async move { code.ok_or_else(|| "no code yet".to_owned()) }
            },
        )
        .await;
        let r = http
            .post(format!("{}/api/v1/auth/session", server.base))
            .json(&json!({ "email": email, "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let session: Value = r.json().await.unwrap();
        User {
            http: http.clone(),
            base: server.base.clone(),
            token: session["token"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn status_of(&self, id: &str) -> String {
        let (code, body) = self
            .call(reqwest::Method::GET, &format!("/instances/{id}"), None)
            .await;
        assert_eq!(code, 200, "{body}");
        body["status"].as_str().unwrap_or_default().to_owned()
    }

    async fn wait_status(&self, id: &str, wanted: &str) {
        eventually(
            &format!("instance {id} is {wanted} for the server"),
            CONVERGE,
            || async {
                let now = self.status_of(id).await;
                if now == wanted { Ok(()) } else { Err(now) }
            },
        )
        .await;
    }
}

/// The `DBInstance` of the dbtree instance `id`, found by its label wherever it is.
async fn object_of(admin: &Client, id: &str) -> Option<DBInstance> {
    let api: Api<DBInstance> = Api::all(admin.clone());
    let found = api
        .list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}={id}")))
        .await
        .unwrap();
    found.items.into_iter().next()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
#[ignore = "needs a real cluster: run .ci/kube-e2e"]
async fn the_server_drives_instances_through_the_cluster_and_survives_a_restart() {
    let _up = components_up().await;
    let admin = client(Who::Admin).await;
    let data = std::env::temp_dir().join(format!("dbtree-e2e-server-{}", uuid()));
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let http = reqwest::Client::new();
    let mut server = Server::start(&data, port);
    server.ready(&http).await;
    let user = User::sign_in(&server, &http, "e2e-kube@example.org").await;

    // Create over HTTP: a DBInstance appears; the watch carries its status to `running`.
    let (code, created) = user
        .call(
            reqwest::Method::POST,
            "/instances",
            Some(json!({ "name": "e2e-cache", "engine": "redis", "preset": "tiny" })),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["instance"]["id"].as_str().unwrap().to_owned();
    let first_password = created["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let dbi = object_of(&admin, &id)
        .await
        .expect("a DBInstance for the new instance");
    assert_eq!(
        dbi.spec.node_port,
        i32::from(u16::try_from(created["instance"]["nodePort"].as_u64().unwrap()).unwrap())
    );
    user.wait_status(&id, "running").await;
    // The namespace the server made enforces Pod Security `restricted`, and the engine's pod
    // was admitted under it.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let namespace = namespaces.get(&dbi.namespace().unwrap()).await.unwrap();
    assert_eq!(
        namespace
            .labels()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );

    // Stop and start: the desired state travels in the spec; the operator follows.
    let (code, body) = user
        .call(
            reqwest::Method::POST,
            &format!("/instances/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let stopped = wait_phase(&admin, &dbi, Phase::Stopped, CONVERGE).await;
    assert_eq!(stopped.spec.run_state, RunStateSpec::Stopped);
    user.wait_status(&id, "stopped").await;
    let (code, body) = user
        .call(
            reqwest::Method::POST,
            &format!("/instances/{id}/start"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    wait_phase(&admin, &dbi, Phase::Ready, CONVERGE).await;
    user.wait_status(&id, "running").await;

    // Rotate: the Secret holds the new password, the spec announces it, the pod template
    // follows (the engine restarts with it).
    let (code, rotated) = user
        .call(
            reqwest::Method::POST,
            &format!("/instances/{id}/credentials"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{rotated}");
    let password = rotated["password"].as_str().unwrap().to_owned();
    assert_ne!(password, first_password);
    let ns = dbi.namespace().unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let secret = secrets.get(&dbi.spec.secret_ref.name).await.unwrap();
    let stored = secret.data.unwrap_or_default().remove("password").unwrap();
    assert_eq!(String::from_utf8(stored.0).unwrap(), password);
    let statefulsets: Api<StatefulSet> = Api::namespaced(admin.clone(), &ns);
    let name = dbi.name_any();
    eventually(
        "the pod template carries credentials version 1",
        CONVERGE,
        || {
            let (statefulsets, name) = (statefulsets.clone(), name.clone());
            async move {
                let sts = statefulsets.get(&name).await.map_err(|e| e.to_string())?;
                let version = sts
                    .spec
                    .and_then(|s| s.template.metadata)
                    .and_then(|m| m.annotations)
                    .and_then(|a| a.get("dbtree.cloud/credentials-version").cloned());
                if version.as_deref() == Some("1") {
                    Ok(())
                } else {
                    Err(format!("{version:?}"))
                }
            }
        },
    )
    .await;
    wait_phase(&admin, &dbi, Phase::Ready, CONVERGE).await;

    // A second instance, and the server killed right after creating it: the cluster carries on;
    // the restarted server rediscovers both and can still drive them.
    let (code, created) = user
        .call(
            reqwest::Method::POST,
            "/instances",
            Some(json!({ "name": "e2e-orders", "engine": "postgresql", "preset": "tiny" })),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let second = created["instance"]["id"].as_str().unwrap().to_owned();
    server.kill();
    let second_dbi = object_of(&admin, &second)
        .await
        .expect("the second DBInstance");
    wait_phase(&admin, &second_dbi, Phase::Ready, CONVERGE).await;
    let mut server = Server::start(&data, port);
    server.ready(&http).await;
    user.wait_status(&second, "running").await;
    assert_eq!(user.status_of(&id).await, "running");
    let (code, body) = user
        .call(
            reqwest::Method::POST,
            &format!("/instances/{second}/stop"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    wait_phase(&admin, &second_dbi, Phase::Stopped, CONVERGE).await;

    // Delete both: the objects and their Secrets go; the server records the deletion.
    for (instance, dbi) in [(&id, &dbi), (&second, &second_dbi)] {
        let (code, body) = user
            .call(
                reqwest::Method::DELETE,
                &format!("/instances/{instance}"),
                None,
            )
            .await;
        assert!((200..300).contains(&code), "delete: {code} {body}");
        eventually(
            &format!("{instance} is gone from the cluster"),
            CONVERGE,
            || async {
                match object_of(&admin, instance).await {
                    None => Ok(()),
                    Some(o) => Err(crate::support::describe(&o)),
                }
            },
        )
        .await;
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), &dbi.namespace().unwrap());
        assert!(
            secrets
                .get_opt(&dbi.spec.secret_ref.name)
                .await
                .unwrap()
                .is_none()
        );
        eventually(
            &format!("{instance} is deleted for the server"),
            CONVERGE,
            || async {
                let (code, body) = user
                    .call(
                        reqwest::Method::GET,
                        &format!("/instances/{instance}"),
                        None,
                    )
                    .await;
                match (code, body["status"].as_str()) {
                    (404, _) | (200, Some("deleted")) => Ok(()),
                    _ => Err(format!("{code} {body}")),
                }
            },
        )
        .await;
    }
    server.kill();
    let _ = std::fs::remove_dir_all(&data);
}
