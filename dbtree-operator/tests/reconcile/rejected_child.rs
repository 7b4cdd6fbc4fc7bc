//! A child the API server refuses as invalid: reported on the instance, not retried as a
//! transient failure.

use super::*;

/// The API server refuses the Service because another Service (not a DBInstance, so the webhook
/// could not know) holds the NodePort: a 422 that no retry of the same object can fix. It is
/// reported on the instance, not treated as a transient error.
#[tokio::test]
async fn a_node_port_the_api_server_will_not_allocate_is_reported_not_retried() {
    let dbi = instance(EngineKind::Redis);
    let (client, mut api) = api_server::client();
    let ctx = context(client);
    let scenario = async {
        reply_secrets(&mut api).await;
        api.expect(
            Method::PATCH,
            &path("configmaps", &format!("{NAME}-config")),
        )
        .await
        .reply_applied(Value::Null);
        reply_claim_read(&mut api, None).await;
        api.expect(
            Method::PATCH,
            &path("persistentvolumeclaims", &format!("{NAME}-data")),
        )
        .await
        .reply_applied(json!({"phase": "Bound"}));
        // What kube-apiserver answers (reason Invalid, the field in the message).
        api.expect(Method::PATCH, &path("services", NAME))
            .await
            .reply(
                422,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("Service \"{NAME}\" is invalid: spec.ports[0].nodePort: \
                        Invalid value: 30042: provided port is already allocated"),
                    "reason": "Invalid", "code": 422,
                }),
            );
        let status = expect_status(&mut api, &dbi).await;
        expect_event(&mut api, "Failed", "Warning").await;
        (api, status)
    };
    let (result, (mut api, status)) =
        tokio::join!(reconcile(Arc::new(dbi.clone()), ctx.clone()), scenario);
    // Looked at again later (the port may be freed), not hammered with backoff retries.
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
    api.assert_idle().await;
    assert_eq!(ctx.failures_of(&format!("{NS}/{NAME}")), 0, "not an error");
    assert_eq!(status["phase"], "Failed");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("the API server refused the Service: ")
            && message.contains("30042: provided port is already allocated"),
        "{message}"
    );
    let provisioned = condition(&status, "Provisioned");
    assert_eq!(provisioned["status"], "False");
    assert_eq!(provisioned["reason"], "NodePortUnavailable");
    assert_eq!(provisioned["observedGeneration"], 2);
}
