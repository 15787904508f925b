//! `kubectl incident create` (plugin layer): a person's report as a new Incident. Every flag is
//! checked here against the limits the CRD's schema sets, before any request, so a bad flag is a
//! usage error and nothing is written. Pure; the API call is [`super::ops::Session::create`].

use kube::ResourceExt;

use crate::api::{
    AffectedKind, AffectedRef, Incident, IncidentSpec, Severity, metadata::ACTOR_ANNOTATION,
};

/// `--source` when none is given.
pub const DEFAULT_SOURCE: &str = "user-report";
/// The name prefix of a reported incident created without a NAME.
pub const GENERATE_NAME: &str = "report-";
/// Most `--deployment` flags (the schema's limit on `affected`).
pub const MAX_DEPLOYMENTS: usize = 20;

/// What `kubectl incident create` was asked to open.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The Incident's name; None lets the API server make one (`report-xxxxx`).
    pub name: Option<String>,
    pub title: String,
    pub severity: Severity,
    pub source: String,
    /// None: the actor reports it.
    pub reporter: Option<String>,
    pub ticket: Option<String>,
    pub deployments: Vec<String>,
    pub description: Option<String>,
    pub commander: Option<String>,
}

impl Report {
    /// Checks every flag; the first problem, naming its flag.
    pub fn check(&self) -> Result<(), String> {
        fn flag<T>(name: &str, checked: Result<T, String>) -> Result<(), String> {
            checked.map(drop).map_err(|e| format!("{name}: {e}"))
        }
        if let Some(name) = &self.name {
            flag("NAME", object_name(name))?;
        }
        flag("--title", title(&self.title))?;
        flag("--source", source(&self.source))?;
        if let Some(reporter) = &self.reporter {
            flag("--reporter", person(reporter))?;
        }
        if let Some(ticket) = &self.ticket {
            flag("--ticket", self::ticket(ticket))?;
        }
        for deployment in &self.deployments {
            flag("--deployment", object_name(deployment))?;
        }
        if self.affected().len() > MAX_DEPLOYMENTS {
            return Err(format!(
                "--deployment: at most {MAX_DEPLOYMENTS} deployments"
            ));
        }
        if let Some(description) = &self.description {
            flag("--description", self::description(description))?;
        }
        if let Some(commander) = &self.commander {
            flag("--commander", person(commander))?;
        }
        Ok(())
    }

    /// Each Deployment once, in the order given.
    fn affected(&self) -> Vec<AffectedRef> {
        let mut affected: Vec<AffectedRef> = Vec::new();
        for name in &self.deployments {
            let reference = AffectedRef {
                kind: AffectedKind::Deployment,
                name: name.trim().to_owned(),
                namespace: None,
            };
            if !affected.contains(&reference) {
                affected.push(reference);
            }
        }
        affected
    }

    /// The Incident to create, reported by `actor` unless `--reporter` names someone else; the
    /// actor annotation says who wrote it, as on every plugin write.
    pub fn incident(&self, actor: &str) -> Incident {
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut incident = Incident::new(
            "",
            IncidentSpec {
                title: self.title.trim().to_owned(),
                severity: self.severity,
                description: text(&self.description),
                commander: text(&self.commander),
                source: Some(self.source.trim().to_owned()),
                reporter: text(&self.reporter).or_else(|| Some(actor.to_owned())),
                ticket: text(&self.ticket),
                affected: self.affected(),
                acknowledgment: None,
                resolution: None,
                notes: Vec::new(),
                updates: Vec::new(),
                alerts: Vec::new(),
                postmortem: None,
                actions: Vec::new(),
                signals: Vec::new(),
                runbook_ref: None,
                escalation_policy: None,
                approvals: Vec::new(),
                gitops: None,
                publication: None,
                public_updates: Vec::new(),
            },
        );
        match self.name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => incident.metadata.name = Some(name.to_owned()),
            _ => {
                incident.metadata.name = None;
                incident.metadata.generate_name = Some(GENERATE_NAME.to_owned());
            }
        }
        incident
            .annotations_mut()
            .insert(ACTOR_ANNOTATION.to_owned(), actor.to_owned());
        incident
    }
}

/// The report's fields the API server did not keep (a cluster whose Incident CRD predates them
/// prunes them silently), as `spec.<field>`.
pub fn dropped(sent: &Incident, created: &Incident) -> Vec<&'static str> {
    let (sent, created) = (&sent.spec, &created.spec);
    [
        (
            "spec.source",
            sent.source.is_some() && created.source.is_none(),
        ),
        (
            "spec.reporter",
            sent.reporter.is_some() && created.reporter.is_none(),
        ),
        (
            "spec.ticket",
            sent.ticket.is_some() && created.ticket.is_none(),
        ),
    ]
    .into_iter()
    .filter_map(|(field, lost)| lost.then_some(field))
    .collect()
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// `--title`: a line a responder understands at a glance (1 to 200 characters, not blank).
pub fn title(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the title must not be blank".to_owned());
    }
    if chars(trimmed) > 200 {
        return Err(format!(
            "the title has {} characters, at most 200 fit",
            chars(trimmed)
        ));
    }
    Ok(trimmed.to_owned())
}

/// `--source`: a lowercase word, or words joined by dashes (`user-report`), at most 63 characters.
pub fn source(text: &str) -> Result<String, String> {
    let words_ok = text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !words_ok || chars(text) > 63 {
        return Err(format!(
            "`{text}` is not a source: write lowercase words joined by dashes (at most 63 \
             characters), e.g. user-report, support-ticket, monitoring"
        ));
    }
    Ok(text.to_owned())
}

/// `--reporter`, `--commander`: a person or team (1 to 128 characters, not blank).
pub fn person(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("must not be blank".to_owned());
    }
    if chars(trimmed) > 128 {
        return Err(format!("{} characters, at most 128 fit", chars(trimmed)));
    }
    Ok(trimmed.to_owned())
}

/// `--ticket`: where the report lives, an http:// or https:// URL naming a host (at most 2048
/// characters, no spaces).
pub fn ticket(text: &str) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("`{text}` is not a ticket URL: {why}"));
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return refuse("it must start with http:// or https://");
    };
    if text.chars().any(char::is_whitespace) {
        return refuse("it must not contain spaces");
    }
    if rest.split(['/', '?', '#']).next().is_none_or(str::is_empty) {
        return refuse("it names no host");
    }
    if chars(text) > 2048 {
        return refuse("at most 2048 characters fit");
    }
    Ok(text.to_owned())
}

/// `--description`: symptoms and scope, at most 4096 characters.
pub fn description(text: &str) -> Result<String, String> {
    if chars(text.trim()) > 4096 {
        return Err(format!(
            "{} characters, at most 4096 fit",
            chars(text.trim())
        ));
    }
    Ok(text.trim().to_owned())
}

/// NAME and `--deployment`: a Kubernetes object name (lowercase letters, digits, `-` and `.`,
/// starting and ending with a letter or digit, at most 253 characters).
pub fn object_name(text: &str) -> Result<String, String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = chars(text) <= 253
        && edge(text.chars().next())
        && edge(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid {
        return Err(format!(
            "`{text}` is not an object name: use lowercase letters, digits, '-' and '.', starting \
             and ending with a letter or digit (at most 253 characters)"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report() -> Report {
        Report {
            name: None,
            title: "  Checkout hangs at payment ".to_owned(),
            severity: Severity::P1,
            source: DEFAULT_SOURCE.to_owned(),
            reporter: None,
            ticket: None,
            deployments: Vec::new(),
            description: None,
            commander: None,
        }
    }

    #[test]
    fn a_bare_report_is_the_actors_user_report_with_a_generated_name() {
        let incident = report().incident("ana@example.com");
        let value = serde_json::to_value(&incident).expect("an Incident serializes");
        assert_eq!(
            value,
            json!({
                "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
                "metadata": { "generateName": "report-",
                              "annotations": { "incident.dev/actor": "ana@example.com" } },
                "spec": { "title": "Checkout hangs at payment", "severity": "P1",
                          "source": "user-report", "reporter": "ana@example.com" },
            })
        );
        assert_eq!(report().check(), Ok(()));
    }

    #[test]
    fn every_flag_lands_in_its_field() {
        let full = Report {
            name: Some("checkout-hangs".to_owned()),
            source: "support-ticket".to_owned(),
            reporter: Some("Carla (support)".to_owned()),
            ticket: Some("https://tickets.example/T-1234?view=full".to_owned()),
            deployments: vec![
                "checkout".to_owned(),
                "payments".to_owned(),
                "checkout".to_owned(),
            ],
            description: Some("Three customers wrote in since 10:00.".to_owned()),
            commander: Some("bo".to_owned()),
            ..report()
        };
        assert_eq!(full.check(), Ok(()));
        let incident = full.incident("ana");
        assert_eq!(incident.metadata.name.as_deref(), Some("checkout-hangs"));
        assert_eq!(incident.metadata.generate_name, None);
        let spec = serde_json::to_value(&incident.spec).expect("spec");
        assert_eq!(
            spec,
            json!({
                "title": "Checkout hangs at payment", "severity": "P1",
                "description": "Three customers wrote in since 10:00.", "commander": "bo",
                "source": "support-ticket", "reporter": "Carla (support)",
                "ticket": "https://tickets.example/T-1234?view=full",
                "affected": [{ "kind": "Deployment", "name": "checkout" },
                             { "kind": "Deployment", "name": "payments" }],
            }),
            "each Deployment once, in the order given"
        );
    }

    #[test]
    fn bad_flags_are_refused_naming_the_flag() {
        let cases: Vec<(Report, &str)> = vec![
            (
                Report {
                    title: "   ".to_owned(),
                    ..report()
                },
                "--title: the title must not be blank",
            ),
            (
                Report {
                    title: "x".repeat(201),
                    ..report()
                },
                "--title: the title has 201",
            ),
            (
                Report {
                    name: Some("Bad_Name".to_owned()),
                    ..report()
                },
                "NAME: `Bad_Name`",
            ),
            (
                Report {
                    source: "User Report".to_owned(),
                    ..report()
                },
                "--source: `User Report`",
            ),
            (
                Report {
                    reporter: Some(" ".to_owned()),
                    ..report()
                },
                "--reporter: must not be blank",
            ),
            (
                Report {
                    reporter: Some("r".repeat(129)),
                    ..report()
                },
                "--reporter: 129 characters",
            ),
            (
                Report {
                    ticket: Some("ftp://x/1".to_owned()),
                    ..report()
                },
                "--ticket: `ftp://x/1`",
            ),
            (
                Report {
                    deployments: vec!["web_1".to_owned()],
                    ..report()
                },
                "--deployment: `web_1`",
            ),
            (
                Report {
                    deployments: (0..21).map(|n| format!("d{n}")).collect(),
                    ..report()
                },
                "--deployment: at most 20 deployments",
            ),
            (
                Report {
                    description: Some("d".repeat(4097)),
                    ..report()
                },
                "--description: 4097",
            ),
            (
                Report {
                    commander: Some(String::new()),
                    ..report()
                },
                "--commander: must not be blank",
            ),
        ];
        for (bad, expected) in cases {
            let error = bad.check().expect_err(expected);
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
        }
    }

    #[test]
    fn fields_an_old_crd_pruned_are_named() {
        let full = Report {
            ticket: Some("https://tickets.example/T-1".to_owned()),
            ..report()
        };
        let sent = full.incident("ana");
        assert!(dropped(&sent, &sent).is_empty());
        let mut pruned = sent.clone();
        pruned.spec.source = None;
        pruned.spec.ticket = None;
        assert_eq!(dropped(&sent, &pruned), ["spec.source", "spec.ticket"]);
    }

    #[test]
    fn sources_are_lowercase_words_joined_by_dashes() {
        for good in [
            "user-report",
            "support-ticket",
            "monitoring",
            "pager2",
            "a-b-c",
        ] {
            assert_eq!(source(good), Ok(good.to_owned()));
        }
        for bad in [
            "",
            "-report",
            "report-",
            "user--report",
            "User",
            "user_report",
            "2fa",
            "a b",
        ] {
            assert!(source(bad).is_err(), "{bad:?} accepted");
        }
        assert!(source(&"a".repeat(63)).is_ok());
        assert!(source(&"a".repeat(64)).is_err());
    }

    #[test]
    fn tickets_are_http_urls_with_a_host() {
        for good in [
            "https://tickets.example/T-1",
            "http://jira.internal:8080/browse/OPS-7",
            "https://x",
        ] {
            assert_eq!(ticket(good), Ok(good.to_owned()));
        }
        for (bad, why) in [
            ("tickets.example/T-1", "must start with http:// or https://"),
            (
                "HTTPS://tickets.example",
                "must start with http:// or https://",
            ),
            (
                "mailto:ops@example.com",
                "must start with http:// or https://",
            ),
            ("https://", "names no host"),
            ("https:///path", "names no host"),
            ("https://tickets.example/a b", "must not contain spaces"),
        ] {
            let error = ticket(bad).expect_err(bad);
            assert!(error.ends_with(why), "{bad:?}: {error}");
        }
        let long = format!("https://t.example/{}", "a".repeat(2048));
        assert!(ticket(&long).is_err());
    }

    #[test]
    fn object_names_follow_kubernetes() {
        for good in ["web", "web-1", "web.v2", "0"] {
            assert!(object_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-web", "web-", "Web", "web_1", "web 1"] {
            assert!(object_name(bad).is_err(), "{bad:?}");
        }
        assert!(object_name(&"a".repeat(254)).is_err());
    }
}
