//! What the status page and the board read (cluster layer): watch caches of one namespace's
//! Incidents (trimmed to what the page and the board show) and of the one StatusPage, kept on
//! every replica; and the TokenReview and SubjectAccessReview that admit a board reader.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec, UserInfo},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{
    Api, Client,
    api::PostParams,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::{
    Error, Result,
    api::{Incident, StatusPage},
};

/// The watch caches behind one status page.
pub struct PageCache {
    pub incidents: Store<Incident>,
    pages: Store<StatusPage>,
    name: String,
    namespace: String,
    tasks: Vec<JoinHandle<()>>,
}

/// Drops what neither the page nor the board shows, so a thousand incidents in history stay small.
fn trim(incident: &mut Incident) {
    incident.metadata.managed_fields = None;
    incident.metadata.annotations = None;
    let spec = &mut incident.spec;
    spec.description = None;
    spec.notes.clear();
    spec.updates.clear();
    spec.signals.clear();
    spec.alerts.clear();
    spec.actions.clear();
    spec.postmortem = None;
    if let Some(status) = incident.status.as_mut() {
        status.evidence = None;
        status.notifications.clear();
        status.deliveries.clear();
        status.threads.clear();
        status.actions.clear();
        status.escalation = None;
        status.recorded = None;
        status.metrics = None;
        status.conditions.clear();
        if let Some(run) = status.runbook.as_mut() {
            run.steps.clear();
        }
    }
}

impl PageCache {
    /// Starts watching the Incidents of `namespace` and the StatusPage `namespace/name`.
    pub fn watch(client: &Client, namespace: &str, name: &str) -> Self {
        let (incidents, writer) = reflector::store();
        let stream = watcher(
            Api::<Incident>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(trim)
        .reflect(writer);
        let mut tasks = vec![tokio::spawn(drain(stream, "Incident"))];
        let (pages, writer) = reflector::store();
        let stream = watcher(
            Api::<StatusPage>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
        .reflect(writer);
        tasks.push(tokio::spawn(drain(stream, "StatusPage")));
        PageCache {
            incidents,
            pages,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            tasks,
        }
    }

    /// Waits until both caches listed once; an error after `limit` (CRDs missing, no access).
    pub async fn ready(&self, limit: Duration) -> Result<()> {
        let both = futures::future::join(
            self.incidents.wait_until_ready(),
            self.pages.wait_until_ready(),
        );
        match tokio::time::timeout(limit, both).await {
            Ok((Ok(()), Ok(()))) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "cannot list Incidents and StatusPages in namespace {}: install the CRDs \
                 (kubectl apply -f crds/) and let the operator read them",
                self.namespace
            ))),
        }
    }

    /// The StatusPage, if it exists.
    pub fn page(&self) -> Option<Arc<StatusPage>> {
        self.pages
            .get(&ObjectRef::new(&self.name).within(&self.namespace))
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn reference(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

async fn drain<S, K>(stream: S, kind: &'static str)
where
    S: futures::Stream<Item = std::result::Result<K, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Err(error) = event {
            debug!(%error, kind, "watch error; the watcher retries");
        }
    }
}

impl Drop for PageCache {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Who may read the board, as the API server judged a bearer token.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The token is not valid (401).
    Unauthenticated,
    /// Valid, but RBAC does not allow the request (403); names the user.
    Forbidden(String),
    Allowed(String),
}

/// Checks `token` with a TokenReview, then asks a SubjectAccessReview whether its user may `verb`
/// incidents (incident.dev) in `namespace` (`name` for one incident), as kube-rbac-proxy does.
pub async fn review(
    client: &Client,
    token: &str,
    namespace: &str,
    verb: &str,
    name: Option<&str>,
) -> Result<Verdict> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let answer = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(Error::Kube)?;
    let status = answer.status.unwrap_or_default();
    let user: UserInfo = match (status.authenticated, status.user) {
        (Some(true), Some(user)) => user,
        _ => return Ok(Verdict::Unauthenticated),
    };
    let username = user.username.clone().unwrap_or_default();
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username,
            groups: user.groups,
            uid: user.uid,
            extra: user
                .extra
                .map(|extra| extra.into_iter().collect::<BTreeMap<_, _>>()),
            resource_attributes: Some(ResourceAttributes {
                group: Some("incident.dev".to_owned()),
                resource: Some("incidents".to_owned()),
                verb: Some(verb.to_owned()),
                namespace: Some(namespace.to_owned()),
                name: name.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &access)
        .await
        .map_err(Error::Kube)?;
    Ok(match answer.status {
        Some(status) if status.allowed && status.denied != Some(true) => Verdict::Allowed(username),
        _ => Verdict::Forbidden(username),
    })
}
