//! Idle incidents cost nothing: once open incidents have settled, looking at them again (as at a
//! deadline, here forced by touching each one's labels) sends no GET, LIST or write to the API server.
//! Counted by the operator's own request counter (`incident_operator_api_requests_total`, a layer on
//! its client), since the API server's counters cannot tell one client from another.

use std::{collections::BTreeMap, time::Duration};

use incident_operator::api::{Incident, Phase, Runbook};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    lifecycle::{incident, phase},
    remediation::{create_rolled_out, deployment},
    support::{Operator, TestNamespace, client, get, install_crds, wait_for, wait_for_all},
};

const INCIDENTS: usize = 20;
const RECONCILIATIONS: &str = "incident_operator_reconciliations_total";

/// Requests sent so far, by "verb resource", watches left out (they stay open, they do not poll).
async fn requests(operator: &Operator) -> BTreeMap<String, f64> {
    let (_, text) = get(operator.addr, "/metrics").await.expect("GET /metrics");
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("incident_operator_api_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = labels.rsplit_once("} ") else {
            continue;
        };
        let field = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let verb = field("verb");
        if verb == "watch" {
            continue;
        }
        let value: f64 = value.parse().expect("a number");
        counts.insert(format!("{verb} {}", field("resource")), value);
    }
    counts
}

#[tokio::test]
async fn settled_incidents_looked_at_again_cost_no_reads_or_writes() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "idle").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    create_rolled_out(
        &deployments,
        &deployment("web", &["registry.local/web:1"], None),
        Duration::from_secs(90),
    )
    .await;
    // A runbook none of the incidents matches: each one would look for another at every pass.
    let runbook: Runbook = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": "oom" },
        "spec": { "match": { "signals": ["OOMKilled"] }, "steps": [{ "name": "look", "collect": { "events": true } }] },
    }))
    .expect("a Runbook");
    Api::<Runbook>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &runbook)
        .await
        .expect("create Runbook");
    let operator = Operator::start(&ns.name, &[]).await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    for i in 0..INCIDENTS {
        let spec = json!({
            "title": format!("Web is slow {i}"), "severity": "P2",
            "affected": [{ "kind": "Deployment", "name": "web" }],
        });
        incidents
            .create(
                &PostParams::default(),
                &incident(&format!("slow-{i}"), spec),
            )
            .await
            .expect("create Incident");
    }
    wait_for_all(
        &incidents,
        "",
        "every incident settled (Detected, its conditions written)",
        Duration::from_secs(60),
        |all| {
            all.len() == INCIDENTS
                && all.iter().all(|i| {
                    phase(i) == Some(Phase::Detected)
                        && i.status.as_ref().is_some_and(|s| {
                            s.conditions.iter().any(|c| c.type_ == "AffectedFound")
                        })
                })
        },
    )
    .await;

    // A change to its labels makes the controller look at each incident once more. The first round
    // lets the writes that settled them (and their echoes) pass; the second is the measured one.
    let look_again = |round: &'static str| {
        let incidents = incidents.clone();
        let operator = &operator;
        async move {
            let reconciled = operator.metric(RECONCILIATIONS).await.unwrap_or(0.0);
            for i in 0..INCIDENTS {
                incidents
                    .patch(
                        &format!("slow-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "metadata": { "labels": { "e2e.incident.dev/looked": round } } })),
                    )
                    .await
                    .expect("label Incident");
            }
            operator
                .await_metric(RECONCILIATIONS, |v| {
                    v.unwrap_or(0.0) >= reconciled + INCIDENTS as f64
                })
                .await;
        }
    };
    look_again("once").await;
    wait_for(
        &Api::<Runbook>::namespaced(client.clone(), &ns.name),
        "oom",
        "the Runbook's status written",
        Duration::from_secs(30),
        |r| {
            r.and_then(|r| r.status.as_ref())
                .is_some_and(|s| !s.conditions.is_empty())
        },
    )
    .await;
    // On a busy machine the writes that settled them may still trail a round: a settled incident
    // costs nothing on some round, and a per-look cost would show on every one.
    let mut sent = Vec::new();
    for round in ["twice", "thrice", "fourfold"] {
        let before = requests(&operator).await;
        look_again(round).await;
        let after = requests(&operator).await;
        sent = after
            .iter()
            .filter(|(key, count)| before.get(*key).copied().unwrap_or(0.0) < **count)
            .map(|(key, count)| {
                format!(
                    "{key}: +{}",
                    count - before.get(key).copied().unwrap_or(0.0)
                )
            })
            .collect();
        if sent.is_empty() {
            break;
        }
        eprintln!("idle: looking {round} sent {sent:?}");
    }
    assert!(
        sent.is_empty(),
        "{INCIDENTS} settled incidents looked at again sent requests: {sent:?}"
    );
    operator.stop().await;
}
