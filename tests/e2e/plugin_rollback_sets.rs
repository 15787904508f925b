//! `kubectl incident rollback KIND/NAME` (issue 18): the plugin names a StatefulSet or DaemonSet as
//! `kubectl rollout undo` does, the operator rolls it back to the previous revision, and the
//! incident it opens names the workload with its kind.

use std::time::Duration;

use incident_operator::api::{ActionPhase, AffectedKind, Incident, WorkloadKind};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;

use crate::{
    parity_sets::{Kind, deploy, revisions, rolled_out},
    plugin::plugin_within,
    remediation::ROLLOUT,
    support::{Operator, TestNamespace, client, install_crds},
};

fn image(s: &StatefulSet) -> Option<String> {
    s.spec.template.spec.as_ref()?.containers[0].image.clone()
}

#[tokio::test]
async fn the_plugin_rolls_a_statefulset_back_named_as_kubectl_names_it() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "plugin-rollback-sts").await;
    let operator = Operator::start(&ns.name, &[]).await;
    deploy(&client, &ns.name, Kind::StatefulSet, "db", 1).await;
    deploy(&client, &ns.name, Kind::StatefulSet, "db", 2).await;

    let limit = ROLLOUT + Duration::from_secs(30);
    let output = plugin_within(&ns.name, &["rollback", "sts/db", "--timeout", "120"], limit).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("of statefulset db requested"), "{stdout}");
    assert!(stdout.trim_end().ends_with("Succeeded"), "{stdout}");
    let opened = first
        .strip_prefix("incident.incident.dev/")
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the incident named in the first line");

    let incident = Api::<Incident>::namespaced(client.clone(), &ns.name)
        .get(opened)
        .await
        .expect("the opened incident");
    assert_eq!(incident.spec.title, "Rollback of statefulset db");
    assert_eq!(incident.spec.affected[0].kind, AffectedKind::StatefulSet);
    let asked = incident.spec.actions[0]
        .rollback
        .as_ref()
        .expect("a rollback");
    assert_eq!(asked.kind, Some(WorkloadKind::StatefulSet));
    let done = &incident.status.as_ref().expect("status").actions[0];
    assert_eq!(done.phase, ActionPhase::Succeeded, "{done:?}");
    rolled_out(&client, &ns.name, Kind::StatefulSet, "db").await;
    let db = Api::<StatefulSet>::namespaced(client.clone(), &ns.name)
        .get("db")
        .await
        .expect("the StatefulSet");
    assert_eq!(image(&db).as_deref(), Some("registry.local/db:1"));
    // Like `kubectl rollout undo`: revision 1 comes back as a new revision 3.
    assert_eq!(revisions(&client, &ns.name, "db").await, [2, 3]);

    // A kind kubectl cannot undo is refused before any request.
    let refused = plugin_within(&ns.name, &["rollback", "job/db"], limit).await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("deployment, statefulset, daemonset or rollout"),
        "{said}"
    );
    operator.stop().await;
}
