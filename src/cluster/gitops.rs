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
    Ok(Some(facts(owner.tool, &object.data)))
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
