//! The plugin's API calls (plugin layer): read Incidents, write the spec fields each command owns,
//! and follow a rollback to its end. Who leads and who is on call are in the `escalation` file;
//! who is acting, in `identity`.

mod escalation;
mod identity;
mod publication;

use std::{path::PathBuf, time::Duration};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    config::Kubeconfig,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{
    PluginError, Result, kubeconfig,
    patch::{self, UpdateRequest},
    report::{self, Report},
};
use crate::{
    api::metadata::PLUGIN_MANAGER,
    api::{
        ActionPhase, ActionStatus, AffectedKind, AffectedRef, Incident, IncidentSpec,
        RemediationAction, RollbackAction, Severity, StepPhase, WorkloadKind,
    },
    config::ClusterArgs,
};

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(PLUGIN_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// How often a list edit (note, approval, action) is retried when someone else wrote in between.
const ATTEMPTS: usize = 10;

/// A connection to the cluster, the namespace to work in and who is acting.
pub struct Session {
    pub client: Client,
    pub namespace: String,
    /// Learned on the first write (see [`Session::actor`]), so reads need no extra call.
    actor: OnceCell<String>,
}

/// Where to find the cluster, as kubectl's global flags say.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

impl Session {
    /// Connects like kubectl: `--kubeconfig`, else KUBECONFIG or ~/.kube/config, else in-cluster.
    pub async fn connect(target: &Target) -> Result<Self> {
        let cluster = ClusterArgs {
            kubeconfig: target.kubeconfig.clone(),
            context: target.context.clone(),
        };
        let config = cluster.kube_config().await?;
        // The file again, to tell the context's namespace from the client's own fallback.
        let file = match &target.kubeconfig {
            Some(path) => Kubeconfig::read_from(path).ok(),
            None => Kubeconfig::read().ok(),
        };
        let context = target.context.as_deref();
        let namespace = kubeconfig::namespace(
            target.namespace.as_deref(),
            file.as_ref(),
            context,
            Some(&config.default_namespace),
        );
        let client = Client::try_from(config).map_err(PluginError::Client)?;
        Ok(Self {
            client,
            namespace,
            actor: OnceCell::new(),
        })
    }

    fn api(&self) -> Api<Incident> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn list(&self) -> Result<Vec<Incident>> {
        self.api()
            .list(&Default::default())
            .await
            .map(|list| list.items)
            .map_err(|source| PluginError::Api {
                what: format!("cannot list incidents in namespace {:?}", self.namespace),
                source,
            })
    }

    /// Every namespace's incidents the user may list (kubectl's `-A`).
    pub async fn list_all(&self) -> Result<Vec<Incident>> {
        Api::<Incident>::all(self.client.clone())
            .list(&Default::default())
            .await
            .map(|list| list.items)
            .map_err(|source| PluginError::Api {
                what: "cannot list incidents in all namespaces".to_owned(),
                source,
            })
    }

    pub async fn get(&self, name: &str) -> Result<Incident> {
        self.api()
            .get_opt(name)
            .await
            .map_err(|source| api_error(name, source))?
            .ok_or_else(|| PluginError::NotFound(name.to_owned()))
    }

    async fn merge(&self, name: &str, patch: &Value) -> Result<Incident> {
        self.api()
            .patch(name, &patch_params(), &Patch::Merge(patch))
            .await
            .map_err(|source| api_error(name, source))
    }

    /// Reads, edits and writes back against the version read, again when someone wrote in between.
    /// `edit` returns None when there is nothing to write.
    async fn edit(
        &self,
        name: &str,
        edit: impl Fn(&Incident) -> Result<Option<Value>>,
    ) -> Result<Option<Incident>> {
        for _ in 0..ATTEMPTS {
            let current = self.get(name).await?;
            let Some(patch) = edit(&current)? else {
                return Ok(None);
            };
            match self
                .api()
                .patch(name, &patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(written) => return Ok(Some(written)),
                Err(kube::Error::Api(status)) if status.is_conflict() => continue,
                Err(source) => return Err(api_error(name, source)),
            }
        }
        Err(PluginError::Contended(name.to_owned()))
    }

    /// Claims the incident. Acknowledging twice as the same person is a no-op; claiming one someone
    /// else acknowledged is refused.
    pub async fn acknowledge(&self, name: &str, note: Option<&str>) -> Result<String> {
        let actor = self.actor().await?;
        let current = self.get(name).await?;
        if let Some(ack) = &current.spec.acknowledgment {
            if ack.by == actor && note.is_none_or(|n| ack.note.as_deref() == Some(n)) {
                return Ok(format!("{} already acknowledged", reference(name)));
            }
            if ack.by != actor {
                return Err(PluginError::Refused {
                    name: name.to_owned(),
                    message: format!("is already acknowledged by {}", ack.by),
                });
            }
        }
        self.merge(name, &patch::acknowledge(actor, note)).await?;
        Ok(format!("{} acknowledged", reference(name)))
    }

    /// Appends a note to `spec.notes`.
    pub async fn note(&self, name: &str, text: &str) -> Result<String> {
        let actor = self.actor().await?;
        self.edit(name, |incident| {
            Ok(Some(patch::append_note(incident, actor, text)))
        })
        .await?;
        Ok(format!("{} noted", reference(name)))
    }

    /// Appends an update to `spec.updates`: it goes to the timeline and the channels.
    pub async fn update(&self, name: &str, update: UpdateRequest<'_>) -> Result<String> {
        let actor = self.actor().await?;
        self.edit(name, |incident| {
            Ok(Some(patch::append_update(incident, actor, &update)))
        })
        .await?;
        Ok(format!("{} updated", reference(name)))
    }

    /// Approves a runbook step waiting for a person (or marks a checkpoint done).
    pub async fn approve(&self, name: &str, step: &str) -> Result<String> {
        let actor = self.actor().await?;
        let written = self
            .edit(name, |incident| {
                let run = incident
                    .status
                    .as_ref()
                    .and_then(|s| s.runbook.as_ref())
                    .ok_or_else(|| PluginError::Refused {
                        name: name.to_owned(),
                        message: "follows no runbook (yet)".to_owned(),
                    })?;
                if !run.steps.iter().any(|s| s.name == step) {
                    let steps: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
                    return Err(PluginError::Refused {
                        name: name.to_owned(),
                        message: format!(
                            "has no step {step:?} in runbook {} (steps: {})",
                            run.name,
                            steps.join(", ")
                        ),
                    });
                }
                let phase = run
                    .progress
                    .iter()
                    .find(|p| p.name == step)
                    .map(|p| p.phase);
                if phase.is_some_and(StepPhase::is_terminal) {
                    return Ok(None);
                }
                Ok(patch::approve(incident, actor, step))
            })
            .await?;
        Ok(match written {
            Some(_) => format!("{} step {step} approved", reference(name)),
            None => format!("{} step {step} already approved", reference(name)),
        })
    }

    /// Sets `spec.resolution`.
    pub async fn resolve(
        &self,
        name: &str,
        root_cause: Option<&str>,
        summary: &str,
    ) -> Result<String> {
        let actor = self.actor().await?;
        self.merge(name, &patch::resolve(actor, root_cause, summary))
            .await?;
        Ok(format!("{} resolved", reference(name)))
    }

    /// Sets `spec.severity`, recording who changed it.
    pub async fn set_severity(&self, name: &str, severity: Severity) -> Result<String> {
        let actor = self.actor().await?;
        self.merge(name, &patch::severity(actor, severity)).await?;
        Ok(format!("{} severity set to {severity}", reference(name)))
    }

    /// Creates a reported incident (see [`super::report`]); returns its name (the API server
    /// chooses it when the report names none) and the report's fields the server did not keep.
    pub async fn create(&self, report: &Report) -> Result<(String, Vec<&'static str>)> {
        let incident = report.incident(self.actor().await?);
        let params = PostParams {
            field_manager: Some(PLUGIN_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match self.api().create(&params, &incident).await {
            Ok(created) => Ok((created.name_any(), report::dropped(&incident, &created))),
            Err(kube::Error::Api(status)) if status.is_already_exists() => Err(
                PluginError::AlreadyExists(report.name.clone().unwrap_or_default()),
            ),
            Err(kube::Error::Api(status))
                if status.is_invalid() || status.is_forbidden() || status.code == 400 =>
            {
                Err(PluginError::Rejected(status.message))
            }
            Err(source) => Err(PluginError::Api {
                what: format!(
                    "cannot create an incident in namespace {:?}",
                    self.namespace
                ),
                source,
            }),
        }
    }

    /// Requests a rollback of `deployment`: on `incident` when given, else on a new incident the
    /// actor has acknowledged. Returns the incident's name and the action's name.
    pub async fn request_rollback(
        &self,
        rollback: RollbackAction,
        incident: Option<&str>,
        severity: Severity,
    ) -> Result<(String, String)> {
        let deployment = rollback.deployment.clone();
        let deployment = deployment.as_str();
        let kind = rollback.kind.unwrap_or_default();
        let actor = self.actor().await?;
        let now = jiff::Timestamp::now().as_second();
        let action = |taken: &[RemediationAction]| {
            let base = format!("rollback-{now}");
            let mut name = base.clone();
            let mut n = 2;
            while taken.iter().any(|a| a.name == name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            RemediationAction {
                name,
                dry_run: false,
                timeout_seconds: None,
                rollback: Some(rollback.clone()),
                restart: None,
                scale: None,
            }
        };
        match incident {
            Some(name) => {
                let mut chosen = String::new();
                let chosen_ref = &mut chosen;
                let written = self
                    .edit(name, |incident| {
                        let action = action(&incident.spec.actions);
                        Ok(Some(patch::add_action(incident, actor, &action)))
                    })
                    .await?;
                if let Some(written) = written
                    && let Some(last) = written.spec.actions.last()
                {
                    *chosen_ref = last.name.clone();
                }
                Ok((name.to_owned(), chosen))
            }
            None => {
                let action = action(&[]);
                let action_name = action.name.clone();
                let mut new = Incident::new(
                    "",
                    IncidentSpec {
                        title: format!(
                            "Rollback of {} {deployment}",
                            kind.to_string().to_lowercase()
                        ),
                        severity,
                        description: None,
                        commander: Some(actor.to_owned()),
                        source: None,
                        reporter: None,
                        ticket: None,
                        affected: vec![AffectedRef {
                            kind: match kind {
                                WorkloadKind::Deployment => AffectedKind::Deployment,
                                WorkloadKind::StatefulSet => AffectedKind::StatefulSet,
                                WorkloadKind::DaemonSet => AffectedKind::DaemonSet,
                                WorkloadKind::Rollout => AffectedKind::Rollout,
                            },
                            name: deployment.to_owned(),
                            namespace: None,
                        }],
                        acknowledgment: Some(crate::api::Acknowledgment {
                            by: actor.to_owned(),
                            note: Some("rolling back with kubectl incident rollback".to_owned()),
                        }),
                        resolution: None,
                        notes: Vec::new(),
                        updates: Vec::new(),
                        alerts: Vec::new(),
                        postmortem: None,
                        actions: vec![action],
                        signals: Vec::new(),
                        runbook_ref: None,
                        escalation_policy: None,
                        approvals: Vec::new(),
                        gitops: None,
                        publication: None,
                        public_updates: Vec::new(),
                    },
                );
                new.metadata.name = None;
                new.metadata.generate_name = Some(format!("rollback-{}-", short(deployment)));
                new.annotations_mut().insert(
                    crate::api::metadata::ACTOR_ANNOTATION.to_owned(),
                    actor.to_owned(),
                );
                let created = self
                    .api()
                    .create(
                        &PostParams {
                            field_manager: Some(PLUGIN_MANAGER.to_owned()),
                            ..PostParams::default()
                        },
                        &new,
                    )
                    .await
                    .map_err(|source| PluginError::Api {
                        what: format!("cannot create an incident for {kind} {deployment:?}"),
                        source,
                    })?;
                Ok((created.name_any(), action_name))
            }
        }
    }

    /// Follows `action` on `incident` until it ends, calling `progress` on every change of its
    /// status; gives up after `timeout`.
    pub async fn follow_action(
        &self,
        incident: &str,
        action: &str,
        timeout: Duration,
        mut progress: impl FnMut(&ActionStatus),
    ) -> Result<ActionStatus> {
        let config = watcher::Config::default().fields(&format!("metadata.name={incident}"));
        let stream = watcher(self.api(), config).applied_objects();
        let mut stream = std::pin::pin!(stream);
        let mut last: Option<ActionStatus> = None;
        let followed = tokio::time::timeout(timeout, async {
            while let Some(object) = stream.next().await {
                let object = object.map_err(|e| PluginError::Watch {
                    name: incident.to_owned(),
                    message: e.to_string(),
                })?;
                let status = object
                    .status
                    .as_ref()
                    .and_then(|s| s.actions.iter().find(|a| a.name == action));
                let Some(status) = status else { continue };
                if last.as_ref() != Some(status) {
                    progress(status);
                    last = Some(status.clone());
                }
                if status.phase.is_terminal() {
                    return Ok(status.clone());
                }
            }
            Err(PluginError::Watch {
                name: incident.to_owned(),
                message: "the watch ended".to_owned(),
            })
        })
        .await;
        match followed {
            Ok(outcome) => outcome,
            Err(_) => Err(PluginError::Refused {
                name: incident.to_owned(),
                message: format!(
                    "action {action} did not finish within {}s (last phase: {})",
                    timeout.as_secs(),
                    last.map_or_else(|| "not started".to_owned(), |s| format!("{:?}", s.phase))
                ),
            }),
        }
    }
}

/// `incident.incident.dev/NAME`, as kubectl names objects in its messages.
pub fn reference(name: &str) -> String {
    format!("incident.incident.dev/{name}")
}

/// A progress line for a followed action.
pub fn progress_line(status: &ActionStatus) -> String {
    let mut line = format!(
        "{} {} {}: {:?}",
        status.kind,
        status.target(),
        status.name,
        status.phase
    );
    if let (Some(from), Some(to)) = (status.from_revision, status.to_revision) {
        line.push_str(&format!(" (revision {from} → {to})"));
    }
    if let Some(message) = status.message.as_deref().or(status.reason.as_deref()) {
        line.push_str(": ");
        line.push_str(message.lines().next().unwrap_or_default());
    }
    line
}

/// True when the followed action did what was asked.
pub fn succeeded(status: &ActionStatus) -> bool {
    matches!(status.phase, ActionPhase::Succeeded | ActionPhase::Skipped)
}

/// A Deployment name cut so a generated Incident name stays valid.
fn short(deployment: &str) -> String {
    let cut: String = deployment.chars().take(40).collect();
    cut.trim_end_matches(['-', '.']).replace('.', "-")
}

fn api_error(name: &str, source: kube::Error) -> PluginError {
    match &source {
        kube::Error::Api(status) if status.is_not_found() => PluginError::NotFound(name.to_owned()),
        _ => PluginError::Api {
            what: format!("request for incident {name:?} failed"),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ActionKind;

    #[test]
    fn progress_lines_say_where_the_rollback_is() {
        let mut status = ActionStatus::pending(
            "rollback-1",
            ActionKind::Rollback,
            (crate::api::WorkloadKind::Deployment, "web"),
        );
        assert_eq!(
            progress_line(&status),
            "Rollback deployment/web rollback-1: Pending"
        );
        status.phase = ActionPhase::Verifying;
        status.from_revision = Some(3);
        status.to_revision = Some(2);
        status.message = Some("2 of 4 updated".to_owned());
        assert_eq!(
            progress_line(&status),
            "Rollback deployment/web rollback-1: Verifying (revision 3 → 2): 2 of 4 updated"
        );
        assert!(!succeeded(&status));
    }

    #[test]
    fn generated_names_stay_valid() {
        assert_eq!(short("web.v2"), "web-v2");
        assert_eq!(short(&"a".repeat(60)).len(), 40);
    }
}
