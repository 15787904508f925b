//! The operator says when the trust policies are not in force: told which ValidatingAdmissionPolicies
//! to expect (`--admission-policies`, as the chart does), its /readyz answers 503 naming what is
//! missing — a policy, or a binding that makes it deny — and 200 once they are back, from watches.

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use kube::{Api, api::DeleteParams};

use crate::{
    support::{
        TestNamespace, await_status, client, free_addr, get, kubeconfig_path, start_with, terminate,
    },
    trust::Policies,
};

/// Waits until /readyz answers `code` with a body containing `text`; returns the body.
async fn readiness(addr: std::net::SocketAddr, code: u16, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = get(addr, "/readyz").await;
        if let Ok((status, body)) = &last
            && *status == code
            && body.contains(text)
        {
            return body.clone();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {code} with {text:?}; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readiness_fails_while_the_trust_policies_are_not_in_force() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "trust-ready").await;
    let name = format!("ready-{}", &ns.name[ns.name.len() - 5..]);
    let expected = format!("{name}-identity,{name}-rights");
    let addr = free_addr();
    let operator = start_with(
        &kubeconfig_path(),
        addr,
        &[
            "--namespace",
            &ns.name,
            "--detection",
            "false",
            "--admission-policies",
            &expected,
        ],
    );

    // Not installed yet: both are named.
    let body = readiness(addr, 503, "does not exist").await;
    assert!(
        body.contains(&format!(
            "ValidatingAdmissionPolicy {name}-identity does not exist"
        )) && body.contains(&format!(
            "ValidatingAdmissionPolicy {name}-rights does not exist"
        )),
        "{body}"
    );

    let policies = Policies::install(&name, &ns.name);
    await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
    let (_, metrics) = get(addr, "/metrics").await.expect("GET /metrics");
    assert!(
        metrics.contains("incident_operator_admission_policy_problems 0"),
        "{metrics}"
    );

    // A binding removed: the policy no longer denies anything, and readiness says which.
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .delete(&format!("{name}-rights"), &DeleteParams::default())
        .await
        .expect("delete the binding");
    let body = readiness(
        addr,
        503,
        &format!(
            "no ValidatingAdmissionPolicyBinding binds ValidatingAdmissionPolicy {name}-rights"
        ),
    )
    .await;
    assert!(!body.contains("identity"), "only the unbound one: {body}");
    let (_, metrics) = get(addr, "/metrics").await.expect("GET /metrics");
    assert!(
        metrics.contains("incident_operator_admission_policy_problems 1"),
        "{metrics}"
    );

    // Back: ready again, without a restart.
    let _again = Policies::install(&name, &ns.name);
    await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
    drop(policies);
    let status = terminate(operator).await;
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
}
