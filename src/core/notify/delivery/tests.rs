//! Unit tests of delivery decisions (core layer, tests).

use proptest::prelude::*;

use super::*;
use crate::api::NotificationEvent;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("time")
}

fn message(key: &str, channel: &str) -> Notification {
    Notification {
        key: key.into(),
        channel: channel.into(),
        event: NotificationEvent::Opened,
        time: Time(at(0)),
        summary: "opened".into(),
        actor: None,
        recipient: None,
    }
}

fn tried(key: &str, state: DeliveryState, next: Option<i64>) -> DeliveryRecord {
    DeliveryRecord {
        key: key.into(),
        state,
        attempts: 1,
        last_attempt_at: None,
        next_attempt_at: next.map(|s| Time(at(s))),
        sent_at: None,
        last_error: None,
    }
}

fn status(code: u16) -> Answer {
    Answer::Status {
        code,
        retry_after: None,
        reason: None,
    }
}

#[test]
fn a_channels_later_messages_wait_behind_its_first_undelivered_one() {
    let outbox = [
        message("a1", "shop/a"),
        message("a2", "shop/a"),
        message("b1", "shop/b"),
        message("a3", "shop/a"),
        message("b2", "shop/b"),
        message("c1", "shop/c"),
    ];
    let deliveries = [
        tried("a1", DeliveryState::Sent, None),
        tried("a2", DeliveryState::Pending, Some(100)),
        tried("c1", DeliveryState::Failed, None),
    ];
    let now = due(&outbox, &deliveries, at(50));
    assert_eq!(now.len(), 1, "a waits for its retry at +100; c gave up");
    assert_eq!(now["shop/b"], [2, 4]);
    let later = due(&outbox, &deliveries, at(100));
    assert_eq!(later["shop/a"], [1, 3]);
    assert_eq!(next_attempt(&deliveries), Some(at(100)));
    assert!(pending(&deliveries, "b1") && pending(&deliveries, "a2"));
    assert!(!pending(&deliveries, "a1") && !pending(&deliveries, "c1"));
}

#[test]
fn success_is_sent_refusal_fails_and_overload_or_outage_retries() {
    let e = message("k", "shop/a");
    assert_eq!(judge(&e, &[], &status(200), at(5)), Verdict::Sent);
    assert_eq!(judge(&e, &[], &status(204), at(5)), Verdict::Sent);
    let refused = Answer::Status {
        code: 404,
        retry_after: None,
        reason: Some("channel_not_found".into()),
    };
    assert!(matches!(
        judge(
            &e,
            &[],
            &Answer::Unusable("the URL is not http or https".into()),
            at(5)
        ),
        Verdict::Failed { .. }
    ));
    assert_eq!(
        judge(&e, &[], &refused, at(5)),
        Verdict::Failed {
            error: "the receiver answered 404: channel_not_found".into()
        }
    );
    for answer in [
        status(500),
        status(503),
        status(429),
        status(408),
        Answer::Unreachable("the connection failed".into()),
    ] {
        assert!(
            matches!(judge(&e, &[], &answer, at(5)), Verdict::Retry { .. }),
            "{answer:?}"
        );
    }
}

#[test]
fn retry_after_is_honoured_and_a_day_later_the_message_is_given_up() {
    let e = message("k", "shop/a");
    let slow_down = Answer::Status {
        code: 429,
        retry_after: Some(Duration::from_secs(30)),
        reason: None,
    };
    match judge(&e, &[], &slow_down, at(10)) {
        Verdict::Retry { at: when, .. } => assert_eq!(when, at(40)),
        other => panic!("expected a retry, got {other:?}"),
    }
    let late = judge(&e, &[], &status(503), at(0) + GIVE_UP_AFTER);
    assert!(
        matches!(&late, Verdict::Failed { error } if error.starts_with("undeliverable for 24h"))
    );
}

#[test]
fn recording_attempts_moves_the_message_on_and_pruning_follows_the_outbox() {
    let e = message("k", "shop/a");
    let mut deliveries = Vec::new();
    let retry = judge(&e, &deliveries, &status(500), at(10));
    record(&mut deliveries, "k", &retry, at(10));
    let r = record_of(&deliveries, "k").expect("a record");
    assert_eq!((r.state, r.attempts), (DeliveryState::Pending, 1));
    assert!(r.next_attempt_at.as_ref().is_some_and(|t| t.0 > at(10)));
    assert_eq!(r.last_error.as_deref(), Some("the receiver answered 500"));
    // Later waits are longer: the attempts count (the sixth waits 16-48 s, the first 0.5-1.5 s).
    let mut many = deliveries.clone();
    many[0].attempts = 5;
    let second = judge(&e, &many, &status(500), at(10));
    match (&retry, &second) {
        (Verdict::Retry { at: a, .. }, Verdict::Retry { at: b, .. }) => {
            assert!(b > a, "{a} then {b}")
        }
        other => panic!("{other:?}"),
    }
    record(&mut deliveries, "k", &Verdict::Sent, at(20));
    let r = record_of(&deliveries, "k").expect("a record");
    assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 2));
    assert_eq!(r.sent_at, Some(Time(at(20))));
    assert_eq!(r.next_attempt_at, None);
    prune(&mut deliveries, &[message("other", "shop/a")]);
    assert!(deliveries.is_empty());
}

proptest! {
    #[test]
    fn backoff_doubles_within_its_jitter_and_stays_bounded(key in "[a-z0-9]{1,16}", attempts in 0i32..40) {
        let wait = backoff(&key, attempts);
        let base = (1i64 << attempts.clamp(0, 20)).min(300) * 1000;
        prop_assert!(wait.as_millis() >= i128::from(base / 2), "{wait:?} < half of {base} ms");
        prop_assert!(wait.as_millis() <= i128::from(base * 3 / 2), "{wait:?} > 1.5 x {base} ms");
        prop_assert_eq!(wait, backoff(&key, attempts), "deterministic");
    }
}
