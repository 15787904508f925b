//! `kubectl incident create`, run as a binary against the real API server and operator: a
//! person's report becomes an Incident with its source, reporter and ticket, `show` and the
//! post-mortem draft say how it came in, bad flags are refused before any request, and a refusal
//! by the cluster's admission reads clearly.

use std::{
    process::Output,
    time::{Duration, Instant},
};

use incident_operator::api::{AffectedKind, EntryType, Incident, Phase, Severity};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::json;
use tokio::process::Command;

use crate::{
    plugin::{authenticated_user, ok, plugin},
    support::{Operator, TestNamespace, cleanup, client, install_crds, wait_for},
};

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-incident");

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The incident `create` printed, from `incident.incident.dev/NAME created`.
fn created_name(out: &str) -> String {
    out.trim()
        .strip_prefix("incident.incident.dev/")
        .and_then(|rest| rest.strip_suffix(" created"))
        .unwrap_or_else(|| panic!("not a kubectl-style created line: {out:?}"))
        .to_owned()
}

#[tokio::test]
async fn plugin_create_opens_a_reported_incident() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "plugin-create").await;
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let operator = Operator::start(&ns.name, &[]).await;
    let user = authenticated_user(&client).await;
    let name = "checkout-hangs";

    // Every flag: each lands in its field.
    let output = plugin(
        &ns.name,
        &[
            "create",
            "--title",
            "Checkout hangs at payment",
            "--severity",
            "P1",
            "--source",
            "support-ticket",
            "--reporter",
            "carla@example.com",
            "--ticket",
            "https://tickets.example/T-1234",
            "--deployment",
            "checkout",
            "--deployment",
            "payments",
            "--description",
            "Three customers wrote in since 10:00.",
            "--commander",
            "ana",
            name,
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("incident.incident.dev/{name} created\n")
    );
    assert_eq!(
        stderr(&output),
        "",
        "every field kept, nothing to warn about"
    );
    let incident = api.get(name).await.expect("the created incident");
    let spec = &incident.spec;
    assert_eq!(spec.title, "Checkout hangs at payment");
    assert_eq!(spec.severity, Severity::P1);
    assert_eq!(spec.source.as_deref(), Some("support-ticket"));
    assert_eq!(spec.reporter.as_deref(), Some("carla@example.com"));
    assert_eq!(
        spec.ticket.as_deref(),
        Some("https://tickets.example/T-1234")
    );
    assert_eq!(
        spec.description.as_deref(),
        Some("Three customers wrote in since 10:00.")
    );
    assert_eq!(spec.commander.as_deref(), Some("ana"));
    let affected: Vec<(AffectedKind, &str)> = spec
        .affected
        .iter()
        .map(|a| (a.kind, a.name.as_str()))
        .collect();
    assert_eq!(
        affected,
        [
            (AffectedKind::Deployment, "checkout"),
            (AffectedKind::Deployment, "payments")
        ]
    );
    assert!(spec.acknowledgment.is_none(), "a report is not a claim");
    assert_eq!(
        incident
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("incident.dev/actor")),
        Some(&user)
    );
    let managers: Vec<&str> = incident
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .collect();
    assert_eq!(managers, ["kubectl-incident"], "written as the plugin");

    // The operator takes it from there like any incident.
    let detected = wait_for(&api, name, "Detected", Duration::from_secs(60), |i| {
        i.and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.phase == Some(Phase::Detected))
    })
    .await
    .expect("Incident");
    assert!(
        detected
            .status
            .as_ref()
            .is_some_and(|s| s.timeline.iter().any(|e| e.type_ == EntryType::Detected)),
        "{detected:?}"
    );

    // show and the post-mortem draft say how it came to us.
    let page = ok(&ns.name, &["show", name]).await;
    for expected in [
        "Title:        Checkout hangs at payment",
        "Severity:     P1",
        "Commander:    ana",
        "Source:       support-ticket",
        "Reporter:     carla@example.com",
        "Ticket:       https://tickets.example/T-1234",
        "Affected:     Deployment checkout, Deployment payments",
        "Description:  Three customers wrote in since 10:00.",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in:\n{page}");
    }
    let draft = ok(&ns.name, &["postmortem", name]).await;
    for expected in [
        "| **Reported via** | support-ticket |",
        "| **Reported by** | carla@example.com |",
        "| **Ticket** | https://tickets.example/T-1234 |",
    ] {
        assert!(
            draft.contains(expected),
            "missing {expected:?} in:\n{draft}"
        );
    }

    // The least a report needs: a generated name, a user report by the authenticated user.
    let out = ok(
        &ns.name,
        &["create", "--title", "Search is slow", "--severity", "p3"],
    )
    .await;
    let generated = created_name(&out);
    assert!(generated.starts_with("report-"), "{out}");
    let minimal = api.get(&generated).await.expect("the generated incident");
    assert_eq!(minimal.spec.severity, Severity::P3);
    assert_eq!(minimal.spec.source.as_deref(), Some("user-report"));
    assert_eq!(minimal.spec.reporter.as_deref(), Some(user.as_str()));
    assert_eq!(minimal.spec.ticket, None);
    assert!(minimal.spec.affected.is_empty());
    let page = ok(&ns.name, &["show", &generated]).await;
    assert!(page.contains(&format!("Reporter:     {user}")), "{page}");
    assert!(!page.contains("Ticket:"), "{page}");

    // A name already taken: refused, the first incident untouched.
    let output = plugin(
        &ns.name,
        &["create", "--title", "again", "--severity", "P0", name],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output).trim(),
        format!("Error: incident \"{name}\" already exists")
    );
    assert_eq!(
        api.get(name).await.expect("still there").spec.severity,
        Severity::P1
    );
    operator.stop().await;
}

/// Runs the plugin against a cluster that does not exist: whatever it prints comes from the
/// flags alone, since any request would fail with exit code 1.
async fn offline(args: &[&str]) -> Output {
    Command::new(PLUGIN)
        .args(["--kubeconfig", "/nonexistent/kubeconfig", "-n", "nowhere"])
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run kubectl-incident")
}

#[tokio::test]
async fn plugin_create_refuses_bad_flags_before_any_request() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "plugin-create-bad").await;
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns.name);

    let cases: [(&[&str], &[&str]); 5] = [
        (
            &[
                "--title",
                "x",
                "--severity",
                "P2",
                "--ticket",
                "ftp://tickets.example/1",
            ],
            &["--ticket <URL>", "must start with http:// or https://"],
        ),
        (
            &["--title", "x", "--severity", "P2", "--ticket", "https://"],
            &["--ticket <URL>", "names no host"],
        ),
        (
            &["--title", "x"],
            &[
                "required arguments were not provided",
                "--severity <SEVERITY>",
            ],
        ),
        (
            &["--title", "x", "--severity", "P7"],
            &["--severity <SEVERITY>", "use P0, P1, P2 or P3"],
        ),
        (
            &[
                "--title",
                "x",
                "--severity",
                "P2",
                "--source",
                "User Report",
            ],
            &["--source <SOURCE>", "lowercase words joined by dashes"],
        ),
    ];
    for (flags, expected) in cases {
        let args: Vec<&str> = ["create"].iter().chain(flags).copied().collect();
        // Against the real cluster and against none: the same usage error, exit code 2.
        for output in [plugin(&ns.name, &args).await, offline(&args).await] {
            let stderr = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(output.stdout.is_empty(), "{args:?}");
            for text in expected {
                assert!(
                    stderr.contains(text),
                    "{args:?}: missing {text:?} in {stderr}"
                );
            }
            assert!(
                stderr.starts_with("error: "),
                "clap's usage error: {stderr}"
            );
        }
    }
    let many: Vec<String> = (0..21).map(|n| format!("web-{n}")).collect();
    let mut args = vec!["create", "--title", "x", "--severity", "P2"];
    for deployment in &many {
        args.extend(["--deployment", deployment.as_str()]);
    }
    let output = offline(&args).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: --deployment: at most 20 deployments"),
        "{}",
        stderr(&output)
    );

    let left = api
        .list(&ListParams::default())
        .await
        .expect("list incidents");
    assert!(left.items.is_empty(), "nothing written: {:?}", left.items);
}

/// A ValidatingAdmissionPolicy (and its binding) of one test, deleted when dropped.
struct TicketPolicy {
    name: String,
}

impl TicketPolicy {
    /// In `namespace` only: tickets must live at https://tickets.example/.
    async fn install(client: &Client, namespace: &str) -> Self {
        let name = format!("e2e-tickets-{namespace}");
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": { "name": name },
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": { "resourceRules": [{
                    "apiGroups": ["incident.dev"], "apiVersions": ["v1alpha1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["incidents"],
                }] },
                "validations": [{
                    "expression": "!has(object.spec.ticket) || \
                                   object.spec.ticket.startsWith('https://tickets.example/')",
                    "message": "tickets live at https://tickets.example/",
                }],
            },
        }))
        .expect("ValidatingAdmissionPolicy");
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": name },
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": { "namespaceSelector": {
                    "matchLabels": { "kubernetes.io/metadata.name": namespace } } },
            },
        }))
        .expect("ValidatingAdmissionPolicyBinding");
        let installed = Self { name };
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .create(&PostParams::default(), &policy)
            .await
            .expect("create ValidatingAdmissionPolicy");
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .expect("create ValidatingAdmissionPolicyBinding");
        installed
    }
}

impl Drop for TicketPolicy {
    fn drop(&mut self) {
        let name = self.name.clone();
        cleanup("ticket admission policy", move |client| async move {
            let params = DeleteParams::default();
            Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
                .delete(&name, &params)
                .await?;
            Api::<ValidatingAdmissionPolicy>::all(client)
                .delete(&name, &params)
                .await
                .map(|_| ())
        });
    }
}

/// Waits until the API server enforces the policy (it loads policies in the background): a
/// dry-run create with a ticket elsewhere is refused.
async fn until_enforced(api: &Api<Incident>) {
    let probe: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "probe" },
        "spec": { "title": "probe", "severity": "P3", "ticket": "https://elsewhere.example/1" },
    }))
    .expect("Incident");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.create(&dry_run, &probe).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the admission policy was not enforced within 30s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn plugin_create_says_why_admission_refused_a_report() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "plugin-create-policy").await;
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let _policy = TicketPolicy::install(&client, &ns.name).await;
    until_enforced(&api).await;

    // A well-formed ticket the cluster's policy does not allow: the API server's reason, exit 1.
    let output = plugin(
        &ns.name,
        &[
            "create",
            "--title",
            "Login fails",
            "--severity",
            "P2",
            "--ticket",
            "https://elsewhere.example/42",
        ],
    )
    .await;
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "{}", stdout(&output));
    assert!(
        stderr.starts_with("Error: the API server refused the incident: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("tickets live at https://tickets.example/"),
        "the policy's message: {stderr}"
    );
    assert!(
        !stderr.contains("ApiError"),
        "no client internals: {stderr}"
    );
    let left = api
        .list(&ListParams::default())
        .await
        .expect("list incidents");
    assert!(left.items.is_empty(), "nothing written: {:?}", left.items);

    // The same report with a ticket where the policy wants it goes through.
    let out = ok(
        &ns.name,
        &[
            "create",
            "--title",
            "Login fails",
            "--severity",
            "P2",
            "--ticket",
            "https://tickets.example/42",
        ],
    )
    .await;
    let name = created_name(&out);
    let incident = api.get(&name).await.expect("the created incident");
    assert_eq!(
        incident.spec.ticket.as_deref(),
        Some("https://tickets.example/42")
    );
}
