//! The administrator Secret: created once under a name the API server makes up, used again only
//! while the instance controls it.

use super::*;

/// The StatefulSet names the administrator Secret its pods read: while that Secret exists and
/// the instance controls it, it is used again (no new password, no restart). A Secret of that
/// name the instance does not control (planted by someone) is never used: a new one is created.
#[tokio::test]
async fn the_administrator_secret_is_reused_only_when_it_is_the_instances_own() {
    let dbi = instance(EngineKind::Redis);
    for (owner_uid, reused) in [(UID, true), ("someone-elses-uid", false)] {
        let (client, mut api) = api_server::client();
        let scenario = async {
            reply_secret_adopted(&mut api).await;
            let sts = json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": NAME, "namespace": NS},
                "spec": {"selector": {}, "serviceName": NAME, "template": {"spec": {"containers": [{
                    "name": "redis",
                    "env": [{"name": "DBTREE_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef":
                        {"name": format!("{NAME}-admin-old01"), "key": "password"}}}],
                }]}}},
            });
            api.expect(Method::GET, &path("statefulsets", NAME))
                .await
                .reply(200, sts);
            api.expect(
                Method::GET,
                &path("secrets", &format!("{NAME}-admin-old01")),
            )
            .await
            .reply(
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {
                        "name": format!("{NAME}-admin-old01"), "namespace": NS,
                        "ownerReferences": [{"apiVersion": "dbtree.cloud/v1", "kind": "DBInstance",
                            "name": NAME, "uid": owner_uid, "controller": true}]}}),
            );
            if !reused {
                let e = api
                    .expect(Method::POST, &format!("/api/v1/namespaces/{NS}/secrets"))
                    .await;
                let mut created = e.body.clone();
                created["metadata"]["name"] = json!(ADMIN_SECRET);
                e.reply(201, created);
            }
            api.expect(
                Method::PATCH,
                &path("configmaps", &format!("{NAME}-config")),
            )
            .await
            .reply_applied(Value::Null);
            reply_claim_read(&mut api, None).await;
            for kind in ["persistentvolumeclaims", "services", "networkpolicies"] {
                let name = if kind == "persistentvolumeclaims" {
                    format!("{NAME}-data")
                } else {
                    NAME.to_owned()
                };
                api.expect(Method::PATCH, &path(kind, &name))
                    .await
                    .reply_applied(Value::Null);
            }
            let e = api.expect(Method::PATCH, &path("statefulsets", NAME)).await;
            let body = e.body.to_string();
            e.reply_applied(sts_status(1, 1));
            expect_status(&mut api, &dbi).await;
            expect_event(&mut api, "Ready", "Normal").await;
            body
        };
        let (result, body) =
            tokio::join!(reconcile(Arc::new(dbi.clone()), context(client)), scenario);
        result.unwrap();
        api.assert_idle().await;
        let expected = if reused {
            format!("{NAME}-admin-old01")
        } else {
            ADMIN_SECRET.to_owned()
        };
        assert!(body.contains(&expected), "owner {owner_uid}: {body}");
    }
}
