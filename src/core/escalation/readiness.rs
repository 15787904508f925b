//! Whether an OnCallSchedule or EscalationPolicy can be used (core layer): kstatus-style `Ready`
//! and `Stalled` conditions naming every problem admission could not see (an unknown time zone, a
//! schedule, layer, member or channel that does not exist). A condition keeps its transition time
//! while its status holds, so an unchanged object is never written again.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::core::text::condition;

/// The conditions for `problems` (empty: ready), keeping transition times from `old`.
pub fn conditions(
    problems: &[String],
    generation: i64,
    old: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let ready = problems.is_empty();
    let message = if ready {
        "every schedule, layer, member and channel it names exists".to_owned()
    } else {
        problems.join("; ")
    };
    let reason = if ready { "Ready" } else { "InvalidReference" };
    [
        condition("Ready", ready, reason, message.clone()),
        condition("Stalled", !ready, reason, message),
    ]
    .into_iter()
    .map(|mut c| {
        c.observed_generation = Some(generation);
        c.last_transition_time = old
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .map_or(Time(now), |p| p.last_transition_time.clone());
        c
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_make_it_not_ready_and_a_held_status_keeps_its_time() {
        let t0 = Timestamp::from_second(1_800_000_000).expect("time");
        let t1 = Timestamp::from_second(1_800_000_100).expect("time");
        let ready = conditions(&[], 3, &[], t0);
        assert_eq!(ready[0].status, "True");
        assert_eq!(ready[1].status, "False");
        assert_eq!(ready[0].observed_generation, Some(3));
        assert_eq!(
            conditions(&[], 3, &ready, t1),
            ready,
            "nothing changed, nothing to write"
        );
        let broken = conditions(&["OnCallSchedule x does not exist".into()], 4, &ready, t1);
        assert_eq!(broken[0].status, "False");
        assert_eq!(broken[0].reason, "InvalidReference");
        assert_eq!(broken[0].message, "OnCallSchedule x does not exist");
        assert_eq!(broken[0].last_transition_time, Time(t1));
    }
}
