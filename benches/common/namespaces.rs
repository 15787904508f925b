//! Namespaces for one benchmark run (shared by the benchmarks that make their own): created with a
//! label that finds them after a hard kill, and deleted at the end, also on failure.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, PostParams},
    runtime::wait::await_condition,
};

use crate::common::{Result, TIMEOUT};

/// A fresh namespace `<prefix>-xxxxx` carrying `label`, with its default ServiceAccount; its name
/// is added to `namespaces` (what `cleanup` deletes).
pub async fn namespace(
    client: &Client,
    prefix: &str,
    label: (&str, &str),
    namespaces: &mut Vec<String>,
) -> Result<String> {
    let mut ns = Namespace::default();
    ns.metadata.generate_name = Some(format!("{prefix}-"));
    ns.labels_mut()
        .insert(label.0.to_owned(), label.1.to_owned());
    let created = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let name = created.name_any();
    namespaces.push(name.clone());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    tokio::time::timeout(
        TIMEOUT,
        await_condition(accounts, "default", |sa: Option<&_>| sa.is_some()),
    )
    .await??;
    Ok(name)
}

/// Deletes the namespaces and waits until they are gone.
pub async fn cleanup(client: &Client, namespaces: &[String]) {
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        match api.delete(ns, &DeleteParams::background()).await {
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => eprintln!("warning: deleting namespace {ns}: {error}"),
            Ok(_) => {}
        }
    }
    for ns in namespaces {
        let gone = await_condition(api.clone(), ns, |n: Option<&Namespace>| n.is_none());
        match tokio::time::timeout(TIMEOUT, gone).await {
            Ok(Ok(_)) => eprintln!("namespace {ns} deleted"),
            Ok(Err(error)) => eprintln!("warning: watching namespace {ns} go: {error}"),
            Err(_) => eprintln!("warning: namespace {ns} still terminating after {TIMEOUT:?}"),
        }
    }
}
