//! A hostile MongoDB tenant (FerretDB here). FerretDB 1.x has no roles: a signed-in user may do
//! anything its server offers, which is why each instance is a FerretDB process of its own,
//! holding nothing but that instance's data and running as that instance's account. So the
//! tenant's reach ends at its own process: another instance refuses its password, what its
//! server shows about itself holds no secret, and (as root) its account reaches no other
//! instance's files and cannot change the FerretDB program every instance runs.

use std::process::Command;

use dbtree_core::instance::Engine;
use mongodb::bson::{Document, doc};

use super::fixture::*;
use super::mongo_client::{is_auth_failure, mongo_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mongodb_tenant_reaches_its_own_instance_and_nothing_else() {
    let mut fx = Fixture::new().await;
    fx.require_mongodb();
    let (pw_a, pw_b) = (password(), password());
    let (a, port_a) = fx.provision(Engine::Mongodb, &pw_a).await;
    let (b, port_b) = fx.provision(Engine::Mongodb, &pw_b).await;
    all_ready(&mut fx.events, &[a, b]).await;

    // full use of its own database
    let client = mongo_with(port_a, &pw_a).await.unwrap();
    let fruit = client.database("dbtree").collection::<Document>("fruit");
    fruit.insert_one(doc! { "name": "lemon" }).await.unwrap();
    assert_eq!(fruit.count_documents(doc! {}).await.unwrap(), 1);

    // what the server says about itself holds neither password
    let admin = crate::read_admin(&fx.instance_dir(a));
    for command in [doc! { "getCmdLineOpts": 1 }, doc! { "getLog": "global" }] {
        let answer = client.database("admin").run_command(command.clone()).await;
        let text = format!("{answer:?}");
        assert!(
            !text.contains(admin.expose()) && !text.contains(pw_a.expose()),
            "{command} shows a password"
        );
    }

    // the other tenant's instance refuses this tenant's password; its own still works
    let err = mongo_with(port_b, &pw_a).await.unwrap_err();
    assert!(is_auth_failure(&err), "{err}");
    mongo_with(port_b, &pw_b).await.unwrap();

    if is_root() {
        let (a_dir, b_dir) = (fx.instance_dir(a), fx.instance_dir(b));
        assert!(
            crate::as_account(a, "ls", &a_dir.join("engine/data")),
            "the check itself fails"
        );
        assert!(
            !crate::as_account(a, "ls", &b_dir.join("engine")),
            "enters another instance"
        );
        mongo_with(port_b, &pw_b)
            .await
            .unwrap()
            .database("dbtree")
            .collection::<Document>("fruit")
            .insert_one(doc! { "name": "lime" })
            .await
            .unwrap();
        let b_data = b_dir.join("engine/data/dbtree.sqlite");
        assert!(b_data.exists(), "{b_data:?}");
        assert!(
            !crate::as_account(a, "cat", &b_data),
            "reads another instance's data"
        );
        assert!(
            !crate::as_account(a, "cat", &a_dir.join("admin.pw")),
            "reads its administrator password"
        );
        // the FerretDB program instances run (copied where their accounts can run it) is the
        // server's: an instance's account cannot replace it
        let shared = fx.dir.path().join("engines/ferretdb");
        assert!(shared.exists(), "{shared:?}");
        let name = account_of(a); // its group has the same name (useradd --user-group)
        let writable = Command::new("setpriv")
            .arg(format!("--reuid={name}"))
            .arg(format!("--regid={name}"))
            .arg("--clear-groups")
            .args(["test", "-w"])
            .arg(&shared)
            .status()
            .unwrap()
            .success();
        assert!(!writable, "an instance's account may change {shared:?}");
    }
    delete_and_check(&mut fx, a, port_a).await;
    delete_and_check(&mut fx, b, port_b).await;
}
