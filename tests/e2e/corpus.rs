//! The corpus of invalid objects (tests/corpus/invalid.yaml) against the real API server and the
//! running operator: each is refused at admission with a message naming the field, or admitted and
//! then reported on the object as a condition within seconds; none is ignored, none stops the
//! operator.

use std::time::{Duration, Instant};

use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde::Deserialize;
use serde_json::Value;

use crate::{lifecycle::setup, support::Operator};

#[derive(Deserialize)]
struct Case {
    case: String,
    #[serde(deserialize_with = "expectation")]
    expect: Expect,
    object: Value,
}

fn expectation<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Expect, D::Error> {
    Expected::deserialize(d).map(Expect::from)
}

/// Exactly one of the two.
#[derive(Deserialize)]
struct Expected {
    admission: Option<String>,
    condition: Option<Shown>,
}

#[derive(Deserialize, Debug)]
struct Shown {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: String,
}

enum Expect {
    Admission(String),
    Condition {
        type_: String,
        status: String,
        reason: String,
    },
}

impl From<Expected> for Expect {
    fn from(e: Expected) -> Self {
        match (e.admission, e.condition) {
            (Some(text), None) => Expect::Admission(text),
            (None, Some(c)) => Expect::Condition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
            },
            _ => panic!("a corpus case expects exactly one of admission or condition"),
        }
    }
}

fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "Incident" => "incidents",
        "Runbook" => "runbooks",
        "Channel" => "channels",
        "OnCallSchedule" => "oncallschedules",
        "EscalationPolicy" => "escalationpolicies",
        other => panic!("the corpus names an unknown kind {other}"),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("incident.dev", "v1alpha1", kind),
        plural,
    )
}

fn cases() -> Vec<Case> {
    let text = include_str!("../corpus/invalid.yaml");
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Case::deserialize(doc).expect("a corpus case"))
        .collect()
}

#[tokio::test]
async fn every_invalid_object_is_refused_early_or_reported_and_none_stops_the_operator() {
    let (client, ns, _api) = setup("corpus").await;
    let mut operator = Operator::start(&ns.name, &[]).await;
    let cases = cases();
    let mut wrong = Vec::new();
    let mut pending = Vec::new();
    let (mut refused, mut reported) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let kind = case.object["kind"].as_str().unwrap_or_default().to_owned();
        let resource = resource(&kind);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource);
        let mut object: DynamicObject =
            serde_json::from_value(case.object.clone()).expect("an object");
        object.metadata.name = Some(format!("case-{i}"));
        let created = api.create(&PostParams::default(), &object).await;
        match (&case.expect, created) {
            (Expect::Admission(text), Err(kube::Error::Api(status)))
                if status.message.contains(text.as_str()) =>
            {
                refused += 1;
            }
            (Expect::Admission(text), outcome) => wrong.push(format!(
                "{}: expected a refusal mentioning {text:?}, got {:?}",
                case.case,
                outcome.map(|_| "admitted").map_err(|e| e.to_string())
            )),
            (Expect::Condition { .. }, Ok(_)) => pending.push((i, api)),
            (Expect::Condition { .. }, Err(error)) => wrong.push(format!(
                "{}: expected admission, refused: {error}",
                case.case
            )),
        }
    }
    // What only the operator can know shows as a condition on the object within seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (i, api) in pending {
            let Expect::Condition {
                type_,
                status,
                reason,
            } = &cases[i].expect
            else {
                continue;
            };
            let object = api
                .get(&format!("case-{i}"))
                .await
                .expect("the admitted object");
            let shown = object.data["status"]["conditions"]
                .as_array()
                .is_some_and(|conditions| {
                    conditions.iter().any(|c| {
                        c["type"] == type_.as_str()
                            && c["status"] == status.as_str()
                            && c["reason"] == reason.as_str()
                    })
                });
            if shown {
                reported += 1;
            } else {
                still.push((i, api));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (i, _) in &pending {
        wrong.push(format!(
            "{}: no condition {:?} within 60s",
            cases[*i].case,
            cases[*i].expect_text()
        ));
    }
    let alive = operator
        .child
        .try_wait()
        .expect("the operator's state")
        .is_none();
    eprintln!(
        "corpus: {} cases, {refused} refused at admission, {reported} reported as conditions, operator running: {alive}",
        cases.len()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(alive, "the operator stopped");
    operator.stop().await;
}

impl Case {
    fn expect_text(&self) -> String {
        match &self.expect {
            Expect::Admission(text) => text.clone(),
            Expect::Condition {
                type_,
                status,
                reason,
            } => format!("{type_}={status} {reason}"),
        }
    }
}
