//! What the plugin (plugin layer) takes from the kubeconfig besides the connection: the default
//! namespace, as kubectl resolves it. Not who acts: a context's user name is a local alias anyone
//! can choose, so the actor comes from the API server (`ops::identity`).

use kube::config::Kubeconfig;

/// The context in use: `--context`, else the kubeconfig's current context.
fn context<'a>(
    kubeconfig: &'a Kubeconfig,
    context: Option<&str>,
) -> Option<&'a kube::config::Context> {
    let name = context.or(kubeconfig.current_context.as_deref())?;
    kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
}

/// The namespace to work in: `-n`, else the context's namespace, else `fallback` (what the client
/// configuration resolved, e.g. the service account's namespace in a pod), else `default`.
pub fn namespace(
    flag: Option<&str>,
    kubeconfig: Option<&Kubeconfig>,
    context_name: Option<&str>,
    fallback: Option<&str>,
) -> String {
    flag.map(str::to_owned)
        .or_else(|| {
            kubeconfig
                .and_then(|k| context(k, context_name))
                .and_then(|c| c.namespace.clone())
        })
        .or_else(|| fallback.map(str::to_owned))
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig() -> Kubeconfig {
        Kubeconfig::from_yaml(
            r#"
apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: { cluster: c, user: ana@example.com, namespace: shop }
- name: ops
  context: { cluster: c, user: bob }
- name: anonymous
  context: { cluster: c }
clusters: []
users: []
"#,
        )
        .unwrap()
    }

    #[test]
    fn the_namespace_follows_kubectl() {
        let k = kubeconfig();
        assert_eq!(namespace(Some("x"), Some(&k), None, None), "x");
        assert_eq!(namespace(None, Some(&k), None, None), "shop");
        assert_eq!(namespace(None, Some(&k), Some("ops"), None), "default");
        assert_eq!(namespace(None, None, None, Some("in-pod")), "in-pod");
        assert_eq!(namespace(None, None, None, None), "default");
    }
}
