//! GitOps owners (cluster layer): read a Flux Kustomization or HelmRelease or an Argo CD
//! Application as far as a pause needs it, pause it, and put back what it had. Merge patches under
//! one field manager; the tools' own controllers apply other fields and leave these alone.

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    Error, Result,
    api::{GitOpsOwner, GitOpsTool, metadata::GITOPS_MANAGER},
    core::remediation::gitops::OwnerFacts,
};

fn resource(owner: &GitOpsOwner) -> Option<ApiResource> {
    let (group, version, kind, plural) = match (owner.tool, owner.kind.as_deref()?) {
        (GitOpsTool::Flux, "Kustomization") => (
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
            "kustomizations",
        ),
        (GitOpsTool::Flux, "HelmRelease") => (
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
            "helmreleases",
        ),
        (GitOpsTool::ArgoCD, "Application") => {
            ("argoproj.io", "v1alpha1", "Application", "applications")
        }
        _ => return None,
    };
    Some(ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    })
}

fn api(client: &Client, owner: &GitOpsOwner) -> Option<(Api<DynamicObject>, String)> {
    let resource = resource(owner)?;
    let namespace = owner.namespace.as_deref()?;
    let name = owner.name.clone()?;
    Some((
        Api::namespaced_with(client.clone(), namespace, &resource),
        name,
    ))
}

/// What a pause needs to know of the owner; None when it does not exist (or is no kind we pause).
pub async fn read(client: &Client, owner: &GitOpsOwner) -> Result<Option<OwnerFacts>> {
    let Some((api, name)) = api(client, owner) else {
        return Ok(None);
    };
    let Some(object) = api.get_opt(&name).await.map_err(Error::Kube)? else {
        return Ok(None);
    };
    let mut read = facts(owner.tool, &object.data);
    if let Some(source) = SourceRef::of(owner, &object.data) {
        read.source = Some(source.to_string());
        // Unreadable (no right, gone): the pause still happens, resumed by hand.
        read.source_revision = match source.read(client, &object.data).await {
            Ok(now) => now.and_then(|s| s.revision),
            Err(error) => {
                tracing::warn!(%source, %error, "cannot read the owner's source");
                None
            }
        };
    }
    Ok(Some(read))
}

/// The owner's source as it is now: its revision, and how often it looks for a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceNow {
    pub revision: Option<String>,
    pub interval: Option<std::time::Duration>,
}

/// Where an owner gets its revisions: a Flux Kustomization's `spec.sourceRef`, or the Argo CD
/// Application itself (its `status.sync.revision` is what its last comparison used).
#[derive(Clone, Debug, PartialEq, Eq)]
enum SourceRef {
    Flux {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    Application {
        namespace: String,
        name: String,
    },
}

impl SourceRef {
    fn of(owner: &GitOpsOwner, data: &Value) -> Option<SourceRef> {
        let namespace = owner.namespace.clone()?;
        match (owner.tool, owner.kind.as_deref()?) {
            (GitOpsTool::Flux, "Kustomization") => {
                let source = &data["spec"]["sourceRef"];
                let kind = match source["kind"].as_str()? {
                    "GitRepository" => "GitRepository",
                    "OCIRepository" => "OCIRepository",
                    "Bucket" => "Bucket",
                    _ => return None,
                };
                Some(SourceRef::Flux {
                    kind,
                    namespace: source["namespace"]
                        .as_str()
                        .map_or(namespace, str::to_owned),
                    name: source["name"].as_str()?.to_owned(),
                })
            }
            (GitOpsTool::ArgoCD, "Application") => Some(SourceRef::Application {
                namespace,
                name: owner.name.clone()?,
            }),
            // A HelmRelease's chart comes through a HelmChart of its own: not followed.
            _ => None,
        }
    }

    /// The source now; `owner` is the owner object just read (an Application is its own source).
    async fn read(&self, client: &Client, owner: &Value) -> Result<Option<SourceNow>> {
        let SourceRef::Flux {
            kind,
            namespace,
            name,
        } = self
        else {
            return Ok(Some(self.now(owner)));
        };
        let group = "source.toolkit.fluxcd.io";
        let resource = ApiResource {
            group: group.into(),
            version: "v1".into(),
            api_version: format!("{group}/v1"),
            kind: (*kind).into(),
            plural: match *kind {
                "GitRepository" => "gitrepositories",
                "OCIRepository" => "ocirepositories",
                _ => "buckets",
            }
            .into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let Some(object) = api.get_opt(name).await.map_err(Error::Kube)? else {
            return Ok(None);
        };
        Ok(Some(self.now(&object.data)))
    }

    fn now(&self, data: &Value) -> SourceNow {
        match self {
            SourceRef::Flux { .. } => SourceNow {
                revision: data["status"]["artifact"]["revision"]
                    .as_str()
                    .map(str::to_owned),
                interval: data["spec"]["interval"]
                    .as_str()
                    .and_then(|i| crate::api::duration::parse(i).ok()),
            },
            // Argo CD compares with Git every few minutes (its own setting): no interval here.
            SourceRef::Application { .. } => SourceNow {
                revision: data["status"]["sync"]["revision"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| {
                        let all = data["status"]["sync"]["revisions"].as_array()?;
                        let all: Vec<&str> = all.iter().filter_map(Value::as_str).collect();
                        (!all.is_empty()).then(|| all.join(","))
                    }),
                interval: None,
            },
        }
    }
}

impl std::fmt::Display for SourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceRef::Flux {
                kind,
                namespace,
                name,
            } => write!(f, "Flux {kind} {namespace}/{name}"),
            SourceRef::Application { namespace, name } => {
                write!(
                    f,
                    "the Git source of Argo CD Application {namespace}/{name}"
                )
            }
        }
    }
}

/// The current revision of the source a paused owner gets its revisions from (re-reading the
/// owner for where that is); None when either is gone or names no source we follow.
pub async fn source_now(client: &Client, owner: &GitOpsOwner) -> Result<Option<SourceNow>> {
    let Some((api, name)) = api(client, owner) else {
        return Ok(None);
    };
    let Some(object) = api.get_opt(&name).await.map_err(Error::Kube)? else {
        return Ok(None);
    };
    match SourceRef::of(owner, &object.data) {
        Some(source) => source.read(client, &object.data).await,
        None => Ok(None),
    }
}

/// The facts of an owner object's JSON.
fn facts(tool: GitOpsTool, data: &Value) -> OwnerFacts {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match tool {
        GitOpsTool::ArgoCD => {
            let automated = &data["spec"]["syncPolicy"]["automated"];
            let off = automated.is_null() || automated["enabled"] == json!(false);
            OwnerFacts {
                paused: off,
                previous: (!automated.is_null()).then(|| automated.to_string()),
                manages: data["status"]["resources"].as_array().map(|resources| {
                    resources
                        .iter()
                        .map(|r| {
                            format!(
                                "{}/{}/{}",
                                r["kind"].as_str().unwrap_or_default(),
                                r["namespace"].as_str().unwrap_or_default(),
                                r["name"].as_str().unwrap_or_default()
                            )
                        })
                        .collect()
                }),
                revision: text(&data["status"]["sync"]["revision"]),
                ..OwnerFacts::default()
            }
        }
        _ => OwnerFacts {
            paused: data["spec"]["suspend"] == json!(true),
            previous: Some(
                data["spec"]["suspend"]
                    .as_bool()
                    .unwrap_or(false)
                    .to_string(),
            ),
            // Flux's inventory ids: `<namespace>_<name>_<group>_<Kind>`.
            manages: data["status"]["inventory"]["entries"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| {
                            let id = e["id"].as_str()?;
                            let mut parts = id.split('_');
                            let (namespace, name) = (parts.next()?, parts.next()?);
                            let kind = parts.nth(1)?;
                            Some(format!("{kind}/{namespace}/{name}"))
                        })
                        .collect()
                }),
            revision: text(&data["status"]["lastAppliedRevision"]),
            ..OwnerFacts::default()
        },
    }
}

/// Pauses the owner the way its users do by hand.
pub async fn pause(client: &Client, owner: &GitOpsOwner) -> Result<()> {
    let patch = match owner.tool {
        GitOpsTool::ArgoCD => json!({ "spec": { "syncPolicy": { "automated": null } } }),
        _ => json!({ "spec": { "suspend": true } }),
    };
    change(client, owner, &patch).await
}

/// Puts back what the owner had before the pause (`previous`, as recorded).
pub async fn resume(client: &Client, owner: &GitOpsOwner, previous: Option<&str>) -> Result<()> {
    let patch = match owner.tool {
        GitOpsTool::ArgoCD => {
            let automated = previous
                .and_then(|p| serde_json::from_str::<Value>(p).ok())
                .unwrap_or_else(|| json!({}));
            json!({ "spec": { "syncPolicy": { "automated": automated } } })
        }
        _ => json!({ "spec": { "suspend": previous == Some("true") } }),
    };
    change(client, owner, &patch).await
}

async fn change(client: &Client, owner: &GitOpsOwner, patch: &Value) -> Result<()> {
    let Some((api, name)) = api(client, owner) else {
        return Err(Error::Refused(format!(
            "{owner} is no kind the operator pauses"
        )));
    };
    let params = PatchParams {
        field_manager: Some(GITOPS_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(&name, &params, &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(Error::Kube)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_owners_source_and_its_revision() {
        let owner = GitOpsOwner {
            tool: GitOpsTool::Flux,
            kind: Some("Kustomization".into()),
            namespace: Some("flux-system".into()),
            name: Some("apps".into()),
        };
        let kustomization =
            json!({ "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" } } });
        let source = SourceRef::of(&owner, &kustomization).expect("a source");
        assert_eq!(source.to_string(), "Flux GitRepository flux-system/repo");
        let elsewhere = json!({ "spec": { "sourceRef": { "kind": "OCIRepository", "name": "r", "namespace": "oci" } } });
        assert_eq!(
            SourceRef::of(&owner, &elsewhere).map(|s| s.to_string()),
            Some("Flux OCIRepository oci/r".into())
        );
        let unknown = json!({ "spec": { "sourceRef": { "kind": "HelmRepository", "name": "r" } } });
        assert_eq!(SourceRef::of(&owner, &unknown), None);
        let repository = json!({
            "spec": { "interval": "1m0s" },
            "status": { "artifact": { "revision": "main@sha1:abc" } },
        });
        assert_eq!(
            source.now(&repository),
            SourceNow {
                revision: Some("main@sha1:abc".into()),
                interval: Some(std::time::Duration::from_secs(60)),
            }
        );

        let application = GitOpsOwner {
            tool: GitOpsTool::ArgoCD,
            kind: Some("Application".into()),
            namespace: Some("argocd".into()),
            name: Some("shop".into()),
        };
        let data = json!({ "status": { "sync": { "revision": "abc123" } } });
        let source = SourceRef::of(&application, &data).expect("its own source");
        assert_eq!(source.now(&data).revision.as_deref(), Some("abc123"));
        let many = json!({ "status": { "sync": { "revisions": ["a", "b"] } } });
        assert_eq!(source.now(&many).revision.as_deref(), Some("a,b"));
    }

    #[test]
    fn flux_and_argo_objects_read_as_facts() {
        let kustomization = json!({
            "spec": { "interval": "1m" },
            "status": {
                "lastAppliedRevision": "main@sha1:abc",
                "inventory": { "entries": [
                    { "id": "shop_web_apps_Deployment", "v": "v1" },
                    { "id": "shop_web__Service", "v": "v1" },
                ] },
            },
        });
        let read = facts(GitOpsTool::Flux, &kustomization);
        assert!(!read.paused);
        assert_eq!(read.previous.as_deref(), Some("false"));
        assert_eq!(
            read.manages,
            Some(vec![
                "Deployment/shop/web".to_owned(),
                "Service/shop/web".to_owned()
            ])
        );
        assert_eq!(read.revision.as_deref(), Some("main@sha1:abc"));
        assert!(facts(GitOpsTool::Flux, &json!({ "spec": { "suspend": true } })).paused);

        let application = json!({
            "spec": { "syncPolicy": { "automated": { "selfHeal": true, "prune": true } } },
            "status": { "resources": [ { "kind": "Deployment", "namespace": "shop", "name": "web" } ],
                        "sync": { "revision": "abc" } },
        });
        let read = facts(GitOpsTool::ArgoCD, &application);
        assert!(!read.paused);
        assert_eq!(
            read.previous.as_deref(),
            Some(r#"{"prune":true,"selfHeal":true}"#)
        );
        assert_eq!(read.manages, Some(vec!["Deployment/shop/web".to_owned()]));
        assert!(
            facts(GitOpsTool::ArgoCD, &json!({ "spec": {} })).paused,
            "manual sync"
        );
    }
}
