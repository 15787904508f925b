//! The responders' board with real tokens and real RBAC: ServiceAccount tokens from TokenRequests,
//! checked by the operator with a TokenReview and a SubjectAccessReview against the namespace's
//! Incidents. No token or a bad one -> 401, a user RBAC does not let read Incidents -> 403, a
//! reader -> 200 with the internal view and each incident's timeline.

use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    core::v1::ServiceAccount,
    rbac::v1::{Role, RoleBinding},
};
use kube::{Api, Client, api::PostParams};
use serde_json::json;

use crate::{
    status_page::{PageOperator, create_incident, create_page},
    support::{TestNamespace, client, install_crds, wait_for},
};

/// A token of a new ServiceAccount `name` in `ns`, valid for ten minutes.
async fn token(client: &Client, ns: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": name } })).expect("ServiceAccount");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create ServiceAccount");
    accounts
        .create_token_request(
            name,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {name}: {e}"))
        .status
        .and_then(|s| s.token)
        .expect("a token")
}

/// Lets the ServiceAccount `name` get and list Incidents in `ns`.
async fn grant_reading(client: &Client, ns: &str, name: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "incident-reader" },
        "rules": [{ "apiGroups": ["incident.dev"], "resources": ["incidents"], "verbs": ["get", "list", "watch"] }],
    }))
    .expect("Role");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "incident-reader" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "incident-reader" },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": ns }],
    }))
    .expect("RoleBinding");
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");
    wait_for(
        &bindings,
        "incident-reader",
        "the RoleBinding",
        std::time::Duration::from_secs(10),
        |b| b.is_some(),
    )
    .await;
}

#[tokio::test]
async fn the_board_needs_a_token_that_rbac_lets_read_incidents() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "status-board").await;
    create_page(&client, &ns.name).await;
    create_incident(&client, &ns.name, "slow-checkout").await;
    let page = PageOperator::start(&ns.name, &[]).await;
    let reader = token(&client, &ns.name, "reader").await;
    let outsider = token(&client, &ns.name, "outsider").await;
    grant_reading(&client, &ns.name, "reader").await;

    let (status, headers, body) = page.fetch("/board", &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"incident-board\""
    );
    let (status, _, body) = page
        .fetch("/board", &[("Authorization", "Bearer not-a-token")])
        .await;
    assert_eq!(status, 401, "{body}");

    let outsider_header = format!("Bearer {outsider}");
    let (status, _, body) = page
        .fetch("/board", &[("Authorization", &outsider_header)])
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(&format!(
            "system:serviceaccount:{}:outsider may not list incidents",
            ns.name
        )),
        "{body}"
    );
    assert!(!body.contains("db pool exhausted"));
    let (status, _, _) = page
        .fetch(
            "/board/incidents/slow-checkout",
            &[("Authorization", &outsider_header)],
        )
        .await;
    assert_eq!(status, 403);

    // The reader sees the internal view: the incident by urgency, and its timeline.
    let reader_header = format!("Bearer {reader}");
    let deadline = tokio::time::Instant::now() + crate::status_page::WITHIN;
    let body = loop {
        let (status, headers, body) = page
            .fetch("/board", &[("Authorization", &reader_header)])
            .await;
        if status == 200 && body.contains("Detected") {
            assert_eq!(headers["cache-control"], "no-store");
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the board never showed the incident ({status}): {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for shown in [
        "slow-checkout",
        "db pool exhausted on payments-db-0 (internal)",
        "P1",
        "Detected",
    ] {
        assert!(
            body.contains(shown),
            "{shown:?} missing from the board:\n{body}"
        );
    }
    let (status, _, timeline) = page
        .fetch(
            "/board/incidents/slow-checkout",
            &[("Authorization", &reader_header)],
        )
        .await;
    assert_eq!(status, 200, "{timeline}");
    assert!(
        timeline.contains("Timeline") && timeline.contains("P1 incident opened"),
        "{timeline}"
    );
    let (status, _, _) = page
        .fetch(
            "/board/incidents/no-such-incident",
            &[("Authorization", &reader_header)],
        )
        .await;
    assert_eq!(status, 404);
    page.operator.stop().await;
}
