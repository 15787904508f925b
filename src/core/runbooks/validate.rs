//! Whether a Runbook is usable, beyond what the schema refuses at admission (core layer).
//!
//! The CRD's schema and CEL rules already refuse most mistakes when a runbook is applied; these
//! checks repeat the ones that matter for execution (a runbook admitted under an older CRD, or a
//! snapshot in an incident's status, has not necessarily been through them) and add what the
//! schema cannot express: label selector operators and syntax, durations that overflow, blank
//! signal names, a zero verify timeout. The first problem found is reported, as a CamelCase reason
//! for the `Ready`/`Stalled` conditions and a message naming the field.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::labels::Selector;

use crate::{
    api::{RunbookSpec, RunbookStep, StepKind, duration},
    core::text::is_dns_label,
};

/// A step has no kind, several, a field its kind does not take, or a name used twice.
pub const INVALID_STEP: &str = "InvalidStep";
/// `match.workloadSelector` or `match.incidentSelector` is not a valid label selector.
pub const INVALID_SELECTOR: &str = "InvalidSelector";
/// A duration does not parse, or a verify timeout is zero.
pub const INVALID_DURATION: &str = "InvalidDuration";
/// `match.signals` names a blank signal.
pub const INVALID_MATCH: &str = "InvalidMatch";

type Invalid = (&'static str, String);

/// Ok when the runbook can be followed; otherwise why not (reason, message).
pub fn validate(spec: &RunbookSpec) -> Result<(), (&'static str, String)> {
    if spec.steps.is_empty() {
        return Err((INVALID_STEP, "the runbook has no steps".to_owned()));
    }
    validate_match(spec)?;
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (index, step) in spec.steps.iter().enumerate() {
        if let Some(first) = names.insert(step.name.as_str(), index) {
            return Err((
                INVALID_STEP,
                format!(
                    "steps[{first}] and steps[{index}] are both named {:?}; step names must be unique",
                    step.name
                ),
            ));
        }
        validate_step(index, step)?;
    }
    Ok(())
}

fn validate_match(spec: &RunbookSpec) -> Result<(), Invalid> {
    let criteria = &spec.match_;
    if let Some(index) = criteria.signals.iter().position(|s| s.trim().is_empty()) {
        return Err((
            INVALID_MATCH,
            format!("match.signals[{index}] is blank; name a signal type such as CrashLoopBackOff"),
        ));
    }
    for (field, selector) in [
        ("match.workloadSelector", &criteria.workload_selector),
        ("match.incidentSelector", &criteria.incident_selector),
    ] {
        if let Some(selector) = selector {
            validate_selector(field, selector).map_err(|message| (INVALID_SELECTOR, message))?;
        }
    }
    Ok(())
}

/// The rules the API server applies to selectors in built-in objects, which a CRD's schema does not.
fn validate_selector(field: &str, selector: &LabelSelector) -> Result<(), String> {
    for (key, value) in selector.match_labels.iter().flatten() {
        label_key(key).map_err(|why| format!("{field}.matchLabels: key {key:?} {why}"))?;
        label_value(value)
            .map_err(|why| format!("{field}.matchLabels[{key:?}]: value {value:?} {why}"))?;
    }
    for (index, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{index}]");
        let key = &requirement.key;
        label_key(key).map_err(|why| format!("{at}.key: {key:?} {why}"))?;
        let values = requirement.values.as_deref().unwrap_or_default();
        let operator = requirement.operator.as_str();
        match operator {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "{at}: operator {operator} needs at least one value"
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!("{at}: operator {operator} takes no values"));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(format!(
                    "{at}.operator: {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                ));
            }
        }
        for value in values {
            label_value(value).map_err(|why| format!("{at}.values: {value:?} {why}"))?;
        }
    }
    // What matching will use; anything it refuses that the checks above let through is reported too.
    Selector::try_from(selector.clone()).map_err(|error| format!("{field}: {error}"))?;
    Ok(())
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters.
fn label_key(key: &str) -> Result<(), &'static str> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(is_dns_label) {
                return Err("has an invalid prefix (want a DNS subdomain such as example.com)");
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("has an empty name");
    }
    label_value(name)
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
fn label_value(value: &str) -> Result<(), &'static str> {
    if value.len() > 63 {
        return Err("is longer than 63 characters");
    }
    let alnum = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    let inner_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !inner_ok || !alnum(value.chars().next()) || !alnum(value.chars().last()) {
        return Err(
            "is not a valid label (alphanumerics, '-', '_' and '.', starting and ending alphanumeric)",
        );
    }
    Ok(())
}

fn validate_step(index: usize, step: &RunbookStep) -> Result<(), Invalid> {
    let at = format!("steps[{index}] ({:?})", step.name);
    let Some(kind) = step.kind() else {
        let kinds = present_kinds(step);
        let message = if kinds.is_empty() {
            format!(
                "{at} has no kind; give exactly one of collect, rollback, restart, scale, verify, checkpoint or escalate"
            )
        } else {
            format!(
                "{at} has {} kinds ({}); a step does exactly one thing",
                kinds.len(),
                kinds.join(", ")
            )
        };
        return Err((INVALID_STEP, message));
    };
    if !kind.remediates() {
        if step.approval.is_some() {
            return Err((
                INVALID_STEP,
                format!(
                    "{at}: approval applies to rollback, restart and scale steps, not {}",
                    kind.as_str()
                ),
            ));
        }
        if !step.automatic_for.is_empty() {
            return Err((
                INVALID_STEP,
                format!(
                    "{at}: automaticFor applies to rollback, restart and scale steps, not {}",
                    kind.as_str()
                ),
            ));
        }
    }
    if let Some(when) = &step.when {
        if when.signal.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err((
                INVALID_STEP,
                format!("{at}: when.signal is blank; name a signal type such as ImagePullBackOff"),
            ));
        }
        if let Some(within) = &when.rolled_out_within {
            duration(&at, "when.rolledOutWithin", within)?;
        }
    }
    if let Some(verify) = &step.verify {
        if duration(&at, "verify.timeout", &verify.timeout)?.is_zero() {
            return Err((
                INVALID_DURATION,
                format!("{at}: verify.timeout must be longer than zero"),
            ));
        }
        if let Some(cleared) = &verify.signals_cleared_for {
            duration(&at, "verify.signalsClearedFor", cleared)?;
        }
    }
    Ok(())
}

fn duration(at: &str, field: &str, text: &str) -> Result<std::time::Duration, Invalid> {
    duration::parse(text).map_err(|why| (INVALID_DURATION, format!("{at}: {field}: {why}")))
}

/// The kinds a step sets, for the message about a step with several.
fn present_kinds(step: &RunbookStep) -> Vec<&'static str> {
    [
        (step.collect.is_some(), StepKind::Collect),
        (step.rollback.is_some(), StepKind::Rollback),
        (step.restart.is_some(), StepKind::Restart),
        (step.scale.is_some(), StepKind::Scale),
        (step.verify.is_some(), StepKind::Verify),
        (step.checkpoint.is_some(), StepKind::Checkpoint),
        (step.escalate.is_some(), StepKind::Escalate),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, kind)| kind.as_str())
    .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A spec from the JSON a user would write (the schema's defaults filled in by serde).
    fn spec(value: Value) -> RunbookSpec {
        serde_json::from_value(value).expect("a RunbookSpec")
    }

    fn with_steps(steps: Value) -> RunbookSpec {
        spec(json!({ "steps": steps }))
    }

    fn with_match(criteria: Value) -> RunbookSpec {
        spec(json!({
            "match": criteria,
            "steps": [{ "name": "collect", "collect": { "events": true } }],
        }))
    }

    #[track_caller]
    fn refused(spec: &RunbookSpec, reason: &str, fragments: &[&str]) {
        match validate(spec) {
            Ok(()) => panic!("accepted {spec:#?}"),
            Err((got, message)) => {
                assert_eq!(got, reason, "reason for: {message}");
                for fragment in fragments {
                    assert!(
                        message.contains(fragment),
                        "message {message:?} lacks {fragment:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_complete_runbook_is_valid() {
        let runbook = spec(json!({
            "description": "Crash loop right after a deploy",
            "owner": "team-checkout",
            "match": {
                "signals": ["CrashLoopBackOff"],
                "severities": ["P1", "P2"],
                "workloadSelector": {
                    "matchLabels": { "app.kubernetes.io/part-of": "checkout" },
                    "matchExpressions": [
                        { "key": "tier", "operator": "In", "values": ["web", "api"] },
                        { "key": "canary", "operator": "DoesNotExist" },
                    ],
                },
                "incidentSelector": { "matchLabels": { "team": "" } },
            },
            "steps": [
                { "name": "collect", "collect": { "events": true, "logs": { "tailLines": 50 } } },
                { "name": "roll-back", "rollback": {}, "approval": "Required",
                  "automaticFor": ["P2", "P3"], "when": { "rolledOutWithin": "1h30m" } },
                { "name": "restart", "restart": {}, "when": { "signal": "OOMKilled" } },
                { "name": "scale", "scale": { "replicas": 3 }, "approval": "Automatic" },
                { "name": "verify", "verify": { "timeout": "5m", "signalsClearedFor": "500ms" } },
                { "name": "ask", "checkpoint": { "prompt": "Is checkout answering?" } },
                { "name": "page", "escalate": { "message": "still down", "to": "sre" } },
            ],
        }));
        assert_eq!(validate(&runbook), Ok(()));
    }

    #[test]
    fn no_steps_is_invalid() {
        refused(&with_steps(json!([])), INVALID_STEP, &["no steps"]);
    }

    #[test]
    fn a_step_without_a_kind_is_invalid() {
        refused(
            &with_steps(json!([
                { "name": "collect", "collect": {} },
                { "name": "nothing" },
            ])),
            INVALID_STEP,
            &["steps[1]", "\"nothing\"", "has no kind"],
        );
    }

    #[test]
    fn a_step_with_two_kinds_is_invalid() {
        refused(
            &with_steps(json!([
                { "name": "both", "rollback": {}, "verify": { "timeout": "1m" } },
            ])),
            INVALID_STEP,
            &["steps[0]", "\"both\"", "2 kinds (rollback, verify)"],
        );
    }

    #[test]
    fn step_names_are_unique() {
        refused(
            &with_steps(json!([
                { "name": "look", "collect": {} },
                { "name": "undo", "rollback": {} },
                { "name": "look", "escalate": { "message": "help" } },
            ])),
            INVALID_STEP,
            &["steps[0] and steps[2]", "\"look\"", "unique"],
        );
    }

    #[test]
    fn approval_belongs_to_remediation_steps_only() {
        refused(
            &with_steps(json!([{ "name": "look", "collect": {}, "approval": "Required" }])),
            INVALID_STEP,
            &["steps[0]", "\"look\"", "approval", "not collect"],
        );
        refused(
            &with_steps(json!([
                { "name": "check", "verify": { "timeout": "1m" }, "automaticFor": ["P3"] },
            ])),
            INVALID_STEP,
            &["\"check\"", "automaticFor", "not verify"],
        );
        for kind in [
            json!({ "rollback": {} }),
            json!({ "restart": {} }),
            json!({ "scale": { "replicas": 1 } }),
        ] {
            let mut step =
                json!({ "name": "act", "approval": "Automatic", "automaticFor": ["P0"] });
            if let (Some(step), Some(kind)) = (step.as_object_mut(), kind.as_object()) {
                step.extend(kind.clone());
            }
            assert_eq!(validate(&with_steps(json!([step]))), Ok(()), "{kind}");
        }
    }

    #[test]
    fn durations_must_parse() {
        refused(
            &with_steps(json!([{ "name": "check", "verify": { "timeout": "soon" } }])),
            INVALID_DURATION,
            &["\"check\"", "verify.timeout", "`soon`"],
        );
        // Matches the schema's pattern, but does not fit in a duration.
        refused(
            &with_steps(json!([
                { "name": "undo", "rollback": {}, "when": { "rolledOutWithin": "99999999999999999999h" } },
            ])),
            INVALID_DURATION,
            &["\"undo\"", "when.rolledOutWithin"],
        );
        refused(
            &with_steps(json!([
                { "name": "check", "verify": { "timeout": "1m", "signalsClearedFor": "a while" } },
            ])),
            INVALID_DURATION,
            &["verify.signalsClearedFor", "`a while`"],
        );
    }

    #[test]
    fn a_verify_timeout_must_be_positive() {
        refused(
            &with_steps(json!([{ "name": "check", "verify": { "timeout": "0s" } }])),
            INVALID_DURATION,
            &["\"check\"", "verify.timeout must be longer than zero"],
        );
        assert_eq!(
            validate(&with_steps(
                json!([{ "name": "check", "verify": { "timeout": "1ms" } }])
            )),
            Ok(())
        );
    }

    #[test]
    fn signals_must_not_be_blank() {
        refused(
            &with_match(json!({ "signals": ["CrashLoopBackOff", " "] })),
            INVALID_MATCH,
            &["match.signals[1]"],
        );
        refused(
            &with_steps(json!([{ "name": "undo", "rollback": {}, "when": { "signal": "" } }])),
            INVALID_STEP,
            &["\"undo\"", "when.signal"],
        );
    }

    #[test]
    fn an_unknown_selector_operator_is_invalid() {
        refused(
            &with_match(json!({ "workloadSelector": { "matchExpressions": [
                { "key": "app", "operator": "In", "values": ["web"] },
                { "key": "zone", "operator": "Near", "values": ["eu"] },
            ] } })),
            INVALID_SELECTOR,
            &[
                "match.workloadSelector.matchExpressions[1].operator",
                "\"Near\"",
            ],
        );
        refused(
            &with_match(json!({ "incidentSelector": { "matchExpressions": [
                { "key": "team", "operator": "exists" },
            ] } })),
            INVALID_SELECTOR,
            &["match.incidentSelector.matchExpressions[0]", "\"exists\""],
        );
    }

    #[test]
    fn selector_operators_need_the_right_values() {
        refused(
            &with_match(json!({ "workloadSelector": { "matchExpressions": [
                { "key": "app", "operator": "NotIn" },
            ] } })),
            INVALID_SELECTOR,
            &["matchExpressions[0]", "NotIn needs at least one value"],
        );
        refused(
            &with_match(json!({ "workloadSelector": { "matchExpressions": [
                { "key": "app", "operator": "In", "values": [] },
            ] } })),
            INVALID_SELECTOR,
            &["In needs at least one value"],
        );
        refused(
            &with_match(json!({ "incidentSelector": { "matchExpressions": [
                { "key": "app", "operator": "Exists", "values": ["x"] },
            ] } })),
            INVALID_SELECTOR,
            &["match.incidentSelector", "Exists takes no values"],
        );
    }

    #[test]
    fn selector_keys_and_values_must_be_labels() {
        let cases = [
            (
                json!({ "matchLabels": { "app name": "web" } }),
                "matchLabels: key \"app name\"",
            ),
            (
                json!({ "matchLabels": { "app": "-web" } }),
                "value \"-web\"",
            ),
            (
                json!({ "matchLabels": { "Example.com/app": "web" } }),
                "invalid prefix",
            ),
            (
                json!({ "matchLabels": { "example.com/": "web" } }),
                "empty name",
            ),
            (
                json!({ "matchLabels": { "app": "x".repeat(64) } }),
                "longer than 63",
            ),
            (
                json!({ "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["a b"] }] }),
                "matchExpressions[0].values: \"a b\"",
            ),
        ];
        for (selector, fragment) in cases {
            refused(
                &with_match(json!({ "workloadSelector": selector })),
                INVALID_SELECTOR,
                &["match.workloadSelector", fragment],
            );
        }
        assert_eq!(
            validate(&with_match(json!({ "workloadSelector": { "matchLabels": {
                "app.kubernetes.io/name": "check_out.v2", "empty": "" } } }))),
            Ok(())
        );
    }

    #[test]
    fn the_first_problem_is_reported() {
        // The match is checked before the steps, and steps in order.
        let runbook = spec(json!({
            "match": { "incidentSelector": { "matchExpressions": [{ "key": "a", "operator": "Near" }] } },
            "steps": [{ "name": "x" }],
        }));
        refused(&runbook, INVALID_SELECTOR, &["Near"]);
    }
}
