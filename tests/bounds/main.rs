//! Object-size bounds (no cluster): the largest spec each CRD's schema admits, and the largest
//! Incident status the operator writes, stay so far under etcd's request limit (1.5 MiB) that the
//! object's metadata (annotations alone may take 256 KiB) still fits. Text is counted one byte a
//! character (ASCII); other scripts take more, and a status write that still fails is reported
//! once (`StatusNotWritten`) — see docs/security.md.

use incident_operator::{
    api::{
        Channel, EscalationPolicy, Incident, IncidentStatus, MAX_ALERTS, MAX_ALSO_MANAGED,
        MAX_IMAGE, MAX_IMAGES, MAX_NOTES, MAX_NOTIFICATIONS, MAX_PAGE_CHANNELS, MAX_PAGES,
        MAX_PAUSES, MAX_PUBLIC_BODY, MAX_RECORDED_PUBLIC_UPDATES, MAX_THREADS, MAX_TIMELINE,
        MAX_UPDATES, OnCallSchedule, Runbook,
    },
    core::{
        detection::evidence::{MAX_CONTAINERS, MAX_EVENTS, MAX_LOG_BYTES, MAX_REVISIONS},
        notify::{delivery::MAX_ERROR, outbox::MAX_SUMMARY},
        text::MAX_CONDITION_MESSAGE,
        timeline::{MAX_ACTOR, MAX_MESSAGE},
    },
};
use kube::CustomResourceExt;
use serde_json::{Value, json};

const KIB: u64 = 1024;
/// The largest Incident spec the schema admits.
const INCIDENT_SPEC_BUDGET: u64 = 384 * KIB;
/// The largest spec of every other resource (their status is a few conditions).
const SPEC_BUDGET: u64 = 512 * KIB;
/// The largest Incident status the operator writes.
const INCIDENT_STATUS_BUDGET: u64 = 672 * KIB;
/// Spec and status together, leaving etcd's 1.5 MiB minus this for metadata.
const INCIDENT_BUDGET: u64 = 1024 * KIB;

/// Bytes of the largest JSON the schema node admits.
fn worst_bytes(node: &Value) -> u64 {
    let get = |key: &str| node.get(key).and_then(Value::as_u64);
    match node.get("type").and_then(Value::as_str) {
        Some("string") => {
            let longest_enum = node.get("enum").and_then(Value::as_array).map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::len)
                    .max()
                    .unwrap_or(0) as u64
            });
            let format = node.get("format").map(|_| 40);
            let length = get("maxLength").or(longest_enum).or(format);
            length.expect("a bounded string (see api::tests)") + 2
        }
        Some("integer") | Some("number") => 20,
        Some("boolean") => 5,
        Some("array") => {
            let items = node.get("items").map_or(0, worst_bytes);
            get("maxItems").expect("a bounded list") * (items + 1) + 2
        }
        _ => {
            let mut total = 2;
            if let Some(properties) = node.get("properties").and_then(Value::as_object) {
                for (name, child) in properties {
                    total += name.len() as u64 + 4 + worst_bytes(child);
                }
            }
            if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
                total += get("maxProperties").expect("a bounded map")
                    * (longest_key(node) + 4 + worst_bytes(values));
            }
            total
        }
    }
}

/// A map's longest key: what a `size(k) <= N` rule allows, else a qualified label key's 317.
fn longest_key(node: &Value) -> u64 {
    let rules = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array);
    rules
        .into_iter()
        .flatten()
        .filter_map(|r| r["rule"].as_str())
        .find_map(|rule| {
            let rest = rule.split("size(k) <= ").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(317)
}

fn schema_of(crd: &impl serde::Serialize) -> Value {
    let crd = serde_json::to_value(crd).expect("CRD as JSON");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn worst_spec(crd: &impl serde::Serialize) -> u64 {
    worst_bytes(&schema_of(crd)["properties"]["spec"])
}

fn text(n: usize) -> String {
    "x".repeat(n)
}

fn time() -> &'static str {
    "2026-11-30T12:00:00Z"
}

/// Evidence at every bound of the detector's collection.
fn worst_evidence() -> Value {
    json!({
        "containers": (0..MAX_CONTAINERS).map(|_| json!({
            "pod": text(253), "container": text(63), "state": text(64), "restarts": 1_000_000,
            "lastTerminationReason": text(128), "lastExitCode": 255,
        })).collect::<Vec<_>>(),
        "rolloutHistory": (0..MAX_REVISIONS).map(|_| json!({
            "revision": 1_000_000, "images": vec![text(MAX_IMAGE); MAX_IMAGES],
            "changeCause": text(512), "createdAt": time(),
        })).collect::<Vec<_>>(),
        "recentDeploy": text(128),
        "events": (0..MAX_EVENTS).map(|_| json!({
            "reason": text(128), "object": text(300), "note": text(256), "count": 1_000_000,
            "lastSeen": time(),
        })).collect::<Vec<_>>(),
        "logs": { "pod": text(253), "container": text(63), "previous": true, "text": text(MAX_LOG_BYTES) },
    })
}

/// The largest status the operator writes: every list at its cap, every string at its cut.
/// Messages that may carry an API server's error (actions, runbook steps) are cut like the
/// timeline's; the escalation's is composed of names.
fn worst_status(runbook_steps: u64) -> (Value, u64) {
    let channel = text(63 + 1 + 253);
    let message = text(MAX_MESSAGE);
    let status = json!({
        "phase": "Closed",
        "timeline": (0..MAX_TIMELINE).map(|_| json!({
            "time": time(), "type": "PostmortemOverdue", "message": text(MAX_MESSAGE),
            "actor": text(MAX_ACTOR), "count": 1_000_000, "lastTime": time(),
        })).collect::<Vec<_>>(),
        "conditions": (0..10).map(|_| json!({
            "type": text(32), "status": "False", "reason": text(64),
            "message": text(MAX_CONDITION_MESSAGE), "observedGeneration": 1_000_000,
            "lastTransitionTime": time(),
        })).collect::<Vec<_>>(),
        "sla": { "respondBy": time(), "breached": true, "businessHours": text(64), "postmortemDueBy": time() },
        "commander": text(MAX_ACTOR),
        "escalation": {
            "policy": channel, "state": "PolicyNotFound", "episode": 1_000, "startedAt": time(),
            "ownedBy": text(2 * MAX_ACTOR + 1), "steps": 1_000, "level": text(63), "round": 11,
            "nextAt": time(), "nextLevel": text(63), "message": message,
            "pages": (0..MAX_PAGES).map(|_| json!({
                "time": time(), "episode": 1_000, "round": 11, "level": text(7 + 63),
                "person": text(63), "role": text(128), "channels": vec![channel.clone(); MAX_PAGE_CHANNELS],
            })).collect::<Vec<_>>(),
        },
        "metrics": {
            "detectedAt": time(), "acknowledgedAt": time(), "resolvedAt": time(), "closedAt": time(),
            "timeToAcknowledgeSeconds": 1_000_000_000, "timeToResolveSeconds": 1_000_000_000,
        },
        "lastUpdateTime": time(), "nextUpdateTime": time(), "observedGeneration": 1_000_000,
        // One per requested action: at most 20, and none is ever removed.
        "actions": (0..20).map(|_| json!({
            "name": text(63), "kind": "Rollback", "deployment": text(253), "phase": "Failed",
            "reason": text(64), "message": message, "fromRevision": 1_000_000, "toRevision": 1_000_000,
            "imagesBefore": vec![text(MAX_IMAGE); MAX_IMAGES], "imagesAfter": vec![text(MAX_IMAGE); MAX_IMAGES],
            "startedAt": time(), "finishedAt": time(), "plannedGeneration": 1_000_000,
            "appliedGeneration": 1_000_000, "appliedAt": time(),
        })).collect::<Vec<_>>(),
        "evidence": worst_evidence(),
        "runbook": {
            "name": text(253), "generation": 1_000_000, "reason": message, "steps": [],
            "onFailure": "Continue",
            // Two collect steps (the Runbook's limit) carry evidence; the rest a reason.
            "progress": (0..20).map(|i| json!({
                "name": text(40), "kind": "checkpoint", "phase": "Failed", "reason": message,
                "actor": text(MAX_ACTOR), "startedAt": time(), "finishedAt": time(),
                "evidence": if i < 2 { worst_evidence() } else { Value::Null },
                "action": text(63),
            })).collect::<Vec<_>>(),
        },
        "recorded": {
            "severity": "P0", "commander": text(MAX_ACTOR),
            "notes": vec![text(16); MAX_NOTES], "updates": vec![text(16); MAX_UPDATES],
            "alerts": vec![text(64 + 10 + 25); MAX_ALERTS],
            "resolution": text(16), "rootCause": text(16), "missing": vec![text(330); 20],
            "runbookProblem": message, "escalatedFor": time(), "updateDueFor": time(),
            "postmortemOverdueFor": time(),
        },
        "notifications": (0..MAX_NOTIFICATIONS).map(|_| json!({
            "key": text(16), "channel": channel, "event": "CommanderChanged", "time": time(),
            "summary": text(MAX_SUMMARY), "actor": text(MAX_ACTOR),
            "recipient": { "name": text(63), "role": text(128), "handle": text(256) },
        })).collect::<Vec<_>>(),
        "deliveries": (0..MAX_NOTIFICATIONS).map(|_| json!({
            "key": text(16), "state": "Pending", "attempts": 1_000_000, "lastAttemptAt": time(),
            "nextAttemptAt": time(), "sentAt": time(), "lastError": text(MAX_ERROR),
        })).collect::<Vec<_>>(),
        "gitops": (0..MAX_PAUSES).map(|_| json!({
            "owner": { "tool": "ArgoCD", "kind": "Kustomization", "namespace": text(63), "name": text(253) },
            "workload": text(11 + 253), "state": "Resumed", "previous": text(512), "alreadyPaused": true,
            "alsoManages": vec![text(11 + 63 + 253 + 2); MAX_ALSO_MANAGED], "revision": text(256),
            "pausedAt": time(), "resumedAt": time(), "resumedBy": text(MAX_ACTOR), "message": text(MAX_MESSAGE),
        })).collect::<Vec<_>>(),
        "publication": {
            "publishedAt": time(), "resolvedAt": time(),
            "updates": (0..MAX_RECORDED_PUBLIC_UPDATES).map(|_| json!({
                "id": text(16), "status": "investigating", "body": text(MAX_PUBLIC_BODY),
                "author": text(MAX_ACTOR), "at": time(),
            })).collect::<Vec<_>>(),
        },
        "threads": (0..MAX_THREADS).map(|_| json!({
            "channel": channel, "slackChannel": text(32), "ts": text(32),
        })).collect::<Vec<_>>(),
    });
    let mut status = status;
    strip_nulls(&mut status);
    let bytes = serde_json::to_vec(&status).expect("status as JSON").len() as u64 + runbook_steps;
    (status, bytes)
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[test]
fn every_spec_fits_its_budget() {
    let specs = [
        (
            "Incident",
            worst_spec(&Incident::crd()),
            INCIDENT_SPEC_BUDGET,
        ),
        ("Runbook", worst_spec(&Runbook::crd()), SPEC_BUDGET),
        ("Channel", worst_spec(&Channel::crd()), SPEC_BUDGET),
        (
            "OnCallSchedule",
            worst_spec(&OnCallSchedule::crd()),
            SPEC_BUDGET,
        ),
        (
            "EscalationPolicy",
            worst_spec(&EscalationPolicy::crd()),
            SPEC_BUDGET,
        ),
    ];
    for (kind, bytes, budget) in specs {
        println!(
            "{kind}: largest spec {} KiB (budget {} KiB)",
            bytes / KIB,
            budget / KIB
        );
        assert!(
            bytes <= budget,
            "{kind}: the largest spec is {bytes} bytes, over {budget}"
        );
    }
}

#[test]
fn the_largest_incident_fits_well_under_the_limit() {
    let steps =
        worst_bytes(&schema_of(&Runbook::crd())["properties"]["spec"]["properties"]["steps"]);
    let (status, status_bytes) = worst_status(steps);
    // Every field named above is one the status has: nothing was dropped on the way through.
    let typed: IncidentStatus = serde_json::from_value(status.clone()).expect("a status");
    assert_eq!(
        serde_json::to_value(&typed).expect("status as JSON"),
        status
    );
    for (field, value) in status.as_object().into_iter().flatten() {
        println!(
            "  status.{field}: {} KiB",
            serde_json::to_vec(value).map_or(0, |v| v.len()) as u64 / KIB
        );
    }
    println!("  status.runbook.steps: {} KiB", steps / KIB);
    let spec_bytes = worst_spec(&Incident::crd());
    println!(
        "Incident: largest spec {} KiB + largest status {} KiB = {} KiB (budget {} KiB)",
        spec_bytes / KIB,
        status_bytes / KIB,
        (spec_bytes + status_bytes) / KIB,
        INCIDENT_BUDGET / KIB
    );
    assert!(
        status_bytes <= INCIDENT_STATUS_BUDGET,
        "status {status_bytes} bytes"
    );
    assert!(spec_bytes + status_bytes <= INCIDENT_BUDGET);
}

/// The calculator itself: a bound changes the answer, so the budgets above can fail.
#[test]
fn the_calculator_counts_bounds() {
    let list = |n: u64| json!({ "type": "array", "maxItems": n, "items": { "type": "string", "maxLength": 10 } });
    assert_eq!(worst_bytes(&list(1)), 13 + 2);
    assert_eq!(worst_bytes(&list(4)), 4 * 13 + 2);
    let map = json!({ "type": "object", "maxProperties": 2, "additionalProperties": { "type": "string", "maxLength": 5 },
        "x-kubernetes-validations": [{ "rule": "self.all(k, size(k) <= 8)" }] });
    assert_eq!(worst_bytes(&map), 2 + 2 * (8 + 4 + 7));
}
