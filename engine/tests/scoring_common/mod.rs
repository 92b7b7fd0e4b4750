//! Shared helpers of the scoring tests: event builders and time constants.
#![allow(dead_code)]

use vigil_engine::scoring::testing::events_to_batch;
use vigil_engine::scoring::{ApplyOutcome, ScoringConfig, ScoringCore};
use vigil_engine::{Event, EventKind};

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z = day 20454 since the epoch.
pub const T0: i64 = 20_454 * DAY;

/// Epoch ms of `day` days and `hour` hours after [`T0`].
pub fn at(day: i64, hour: i64) -> i64 {
    T0 + day * DAY + hour * HOUR
}

pub fn ev(id: &str, account: &str, ts: i64, kind: EventKind) -> Event {
    Event::new(id, account, ts, kind)
}

pub fn amount(mut e: Event, v: f64) -> Event {
    e.amount = Some(v);
    e
}

pub fn cost(mut e: Event, v: f64) -> Event {
    e.cost = Some(v);
    e
}

pub fn score(mut e: Event, v: f64) -> Event {
    e.score = Some(v);
    e
}

pub fn core() -> ScoringCore {
    ScoringCore::new(ScoringConfig::default()).expect("default config is valid")
}

pub fn apply(core: &mut ScoringCore, events: &[Event]) -> ApplyOutcome {
    core.apply_batch(&events_to_batch(events)).expect("valid batch")
}

/// Events of `kind` for `account`, one per listed day at noon, ids `{prefix}{day}`.
pub fn daily(prefix: &str, account: &str, kind: EventKind, days: impl IntoIterator<Item = i64>) -> Vec<Event> {
    days.into_iter()
        .map(|d| ev(&format!("{prefix}{d}"), account, at(d, 12), kind))
        .collect()
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * (1.0 + a.abs().max(b.abs()))
}

#[track_caller]
pub fn assert_close(a: f64, b: f64, what: &str) {
    assert!(close(a, b), "{what}: got {a}, expected {b}");
}
