//! Watches the trust policies (controllers layer): the ValidatingAdmissionPolicies named by
//! `--admission-policies` and their bindings, from two watches (no polling), and reports what is
//! missing to `report` — the readiness endpoint and a metric — each time it changes.

use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, reflector, reflector::Store, watcher},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Result, core::admission};

/// Where the problems go (empty: every expected policy is in force).
pub type Report = Arc<dyn Fn(Vec<String>) + Send + Sync>;

enum Seen {
    /// A change to the kind's cache; `listed` once its first list is complete.
    Changed {
        kind: &'static str,
        listed: bool,
    },
    Failed(&'static str, String),
}

/// Runs until `shutdown`; reports at once that nothing is known yet, then after every change.
pub async fn run(
    client: Client,
    expected: Vec<String>,
    report: Report,
    shutdown: CancellationToken,
) -> Result<()> {
    report(vec![
        "the admission policies have not been read yet".to_owned(),
    ]);
    let (policies, policies_writer) = reflector::store();
    let (bindings, bindings_writer) = reflector::store();
    let policy_events = watcher(
        Api::<ValidatingAdmissionPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(policies_writer);
    let binding_events = watcher(
        Api::<ValidatingAdmissionPolicyBinding>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(bindings_writer);
    let mut events = std::pin::pin!(stream::select(
        seen(policy_events, "ValidatingAdmissionPolicies"),
        seen(binding_events, "ValidatingAdmissionPolicyBindings"),
    ));
    let mut listed: Vec<&'static str> = Vec::new();
    let mut last: Option<Vec<String>> = None;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = events.next() => event,
        };
        let problems = match event {
            None => return Ok(()),
            Some(Seen::Failed(kind, error)) => vec![format!("cannot watch {kind}: {error}")],
            Some(Seen::Changed { kind, listed: now }) => {
                if now && !listed.contains(&kind) {
                    listed.push(kind);
                }
                // Until both lists arrived, what is missing is not known.
                if listed.len() < 2 {
                    continue;
                }
                current(&expected, &policies, &bindings)
            }
        };
        if last.as_ref() != Some(&problems) {
            if problems.is_empty() {
                info!(policies = ?expected, "the admission policies are in force");
            } else {
                warn!(
                    ?problems,
                    "the admission policies are not in force: identities and rights are not checked"
                );
            }
            report(problems.clone());
            last = Some(problems);
        }
    }
}

fn seen<K, S, E>(events: S, kind: &'static str) -> impl Stream<Item = Seen>
where
    S: Stream<Item = std::result::Result<watcher::Event<K>, E>>,
    E: std::fmt::Display,
{
    events.map(move |event| match event {
        Ok(event) => Seen::Changed {
            kind,
            listed: matches!(event, watcher::Event::InitDone),
        },
        Err(error) => Seen::Failed(kind, error.to_string()),
    })
}

fn current(
    expected: &[String],
    policies: &Store<ValidatingAdmissionPolicy>,
    bindings: &Store<ValidatingAdmissionPolicyBinding>,
) -> Vec<String> {
    let names: Vec<String> = policies.state().iter().map(|p| p.name_any()).collect();
    let bindings: Vec<admission::Binding> = bindings
        .state()
        .iter()
        .map(|b| admission::Binding {
            name: b.name_any(),
            policy: b.spec.policy_name.clone(),
            actions: b.spec.validation_actions.clone(),
        })
        .collect();
    admission::problems(expected, &names, &bindings)
}
