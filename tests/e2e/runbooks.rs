//! Runbooks against the real API server: the examples are admitted and become Ready, admission
//! refuses what the schema can tell, a runbook only the operator can refuse is Stalled without
//! disturbing its neighbours, and the status counts the incidents that follow it.

use std::{path::PathBuf, time::Duration};

use incident_operator::api::{EntryType, Incident, Runbook};
use k8s_openapi::{api::events::v1::Event, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DeleteParams, DynamicObject, PostParams},
};
use serde_json::{Value, json};

use crate::support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all};

const SETTLE: Duration = Duration::from_secs(60);

async fn setup(prefix: &str) -> (Client, TestNamespace, Api<Runbook>) {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    let api = Api::namespaced(client.clone(), &ns.name);
    (client, ns, api)
}

/// Untyped, so the API server sees exactly what a user wrote.
fn untyped(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<Runbook>(&());
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn runbook(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": name }, "spec": spec,
    }))
    .expect("any JSON object")
}

/// The examples in `examples/runbooks/`, by file name.
fn examples() -> Vec<(String, DynamicObject)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/runbooks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/runbooks exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read example");
            let object: DynamicObject = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not one object: {e}", path.display()));
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            (file, object)
        })
        .collect()
}

fn condition<'a>(runbook: &'a Runbook, type_: &str) -> Option<&'a Condition> {
    runbook
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Status, reason and observedGeneration of a condition.
fn summary(runbook: &Runbook, type_: &str) -> Option<(String, String, Option<i64>)> {
    condition(runbook, type_).map(|c| (c.status.clone(), c.reason.clone(), c.observed_generation))
}

/// Ready=True, Stalled=False, both describing the current generation, as kstatus wants it.
fn current_and_ready(runbook: &Runbook) -> bool {
    let generation = runbook.metadata.generation;
    generation.is_some()
        && runbook.status.as_ref().and_then(|s| s.observed_generation) == generation
        && summary(runbook, "Ready") == Some(("True".into(), "Valid".into(), generation))
        && summary(runbook, "Stalled") == Some(("False".into(), "Valid".into(), generation))
}

fn current_and_stalled(runbook: &Runbook, reason: &str) -> bool {
    let generation = runbook.metadata.generation;
    generation.is_some()
        && runbook.status.as_ref().and_then(|s| s.observed_generation) == generation
        && summary(runbook, "Ready") == Some(("False".into(), reason.into(), generation))
        && summary(runbook, "Stalled") == Some(("True".into(), reason.into(), generation))
}

async fn settle(
    api: &Api<Runbook>,
    name: &str,
    what: &str,
    check: impl Fn(&Runbook) -> bool,
) -> Runbook {
    wait_for(api, name, what, SETTLE, |r| r.is_some_and(&check))
        .await
        .expect("Runbook exists")
}

#[tokio::test]
async fn every_example_runbook_is_admitted_and_becomes_ready() {
    let (client, ns, api) = setup("runbook-examples").await;
    let operator = Operator::start(&ns.name, &[]).await;
    let examples = examples();
    assert!(
        examples.len() >= 3,
        "examples/runbooks has the three runbooks"
    );
    let raw = untyped(&client, &ns.name);
    for (file, object) in &examples {
        assert_eq!(
            object.namespace(),
            None,
            "{file} leaves the namespace to kubectl -n"
        );
        raw.create(&PostParams::default(), object)
            .await
            .unwrap_or_else(|e| panic!("{file} is refused: {e}"));
    }
    for (file, object) in &examples {
        let ready = settle(&api, &object.name_any(), &format!("{file} Ready"), |r| {
            current_and_ready(r)
        })
        .await;
        let status = ready.status.as_ref().expect("status");
        assert_eq!(
            status.matched_incidents, 0,
            "{file}: no incident follows it yet"
        );
        assert_eq!(status.last_used, None, "{file}: never used");
        let message = condition(&ready, "Ready").map(|c| c.message.clone());
        assert!(
            message.as_ref().is_some_and(|m| !m.is_empty()),
            "{file}: Ready says why: {message:?}"
        );
    }
    operator.stop().await;
}

#[tokio::test]
async fn admission_refuses_what_the_schema_can_tell() {
    let (client, ns, _) = setup("runbook-invalid").await;
    let api = untyped(&client, &ns.name);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let one_kind = "a step needs exactly one of collect, rollback, restart, scale, verify, checkpoint or escalate";
    let cases = [
        (
            json!({ "steps": [] }),
            "spec.steps: Invalid value: 0: spec.steps in body should have at least 1 items"
                .to_owned(),
        ),
        (json!({}), "spec.steps: Required value".to_owned()),
        (
            json!({ "steps": [{ "name": "both", "rollback": {}, "verify": { "timeout": "5m" } }] }),
            format!("spec.steps[0]: Invalid value: {one_kind}"),
        ),
        (
            json!({ "steps": [{ "name": "look", "collect": {} }, { "name": "nothing" }] }),
            format!("spec.steps[1]: Invalid value: {one_kind}"),
        ),
        (
            json!({ "steps": [{ "name": "check", "verify": { "timeout": "soon" } }] }),
            "spec.steps[0].verify.timeout: Invalid value: \"soon\": spec.steps[0].verify.timeout in body should match '^([0-9]+(ms|s|m|h))+$'"
                .to_owned(),
        ),
        (
            json!({ "steps": [{ "name": "look", "collect": { "events": true }, "approval": "Required" }] }),
            "spec.steps[0]: Invalid value: approval applies to rollback, restart and scale steps only"
                .to_owned(),
        ),
    ];
    for (spec, expected) in cases {
        let error = match api.create(&dry_run, &runbook("bad", spec.clone())).await {
            Ok(_) => panic!("accepted an invalid Runbook: {spec}"),
            Err(kube::Error::Api(status)) => status.message,
            Err(other) => panic!("unexpected error for {spec}: {other}"),
        };
        assert!(
            error.contains(&expected),
            "for {spec}\nexpected: {expected}\n     got: {error}"
        );
    }
    // The valid form of the same runbook is admitted: the refusals are about the faults alone.
    let fine = json!({ "steps": [{ "name": "check", "verify": { "timeout": "5m" } }] });
    api.create(&dry_run, &runbook("fine", fine))
        .await
        .expect("a valid runbook is admitted");
}

#[tokio::test]
async fn a_runbook_only_the_operator_can_refuse_is_stalled_until_fixed() {
    let (client, ns, api) = setup("runbook-stalled").await;
    let operator = Operator::start(&ns.name, &[]).await;
    let raw = untyped(&client, &ns.name);
    let steps = json!([{ "name": "gather", "collect": { "events": true, "podStates": true } }]);
    raw.create(
        &PostParams::default(),
        &runbook(
            "good",
            json!({ "match": { "signals": ["CrashLoopBackOff"] }, "steps": steps }),
        ),
    )
    .await
    .expect("create the valid runbook");
    // An unknown operator is refused at admission, naming the field.
    let near = json!({ "matchExpressions": [{ "key": "zone", "operator": "Near", "values": ["eu-west"] }] });
    let refused = raw
        .create(
            &PostParams::default(),
            &runbook(
                "near",
                json!({ "match": { "workloadSelector": near }, "steps": steps }),
            ),
        )
        .await
        .expect_err("the schema refuses the unknown operator")
        .to_string();
    assert!(
        refused.contains("spec.match.workloadSelector.matchExpressions[0].operator")
            && refused.contains("Near"),
        "{refused}"
    );
    // So is a label value's syntax.
    let spaced =
        json!({ "matchExpressions": [{ "key": "zone", "operator": "In", "values": ["eu west"] }] });
    let refused = raw
        .create(
            &PostParams::default(),
            &runbook(
                "spaced",
                json!({ "match": { "workloadSelector": spaced }, "steps": steps }),
            ),
        )
        .await
        .expect_err("the schema refuses the value")
        .to_string();
    assert!(
        refused.contains("spec.match.workloadSelector.matchExpressions[0].values[0]"),
        "{refused}"
    );
    // A blank signal name is the operator's to judge: admitted, then reported.
    raw.create(
        &PostParams::default(),
        &runbook(
            "broken",
            json!({ "match": { "signals": [" "] }, "steps": steps }),
        ),
    )
    .await
    .expect("the schema admits the blank name");

    let broken = settle(&api, "broken", "Stalled with InvalidMatch", |r| {
        current_and_stalled(r, "InvalidMatch")
    })
    .await;
    let message = condition(&broken, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("match.signals[0] is blank"),
        "the message names the field: {message}"
    );
    assert_eq!(
        condition(&broken, "Stalled").map(|c| c.message.clone()),
        Some(message.clone())
    );
    let good = settle(
        &api,
        "good",
        "Ready beside the broken one",
        current_and_ready,
    )
    .await;
    assert_eq!(broken.metadata.generation, Some(1));

    // Fixed the way `kubectl edit` does it: the whole object back, with its resourceVersion.
    let mut fixed = raw.get("broken").await.expect("get the broken runbook");
    fixed.data["spec"]["match"]["signals"] = json!(["CrashLoopBackOff"]);
    raw.replace("broken", &PostParams::default(), &fixed)
        .await
        .expect("update the runbook");
    let ready = settle(&api, "broken", "Ready after the fix", current_and_ready).await;
    // Each verdict is an Event on the runbook, once: NotReady with the reason, then Ready.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let about_broken = |found: &[Event]| -> Vec<(String, String, String)> {
        found
            .iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Runbook") && r.name.as_deref() == Some("broken")
                })
            })
            .map(|e| {
                (
                    e.reason.clone().unwrap_or_default(),
                    e.type_.clone().unwrap_or_default(),
                    e.note.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    let found = wait_for_all(&events, "", "NotReady then Ready Events", SETTLE, |found| {
        about_broken(found).len() >= 2
    })
    .await;
    let mut verdicts = about_broken(&found);
    verdicts.sort();
    assert_eq!(verdicts.len(), 2, "{verdicts:#?}");
    assert_eq!(
        (verdicts[0].0.as_str(), verdicts[0].1.as_str()),
        ("NotReady", "Warning")
    );
    assert!(verdicts[0].2.contains("match.signals[0]"), "{verdicts:#?}");
    assert_eq!(
        (verdicts[1].0.as_str(), verdicts[1].1.as_str()),
        ("Ready", "Normal")
    );
    assert_eq!(
        ready.metadata.generation,
        Some(2),
        "the edit made a new generation"
    );
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.observed_generation),
        Some(2)
    );
    let (was, now) = (
        condition(&broken, "Ready").map(|c| c.last_transition_time.clone()),
        condition(&ready, "Ready").map(|c| c.last_transition_time.clone()),
    );
    assert!(
        now >= was,
        "Ready moved forward in time: {was:?} -> {now:?}"
    );

    // The neighbour was never touched: same status, to the transition times.
    let good_after = api.get("good").await.expect("get the valid runbook");
    assert_eq!(
        good_after.status, good.status,
        "the valid runbook's status did not move"
    );
    operator.stop().await;
}

#[tokio::test]
async fn the_status_counts_the_incidents_that_follow_the_runbook() {
    let (client, ns, api) = setup("runbook-usage").await;
    let operator = Operator::start(&ns.name, &[]).await;
    // A checkpoint waits for a person: the runs stay open and touch nothing in the cluster.
    let steps = json!([{ "name": "look", "checkpoint": { "prompt": "Have a look" } }]);
    untyped(&client, &ns.name)
        .create(
            &PostParams::default(),
            &runbook(
                "triage",
                json!({ "match": { "incidentSelector": { "matchLabels": { "team": "checkout" } } },
                        "steps": steps }),
            ),
        )
        .await
        .expect("create runbook");
    settle(&api, "triage", "Ready", current_and_ready).await;

    // One incident matched by its labels, one naming the runbook, one neither.
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let cases = [
        ("first", json!({ "team": "checkout" }), json!(null)),
        ("second", json!({}), json!({ "name": "triage" })),
        ("unrelated", json!({ "team": "search" }), json!(null)),
    ];
    for (name, labels, reference) in cases {
        let incident: Incident = serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": name, "labels": labels },
            "spec": { "title": "Checkout is slow", "severity": "P3", "runbookRef": reference },
        }))
        .expect("Incident");
        incidents
            .create(&PostParams::default(), &incident)
            .await
            .expect("create incident");
    }
    let follows_triage = |incident: Option<&Incident>| {
        incident
            .and_then(|i| i.status.as_ref())
            .and_then(|s| s.runbook.as_ref())
            .is_some_and(|run| run.name == "triage")
    };
    for name in ["first", "second"] {
        wait_for(&incidents, name, "follows triage", SETTLE, follows_triage).await;
    }
    // The lifecycle controller chooses the runbook in its first write, with the phase.
    let unrelated = wait_for(&incidents, "unrelated", "Detected", SETTLE, |i| {
        i.and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.phase.is_some())
    })
    .await
    .expect("unrelated exists");
    assert_eq!(
        unrelated.status.as_ref().and_then(|s| s.runbook.as_ref()),
        None,
        "an incident the runbook does not match does not follow it"
    );
    let second = incidents.get("second").await.expect("get second");
    let latest = second
        .metadata
        .creation_timestamp
        .clone()
        .expect("creationTimestamp");
    let counted = settle(&api, "triage", "two incidents follow it", |r| {
        r.status.as_ref().is_some_and(|s| s.matched_incidents == 2)
    })
    .await;
    let last_used = counted
        .status
        .as_ref()
        .and_then(|s| s.last_used.clone())
        .expect("lastUsed is set");
    assert!(
        last_used >= latest,
        "lastUsed {last_used:?} is before the latest follower's creation {latest:?}"
    );

    // Deleting a follower lowers the count; when it was last used stays.
    incidents
        .delete("second", &DeleteParams::default())
        .await
        .expect("delete incident");
    let after = settle(&api, "triage", "one incident follows it", |r| {
        r.status.as_ref().is_some_and(|s| s.matched_incidents == 1)
    })
    .await;
    let still = after.status.as_ref().and_then(|s| s.last_used.clone());
    assert!(
        still.as_ref().is_some_and(|t| *t >= last_used),
        "lastUsed did not move back: {last_used:?} -> {still:?}"
    );
    assert!(current_and_ready(&after), "still Ready: {:?}", after.status);
    operator.stop().await;
}

fn incident_condition<'a>(incident: &'a Incident, type_: &str) -> Option<&'a Condition> {
    incident
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn unusable_entries(incident: &Incident) -> usize {
    incident.status.as_ref().map_or(0, |s| {
        s.timeline
            .iter()
            .filter(|e| e.type_ == EntryType::RunbookUnusable)
            .count()
    })
}

#[tokio::test]
async fn an_incident_naming_a_missing_runbook_says_so_once_and_follows_it_once_it_exists() {
    let (client, ns, api) = setup("runbook-missing").await;
    let operator = Operator::start(&ns.name, &[]).await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "slow" },
        "spec": { "title": "Checkout is slow", "severity": "P3",
                  "runbookRef": { "name": "triage" } },
    }))
    .expect("Incident");
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create incident");
    let waiting = wait_for(&incidents, "slow", "RunbookUsable=False", SETTLE, |i| {
        i.and_then(|i| incident_condition(i, "RunbookUsable"))
            .is_some_and(|c| c.status == "False")
    })
    .await
    .expect("incident exists");
    let usable = incident_condition(&waiting, "RunbookUsable").expect("condition");
    assert_eq!(usable.reason, "NotFound");
    assert_eq!(usable.message, "runbook triage not found");
    assert_eq!(unusable_entries(&waiting), 1, "{:?}", waiting.status);

    // A Runbook edit elsewhere in the namespace wakes the incident; the problem is not repeated.
    let steps = json!([{ "name": "look", "checkpoint": { "prompt": "Have a look" } }]);
    let raw = untyped(&client, &ns.name);
    raw.create(
        &PostParams::default(),
        &runbook(
            "other",
            json!({ "match": { "signals": ["OOMKilled"] }, "steps": steps }),
        ),
    )
    .await
    .expect("create another runbook");
    settle(&api, "other", "Ready", current_and_ready).await;
    let still = incidents.get("slow").await.expect("get incident");
    assert_eq!(
        unusable_entries(&still),
        1,
        "recorded once: {:?}",
        still.status
    );

    // The runbook arrives (e.g. Argo CD synced it later): the incident follows it.
    raw.create(
        &PostParams::default(),
        &runbook("triage", json!({ "match": {}, "steps": steps })),
    )
    .await
    .expect("create the named runbook");
    let following = wait_for(&incidents, "slow", "RunbookUsable=True", SETTLE, |i| {
        i.and_then(|i| incident_condition(i, "RunbookUsable"))
            .is_some_and(|c| c.status == "True")
    })
    .await
    .expect("incident exists");
    let usable = incident_condition(&following, "RunbookUsable").expect("condition");
    assert_eq!(usable.reason, "Following");
    assert_eq!(
        following
            .status
            .as_ref()
            .and_then(|s| s.runbook.as_ref())
            .map(|r| r.name.as_str()),
        Some("triage")
    );
    assert_eq!(unusable_entries(&following), 1);
    operator.stop().await;
}
