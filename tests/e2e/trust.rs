//! Trust end to end: the chart's ValidatingAdmissionPolicies on the real API server, judged against
//! real RBAC with impersonated users. `alice` may edit Incidents and Runbooks but not Deployments;
//! `bob` may also patch Deployments and approve. Whoever acts is the user the API server
//! authenticated, and nobody makes the operator do what they could not do themselves.

use std::{process::Command, time::Duration};

use incident_operator::api::{Incident, Runbook};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{
    Api, Client, Config,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    config::KubeConfigOptions,
};
use serde_json::{Value, json};

use crate::{
    chart::helm_path,
    lifecycle::{incident, setup},
    support::{cleanup, kubeconfig_path},
};

/// A client that acts as `user` (impersonation; the e2e kubeconfig's user may impersonate).
pub(crate) async fn as_user(user: &str) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig_path()).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("client config");
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(vec!["system:authenticated".to_owned()]);
    Client::try_from(config).expect("client")
}

/// The chart's policies, named after the test and bound to its namespace only; removed at the end.
pub(crate) struct Policies {
    names: Vec<String>,
}

impl Policies {
    pub(crate) fn install(name: &str, namespace: &str) -> Self {
        let selector = format!(
            r#"admission.namespaceSelector={{"matchLabels":{{"kubernetes.io/metadata.name":"{namespace}"}}}}"#
        );
        let rendered = Command::new(helm_path())
            .args([
                "template",
                name,
                concat!(env!("CARGO_MANIFEST_DIR"), "/charts/incident-operator"),
            ])
            .args([
                "--namespace",
                namespace,
                "--show-only",
                "templates/admission.yaml",
            ])
            .args([
                "--set",
                &format!("fullnameOverride={name}"),
                "--set-json",
                &selector,
            ])
            .output()
            .expect("helm template");
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let mut apply = Command::new("kubectl")
            .args(["--kubeconfig"])
            .arg(kubeconfig_path())
            .args(["apply", "--server-side", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl apply");
        use std::io::Write;
        apply
            .stdin
            .take()
            .expect("stdin")
            .write_all(&rendered.stdout)
            .expect("write");
        assert!(
            apply.wait().expect("kubectl").success(),
            "apply the policies"
        );
        Policies {
            names: ["identity", "rights"]
                .iter()
                .map(|p| format!("{name}-{p}"))
                .collect(),
        }
    }
}

impl Drop for Policies {
    fn drop(&mut self) {
        let names = self.names.clone();
        cleanup("admission policies", move |client| async move {
            use k8s_openapi::api::admissionregistration::v1::{
                ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
            };
            for name in names {
                let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await;
                let _ = Api::<ValidatingAdmissionPolicy>::all(client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await;
            }
            Ok(())
        });
    }
}

/// Roles: both edit Incidents and Runbooks and read Deployments; bob also patches Deployments,
/// StatefulSets and DaemonSets and approves.
async fn grant(client: &Client, ns: &str) {
    let role = |name: &str, extra: Value| -> Role {
        let mut rules = json!([
            { "apiGroups": ["incident.dev"], "resources": ["incidents", "runbooks"],
              "verbs": ["get", "list", "watch", "create", "update", "patch"] },
            { "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"] } ]);
        if let (Some(rules), Some(extra)) = (rules.as_array_mut(), extra.as_array()) {
            rules.extend(extra.iter().cloned());
        }
        serde_json::from_value(json!({ "metadata": { "name": name }, "rules": rules }))
            .expect("Role")
    };
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    let responder = role("responder", json!([]));
    let lead = role(
        "lead",
        json!([
            { "apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"],
              "verbs": ["patch"] },
            { "apiGroups": ["incident.dev"], "resources": ["incidents"], "verbs": ["approve"] } ]),
    );
    for (user, role) in [("alice", responder), ("bob", lead)] {
        let name = role.metadata.name.clone().expect("name");
        roles
            .create(&PostParams::default(), &role)
            .await
            .expect("create Role");
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": { "name": name },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
            "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user } ],
        }))
        .expect("RoleBinding");
        bindings
            .create(&PostParams::default(), &binding)
            .await
            .expect("create RoleBinding");
    }
}

/// The API server's answer to a merge patch of the incident's spec by `client`.
async fn patch(client: &Client, ns: &str, name: &str, spec: Value) -> Result<Incident, String> {
    Api::<Incident>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .map_err(|e| e.to_string())
}

/// Waits until the policies judge this namespace (they reach the API server's cache in a moment).
pub(crate) async fn enforced(alice: &Client, ns: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let refused = patch(
            alice,
            ns,
            "probe",
            json!({ "notes": [ { "author": "nobody", "text": "x" } ] }),
        )
        .await;
        if refused.is_err() {
            return;
        }
        // Undo the probe's note so the incident stays as the test expects.
        patch(alice, ns, "probe", json!({ "notes": null }))
            .await
            .expect("undo the probe");
        assert!(
            std::time::Instant::now() < deadline,
            "the admission policies never applied"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn setup_trust(
    prefix: &str,
) -> (
    Client,
    crate::support::TestNamespace,
    Policies,
    Client,
    Client,
) {
    let (client, ns, api) = setup(prefix).await;
    grant(&client, &ns.name).await;
    let policies = Policies::install(
        &format!("trust-{}", &ns.name[ns.name.len() - 5..]),
        &ns.name,
    );
    api.create(
        &PostParams::default(),
        &incident("probe", json!({ "title": "probe", "severity": "P3" })),
    )
    .await
    .expect("create the probe incident");
    let alice = as_user("alice").await;
    let bob = as_user("bob").await;
    enforced(&alice, &ns.name).await;
    (client, ns, policies, alice, bob)
}

#[tokio::test]
async fn nobody_acts_under_someone_elses_name() {
    let (_client, ns, _policies, alice, _bob) = setup_trust("trust-identity").await;
    let ns = ns.name.as_str();
    let incidents = Api::<Incident>::namespaced(alice.clone(), ns);
    incidents
        .create(
            &PostParams::default(),
            &incident("db", json!({ "title": "db slow", "severity": "P1" })),
        )
        .await
        .expect("alice opens an incident");

    let spoofed = patch(
        &alice,
        ns,
        "db",
        json!({ "acknowledgment": { "by": "bob" } }),
    )
    .await;
    let error = spoofed.expect_err("acknowledging as bob");
    assert!(
        error.contains("spec.acknowledgment.by must name you, alice"),
        "{error}"
    );
    let own = patch(
        &alice,
        ns,
        "db",
        json!({ "acknowledgment": { "by": "alice" } }),
    )
    .await;
    assert_eq!(
        own.expect("as herself")
            .spec
            .acknowledgment
            .map(|a| a.by)
            .as_deref(),
        Some("alice")
    );

    let note = patch(
        &alice,
        ns,
        "db",
        json!({ "notes": [ { "author": "bob", "text": "it was bob" } ] }),
    )
    .await;
    assert!(
        note.expect_err("a note as bob")
            .contains("spec.notes must name you, alice")
    );
    patch(
        &alice,
        ns,
        "db",
        json!({ "notes": [ { "author": "alice", "text": "looking" } ] }),
    )
    .await
    .expect("a note as herself");
    // A public update for the status page is signed the same way.
    let publication = json!({ "title": "Checkout is slow", "impact": "major" });
    let public = patch(
        &alice,
        ns,
        "db",
        json!({ "publication": publication,
        "publicUpdates": [ { "status": "investigating", "body": "looking", "author": "bob" } ] }),
    )
    .await;
    assert!(
        public
            .expect_err("a public update as bob")
            .contains("spec.publicUpdates must name you, alice")
    );
    patch(
        &alice,
        ns,
        "db",
        json!({ "publication": publication,
        "publicUpdates": [ { "status": "investigating", "body": "looking", "author": "alice" } ] }),
    )
    .await
    .expect("a public update as herself");
    let annotated = Api::<Incident>::namespaced(alice.clone(), ns)
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "incident.dev/actor": "bob" } } }),
            ),
        )
        .await;
    assert!(
        annotated.is_err(),
        "the actor annotation names the requester"
    );
    let resolved = patch(
        &alice,
        ns,
        "db",
        json!({ "resolution": { "by": "carol", "summary": "fixed" } }),
    )
    .await;
    assert!(
        resolved
            .expect_err("resolving as carol")
            .contains("spec.resolution.by must name you")
    );
}

#[tokio::test]
async fn nobody_makes_the_operator_change_a_deployment_they_may_not_change() {
    let (_client, ns, _policies, alice, bob) = setup_trust("trust-rights").await;
    let ns = ns.name.as_str();
    Api::<Incident>::namespaced(alice.clone(), ns)
        .create(
            &PostParams::default(),
            &incident("web", json!({ "title": "web down", "severity": "P1" })),
        )
        .await
        .expect("alice opens an incident");
    let rollback = |name: &str| json!({ "actions": [ { "name": name, "rollback": { "deployment": "web" } } ] });
    let denied = patch(&alice, ns, "web", rollback("undo"))
        .await
        .expect_err("alice may not patch web");
    assert!(
        denied.contains("alice may not patch it in namespace"),
        "{denied}"
    );
    let allowed = patch(&bob, ns, "web", rollback("undo"))
        .await
        .expect("bob may");
    assert_eq!(allowed.spec.actions.len(), 1);
    // A StatefulSet's action is judged on statefulsets (bob's Role has them, alice's nothing).
    let sts = json!({ "actions": [ { "name": "undo", "rollback": { "deployment": "web" } },
        { "name": "undo-db", "rollback": { "deployment": "db", "kind": "StatefulSet" } } ] });
    let denied = patch(&alice, ns, "web", sts.clone())
        .await
        .expect_err("alice may not patch db");
    assert!(
        denied.contains("(a Deployment, StatefulSet or DaemonSet)"),
        "{denied}"
    );
    let allowed = patch(&bob, ns, "web", sts).await.expect("bob may");
    assert_eq!(allowed.spec.actions.len(), 2);
    // An action already there is not judged again: alice may still edit the incident.
    patch(
        &alice,
        ns,
        "web",
        json!({ "description": "checkout fails" }),
    )
    .await
    .expect("other edits");

    // Approving needs the approve verb, even under one's own name.
    let approval = |by: &str| json!({ "approvals": [ { "step": "roll-back", "by": by } ] });
    let refused = patch(&alice, ns, "web", approval("alice"))
        .await
        .expect_err("alice cannot approve");
    assert!(refused.contains("needs the approve verb"), "{refused}");
    let approved = patch(&bob, ns, "web", approval("bob"))
        .await
        .expect("bob approves");
    assert_eq!(approved.spec.approvals[0].by, "bob");

    // A runbook that rolls back without approval needs the same right over Deployments.
    let runbook = |name: &str, approval: &str| -> Runbook {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook", "metadata": { "name": name },
            "spec": { "match": { "severities": ["P1"] },
                      "steps": [ { "name": "roll-back", "rollback": {}, "approval": approval } ] },
        }))
        .expect("a Runbook")
    };
    let alices = Api::<Runbook>::namespaced(alice.clone(), ns);
    let automatic = alices
        .create(&PostParams::default(), &runbook("auto", "Automatic"))
        .await;
    let error = automatic
        .expect_err("alice cannot automate a rollback")
        .to_string();
    assert!(error.contains("remediates without approval"), "{error}");
    alices
        .create(&PostParams::default(), &runbook("gated", "Required"))
        .await
        .expect("a gated runbook is fine");
    Api::<Runbook>::namespaced(bob.clone(), ns)
        .create(&PostParams::default(), &runbook("auto", "Automatic"))
        .await
        .expect("bob may automate it");
}

#[tokio::test]
async fn the_plugin_records_the_authenticated_user_and_the_policies_agree() {
    let (_client, ns, _policies, alice, _bob) = setup_trust("trust-plugin").await;
    let ns = ns.name.as_str();
    Api::<Incident>::namespaced(alice.clone(), ns)
        .create(
            &PostParams::default(),
            &incident("cart", json!({ "title": "cart slow", "severity": "P2" })),
        )
        .await
        .expect("alice opens an incident");
    // A kubeconfig whose user entry is called `admin` but which acts as alice: the plugin must
    // record alice, the name the API server authenticated.
    let mut kubeconfig: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(kubeconfig_path()).expect("read kubeconfig"),
    )
    .expect("kubeconfig YAML");
    if let Some(users) = kubeconfig["users"].as_sequence_mut() {
        for user in users {
            user["user"]["as"] = "alice".into();
            user["user"]["as-groups"] =
                serde_yaml_ng::to_value(["system:authenticated"]).expect("groups");
        }
    }
    let path = std::env::temp_dir().join(format!("incident-e2e-{ns}-alice.kubeconfig"));
    std::fs::write(&path, serde_yaml_ng::to_string(&kubeconfig).expect("YAML"))
        .expect("write kubeconfig");
    let plugin = env!("CARGO_BIN_EXE_kubectl-incident");
    let output = Command::new(plugin)
        .args(["ack", "cart", "-n", ns])
        .env("KUBECONFIG", &path)
        .output()
        .expect("run kubectl-incident");
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let acked = Api::<Incident>::namespaced(alice.clone(), ns)
        .get("cart")
        .await
        .expect("incident");
    assert_eq!(
        acked.spec.acknowledgment.map(|a| a.by).as_deref(),
        Some("alice")
    );
}
