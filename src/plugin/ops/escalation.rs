//! The plugin's on-call calls (plugin layer): who leads an incident (`take`, `handover`), resuming
//! the GitOps owners paused for it (`resume-gitops`), the
//! OnCallSchedules `oncall` reads, and the business hours of the policies `list` counts in.

use std::collections::BTreeSet;

use kube::Api;

use super::{Session, reference};
use crate::{
    api::{EscalationPolicy, Incident, OnCallSchedule, PauseState},
    core::calendar::Calendar,
    plugin::{PluginError, Result, patch, render::Calendars},
};

impl Session {
    /// Makes `person` the incident's commander, `handed_over` by the actor (else the actor takes
    /// it). Says so and writes nothing when `person` already leads.
    async fn lead(&self, name: &str, person: &str, handed_over: bool) -> Result<String> {
        let actor = self.actor().await?;
        let written = self
            .edit(name, |incident| {
                Ok(patch::commander(incident, actor, person))
            })
            .await?;
        let subject = format!("{}: {person}", reference(name));
        Ok(match written {
            None => format!("{subject} already leads the response"),
            Some(_) if handed_over => {
                format!("{subject} now leads the response (handed over by {actor})")
            }
            Some(_) => format!("{subject} now leads the response"),
        })
    }

    /// `resume-gitops`: every GitOps owner paused for the incident is resumed (the fix is in Git).
    pub async fn resume_gitops(&self, name: &str) -> Result<String> {
        let actor = self.actor().await?;
        let written = self
            .edit(name, |incident| Ok(patch::resume_gitops(incident, actor)))
            .await?;
        let paused: Vec<String> = written
            .as_ref()
            .and_then(|i| i.status.as_ref())
            .map(|s| {
                s.gitops
                    .iter()
                    .filter(|p| p.state == PauseState::Paused && !p.already_paused)
                    .map(|p| p.owner.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let subject = reference(name);
        Ok(match written {
            None => format!("{subject}: resuming its GitOps owners was already asked"),
            Some(_) if paused.is_empty() => {
                format!("{subject}: asked to resume its GitOps owners (none is paused now)")
            }
            Some(_) => format!("{subject}: resuming {}", paused.join(", ")),
        })
    }

    /// `take`: the actor leads the response from now on.
    pub async fn take(&self, name: &str) -> Result<String> {
        let actor = self.actor().await?;
        self.lead(name, actor, false).await
    }

    /// `handover --to PERSON`: `person` leads the response from now on.
    pub async fn handover(&self, name: &str, person: &str) -> Result<String> {
        self.lead(name, person, true).await
    }

    /// The OnCallSchedules of the namespace, or of every namespace the user may list.
    pub async fn schedules(&self, all_namespaces: bool) -> Result<Vec<OnCallSchedule>> {
        let (api, where_) = if all_namespaces {
            (Api::all(self.client.clone()), "all namespaces".to_owned())
        } else {
            (
                Api::namespaced(self.client.clone(), &self.namespace),
                format!("namespace {:?}", self.namespace),
            )
        };
        api.list(&Default::default())
            .await
            .map(|list| list.items)
            .map_err(|source| PluginError::Api {
                what: format!("cannot list on-call schedules in {where_}"),
                source,
            })
    }

    /// The business hours of the policies whose business-time clocks `incidents` run on, by
    /// `namespace/name`. A policy that cannot be read (gone, forbidden) or has no usable hours is
    /// left out: its incidents' clocks then read in wall time.
    pub async fn calendars(&self, incidents: &[Incident]) -> Calendars {
        let policies: BTreeSet<&str> = incidents
            .iter()
            .filter_map(|i| i.status.as_ref())
            .filter(|s| {
                s.sla
                    .as_ref()
                    .is_some_and(|sla| sla.business_hours.is_some())
            })
            .filter_map(|s| s.escalation.as_ref()?.policy.as_deref())
            .collect();
        let mut calendars = Calendars::new();
        for key in policies {
            let Some((namespace, name)) = key.split_once('/') else {
                continue;
            };
            let api: Api<EscalationPolicy> = Api::namespaced(self.client.clone(), namespace);
            let Ok(Some(policy)) = api.get_opt(name).await else {
                continue;
            };
            if let Some(Ok(calendar)) = policy.spec.business_hours.as_ref().map(Calendar::new) {
                calendars.insert(key.to_owned(), calendar);
            }
        }
        calendars
    }
}
