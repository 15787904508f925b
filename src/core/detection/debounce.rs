//! Debouncing signals (core layer): each signal waits out its configured `for` before it opens an
//! incident or joins one, unless the workload's open incident already lists it.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

use super::{
    classify::SignalKind,
    group::{Problem, Workload},
    settings::SignalSettings,
};

/// When each (workload, signal) pending its `for` was first seen; kept in memory by the detector.
pub type Pending = BTreeMap<(Workload, SignalKind), Timestamp>;

/// Holds back each signal until it has lasted its `for`, unless the workload's incident already
/// lists it (`listed`). Problems left with no signal are dropped. Returns the problems that count
/// and when the earliest held-back signal matures. Signals with their own clock from the object
/// (Unschedulable, DeploymentUnavailable: condition times) are debounced by the classifier instead.
pub fn debounce(
    problems: Vec<Problem>,
    pending: &mut Pending,
    listed: impl Fn(&Workload, SignalKind) -> bool,
    settings: &SignalSettings,
    now: Timestamp,
) -> (Vec<Problem>, Option<Timestamp>) {
    let mut seen: BTreeSet<(Workload, SignalKind)> = BTreeSet::new();
    let mut wake: Option<Timestamp> = None;
    let mut out = Vec::with_capacity(problems.len());
    for mut problem in problems {
        let workload = problem.workload.clone();
        problem.signals.retain(|kind, _| {
            let wait = match kind {
                SignalKind::Unschedulable
                | SignalKind::DeploymentUnavailable
                | SignalKind::IncidentStorm => return true,
                other => settings.for_(*other),
            };
            if wait.is_zero() || listed(&workload, *kind) {
                return true;
            }
            let key = (workload.clone(), *kind);
            seen.insert(key.clone());
            let since = *pending.entry(key).or_insert(now);
            let matures = since
                .checked_add(SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX))
                .unwrap_or(Timestamp::MAX);
            if now >= matures {
                return true;
            }
            wake = Some(wake.map_or(matures, |w| w.min(matures)));
            false
        });
        if !problem.signals.is_empty() {
            out.push(problem);
        }
    }
    // A signal that went away starts its wait afresh when it returns.
    pending.retain(|key, _| seen.contains(key));
    (out, wake)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::Severity;

    fn web() -> Workload {
        Workload {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    fn problem(kinds: &[SignalKind]) -> Problem {
        Problem {
            workload: web(),
            severity: Severity::P3,
            title: "web".into(),
            signals: kinds
                .iter()
                .map(|k| (*k, BTreeSet::from(["web-1".to_owned()])))
                .collect(),
            replicas: None,
            detail: None,
        }
    }

    fn settings(kind: SignalKind, secs: u64) -> SignalSettings {
        let mut s = SignalSettings::default();
        s.for_.insert(kind, Duration::from_secs(secs));
        s
    }

    #[test]
    fn a_signal_counts_only_after_its_for() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let s = settings(SignalKind::CrashLoopBackOff, 60);
        let mut pending = Pending::new();
        let (out, wake) = debounce(
            vec![problem(&[SignalKind::CrashLoopBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0,
        );
        assert!(out.is_empty());
        assert_eq!(wake, Some(t0 + SignedDuration::from_secs(60)));
        let (out, _) = debounce(
            vec![problem(&[SignalKind::CrashLoopBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(59),
        );
        assert!(out.is_empty());
        let (out, wake) = debounce(
            vec![problem(&[SignalKind::CrashLoopBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(60),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(wake, None);
    }

    #[test]
    fn a_signal_that_goes_away_waits_afresh() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let s = settings(SignalKind::ImagePullBackOff, 60);
        let mut pending = Pending::new();
        debounce(
            vec![problem(&[SignalKind::ImagePullBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0,
        );
        debounce(
            Vec::new(),
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(30),
        );
        let (out, _) = debounce(
            vec![problem(&[SignalKind::ImagePullBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(61),
        );
        assert!(
            out.is_empty(),
            "the wait restarted when the signal returned"
        );
    }

    #[test]
    fn signals_already_on_the_incident_and_zero_for_pass_at_once() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let s = settings(SignalKind::OomKilled, 600);
        let mut pending = Pending::new();
        let (out, _) = debounce(
            vec![problem(&[
                SignalKind::OomKilled,
                SignalKind::CrashLoopBackOff,
            ])],
            &mut pending,
            |_, kind| kind == SignalKind::OomKilled,
            &s,
            t0,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].signals.len(), 2);
        let (out, _) = debounce(
            vec![problem(&[
                SignalKind::OomKilled,
                SignalKind::CrashLoopBackOff,
            ])],
            &mut pending,
            |_, _| false,
            &s,
            t0,
        );
        assert_eq!(
            out[0].signals.keys().copied().collect::<Vec<_>>(),
            vec![SignalKind::CrashLoopBackOff],
            "a new OOMKilled waits while the crash loop counts"
        );
    }
}
