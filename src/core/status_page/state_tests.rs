use proptest::prelude::*;

use super::*;
use crate::{
    api::{ComponentOverride, PublicStatus},
    core::status_page::{fixtures::*, public::collect},
};

fn public() -> Vec<PublicIncident> {
    collect(&page(), &incidents(), t(30))
}

#[test]
fn a_component_follows_its_worst_open_incident() {
    let page = page();
    let views = components(&page, &public(), t(30));
    let status: Vec<_> = views.iter().map(|c| (c.name.as_str(), c.status)).collect();
    assert_eq!(
        status,
        [
            ("checkout", ComponentStatus::PartialOutage),
            // Its critical incident is resolved.
            ("search", ComponentStatus::Operational),
            ("api", ComponentStatus::Operational),
        ]
    );
    assert_eq!(
        indicator(&views, &public()),
        (Indicator::Major, "Partial System Outage")
    );
}

#[test]
fn an_override_wins_and_maintenance_shows_while_it_runs() {
    let mut page = page();
    page.spec.components[0].override_ = Some(ComponentOverride {
        status: ComponentStatus::MajorOutage,
        reason: None,
    });
    let views = components(&page, &public(), t(90));
    assert_eq!(views[0].status, ComponentStatus::MajorOutage);
    assert!(views[0].overridden);
    assert_eq!(views[1].status, ComponentStatus::UnderMaintenance);
    assert_eq!(indicator(&views, &public()).0, Indicator::Critical);
    let m = &page.spec.maintenances[0];
    assert_eq!(maintenance_status(m, t(59)), MaintenanceStatus::Scheduled);
    assert_eq!(maintenance_status(m, t(60)), MaintenanceStatus::InProgress);
    assert_eq!(maintenance_status(m, t(120)), MaintenanceStatus::Completed);
}

#[test]
fn nothing_open_is_all_systems_operational_and_maintenance_says_so() {
    let page = page();
    let past: Vec<_> = public().into_iter().filter(|i| i.is_resolved()).collect();
    let views = components(&page, &past, t(30));
    assert_eq!(
        indicator(&views, &past),
        (Indicator::None, "All Systems Operational")
    );
    let views = components(&page, &past, t(61));
    assert_eq!(
        indicator(&views, &past),
        (Indicator::None, "Service Under Maintenance")
    );
}

#[test]
fn uptime_counts_outages_by_weight_once_when_incidents_overlap() {
    let now = t(24 * 60 * 3);
    let mk = |impact, from: i64, to: i64| PublicIncident {
        id: format!("{from}"),
        title: "x".into(),
        impact,
        components: vec!["checkout".into()],
        status: PublicStatus::Resolved,
        published_at: t(from),
        monitoring_at: None,
        resolved_at: Some(t(to)),
        updated_at: t(to),
        updates: Vec::new(),
    };
    // 60 minutes of major outage, overlapped by a partial one: 60 minutes down.
    let history = [
        mk(Impact::Critical, 0, 60),
        mk(Impact::Major, 30, 60),
        mk(Impact::Minor, 100, 200),
    ];
    let up = uptime("checkout", &history, now);
    assert_eq!(up.days.len(), HISTORY_DAYS as usize);
    let affected: i64 = up.days.iter().map(|d| d.affected_seconds).sum();
    assert_eq!(affected, (60 + 100) * 60);
    assert!(
        up.days
            .iter()
            .any(|d| d.worst == ComponentStatus::MajorOutage)
    );
    assert!(up.percent < 100.0 && up.percent > 99.0, "{}", up.percent);
    assert_eq!(uptime("search", &history, now).percent, 100.0);
}

fn arbitrary_incident() -> impl Strategy<Value = PublicIncident> {
    (0usize..4, -200_000i64..0, 0i64..5_000, any::<bool>()).prop_map(
        |(impact, from, length, open)| PublicIncident {
            id: format!("{from}-{length}"),
            title: "t".into(),
            impact: Impact::ALL[impact],
            components: vec!["checkout".into()],
            status: if open {
                PublicStatus::Investigating
            } else {
                PublicStatus::Resolved
            },
            published_at: t(from),
            monitoring_at: None,
            resolved_at: (!open).then(|| t(from + length)),
            updated_at: t(from),
            updates: Vec::new(),
        },
    )
}

proptest! {
    /// Uptime stays within 0-100%, and one more incident never makes it better; the component's
    /// status is the worst open incident's.
    #[test]
    fn uptime_is_bounded_and_monotone(
        history in proptest::collection::vec(arbitrary_incident(), 0..8),
        extra in arbitrary_incident(),
    ) {
        let now = t(0);
        let before = uptime("checkout", &history, now);
        prop_assert!((0.0..=100.0).contains(&before.percent));
        let mut more = history.clone();
        more.push(extra);
        let after = uptime("checkout", &more, now);
        prop_assert!(after.percent <= before.percent + 1e-9);
        let page = page();
        let worst = more
            .iter()
            .filter(|i| !i.is_resolved())
            .map(|i| impact_status(i.impact))
            .max()
            .unwrap_or(ComponentStatus::Operational);
        prop_assert_eq!(component_status(&page, &page.spec.components[0], &more, now), worst);
    }
}
