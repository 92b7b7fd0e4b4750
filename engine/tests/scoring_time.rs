//! Event time and the clock kept apart: the watermark follows event time only, so a clock ahead
//! of the events (the wall clock of a caught-up, idle stream) fires quiet timers but never makes
//! an event late, and the state built while the clock runs ahead equals the state built without.

mod scoring_common;

use scoring_common::*;
use vigil_engine::EventKind as K;
use vigil_engine::scoring::{AccountInfo, AlertKind, ScoringCore, Tier};

#[test]
fn a_clock_ahead_of_the_events_makes_no_event_late() {
    let mut c = core();
    // The clock is a year past the events before the first one arrives.
    assert!(c.advance_clock(at(365, 0)).is_empty());
    assert_eq!(c.watermark_ms(), None, "no event yet: no watermark");
    let out = apply(&mut c, &daily("a", "acct", K::Activity, 0..60));
    assert_eq!((out.applied, out.late), (60, 0));
    assert_eq!(c.watermark_ms(), Some(at(59, 12) - 7 * DAY));
    assert_eq!(c.now_ms(), Some(at(365, 0)), "now is the clock's");
    // Within the lateness of the greatest event time: applied, however far the clock is.
    let out = apply(&mut c, &[ev("in", "acct", at(52, 13), K::Purchase)]);
    assert_eq!((out.applied, out.late), (1, 0));
    // Beyond it: late, and reported by row.
    let out = apply(
        &mut c,
        &[
            ev("x", "acct", at(59, 13), K::Activity),
            ev("old", "acct", at(52, 11), K::Activity),
        ],
    );
    assert_eq!((out.applied, out.late, out.late_rows), (1, 1, vec![1]));
}

/// Days 0..120 of three accounts, with purchases, complaints and surveys.
fn history() -> Vec<vigil_engine::Event> {
    let mut evs = Vec::new();
    for (n, acct) in ["a", "b", "key"].into_iter().enumerate() {
        for d in (0..120).filter(|d| (d + n as i64) % 3 != 0) {
            evs.push(ev(&format!("{acct}-act-{d}"), acct, at(d, 9 + n as i64), K::Activity));
            if d % 10 == n as i64 {
                evs.push(amount(
                    ev(&format!("{acct}-buy-{d}"), acct, at(d, 15), K::Purchase),
                    40.0 + d as f64,
                ));
            }
            if d % 17 == 0 {
                evs.push(cost(
                    ev(&format!("{acct}-cmp-{d}"), acct, at(d, 16), K::Complaint),
                    12.5,
                ));
            }
            if d % 29 == 0 {
                evs.push(score(
                    ev(&format!("{acct}-srv-{d}"), acct, at(d, 17), K::Survey),
                    (d % 11) as f64,
                ));
            }
        }
    }
    evs.sort_by_key(|e| e.ts_ms);
    evs
}

fn with_key_account() -> ScoringCore {
    let mut c = core();
    c.upsert_account(AccountInfo {
        account_id: "key".into(),
        tier: Tier::Key,
        ..AccountInfo::default()
    });
    c
}

#[test]
fn state_built_while_the_clock_runs_ahead_equals_state_built_in_event_time() {
    let evs = history();
    let end = at(400, 0);
    // In event time: the clock follows the events, then jumps to the end.
    let mut follow = with_key_account();
    // Wall clock ahead: the clock is at the end before any event arrives (a backlog read after
    // the stream went idle once).
    let mut ahead = with_key_account();
    ahead.advance_clock(end);
    for chunk in evs.chunks(97) {
        for c in [&mut follow, &mut ahead] {
            let out = apply(c, chunk);
            assert_eq!((out.late, out.duplicates), (0, 0));
        }
        let t = chunk.last().expect("chunk").ts_ms;
        follow.advance_clock(t);
    }
    follow.advance_clock(end);
    ahead.advance_clock(end);
    assert_eq!(follow.stats().late_total, 0);
    assert_eq!(ahead.stats().late_total, 0);
    for id in ["a", "b", "key"] {
        assert_eq!(
            follow.account_view(id),
            ahead.account_view(id),
            "{id}: event-derived state"
        );
        let (f, a) = (follow.score(id).expect("scored"), ahead.score(id).expect("scored"));
        assert_close(f.score, a.score, &format!("{id}: score"));
        assert_eq!(f.components, a.components, "{id}: components");
    }
    assert_eq!(follow.watermark_ms(), ahead.watermark_ms());
}

#[test]
fn the_clock_still_fires_quiet_timers_of_a_caught_up_stream() {
    let mut c = with_key_account();
    let out = apply(&mut c, &daily("k", "key", K::Activity, 0..30));
    assert_eq!(out.late, 0);
    // No event arrives; the clock moves on alone and the key account is flagged.
    let mut quiet = Vec::new();
    for d in 30..60 {
        quiet.extend(
            c.advance_clock(at(d, 12))
                .into_iter()
                .filter(|a| a.kind == AlertKind::Quiet),
        );
    }
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    // The watermark did not move with the clock: an event of day 25 is still on time.
    let out = apply(&mut c, &[ev("k-late-ok", "key", at(25, 1), K::Meeting)]);
    assert_eq!((out.applied, out.late), (1, 0));
}
