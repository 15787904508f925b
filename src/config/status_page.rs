//! The status page's flags (config): where it listens (its own listener, never the metrics or
//! alerts port) and which StatusPage it serves. No address, no page.

use std::net::SocketAddr;

/// Flags of the status page and board (part of `incident-operator run`).
#[derive(Debug, Clone, clap::Args)]
pub struct StatusPageArgs {
    /// Address serving the public status page (HTML, Statuspage v2 JSON, Atom) and the
    /// responders' board (/board); off unless given. Needs --status-page.
    #[arg(long, env = "INCIDENT_STATUS_PAGE_ADDR")]
    pub status_page_addr: Option<SocketAddr>,

    /// The StatusPage to serve, as NAMESPACE/NAME; the page shows that namespace's published
    /// incidents and the board its open ones.
    #[arg(long, env = "INCIDENT_STATUS_PAGE")]
    pub status_page: Option<String>,

    /// How often the HTML page and the board reload themselves, in seconds [default: 30].
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(5..=3600))]
    pub status_page_refresh: u32,
}

/// The status page as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusPageConfig {
    pub addr: SocketAddr,
    pub namespace: String,
    pub name: String,
    pub refresh_seconds: u32,
}

impl StatusPageArgs {
    /// The configuration, None when off; mistakes go to `errors`.
    pub fn config(&self, errors: &mut Vec<String>) -> Option<StatusPageConfig> {
        let addr = self.status_page_addr?;
        let Some(reference) = self.status_page.as_deref() else {
            errors.push("--status-page-addr needs --status-page NAMESPACE/NAME".to_owned());
            return None;
        };
        let parts = reference
            .split_once('/')
            .filter(|(ns, name)| is_name(ns, 63) && is_name(name, 63));
        let Some((namespace, name)) = parts else {
            errors.push(format!(
                "--status-page {reference:?}: write NAMESPACE/NAME, e.g. shop/status"
            ));
            return None;
        };
        Some(StatusPageConfig {
            addr,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            refresh_seconds: self.status_page_refresh,
        })
    }
}

/// A DNS label: lowercase letters, digits and inner dashes.
fn is_name(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: Option<&str>, page: Option<&str>) -> StatusPageArgs {
        StatusPageArgs {
            status_page_addr: addr.map(|a| a.parse().unwrap()),
            status_page: page.map(str::to_owned),
            status_page_refresh: 30,
        }
    }

    #[test]
    fn the_page_needs_an_address_and_a_name() {
        let mut errors = Vec::new();
        assert_eq!(args(None, Some("shop/status")).config(&mut errors), None);
        assert!(errors.is_empty());
        let config = args(Some("127.0.0.1:8090"), Some("shop/status"))
            .config(&mut errors)
            .unwrap();
        assert_eq!(
            (config.namespace.as_str(), config.name.as_str()),
            ("shop", "status")
        );
        assert_eq!(args(Some("127.0.0.1:8090"), None).config(&mut errors), None);
        assert_eq!(
            args(Some("127.0.0.1:8090"), Some("Shop/x y")).config(&mut errors),
            None
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].contains("NAMESPACE/NAME"));
    }
}
