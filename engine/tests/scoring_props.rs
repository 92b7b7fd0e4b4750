//! Order independence within the allowed lateness (property test) and de-duplication.

mod scoring_common;

use proptest::prelude::*;
use scoring_common::*;
use vigil_engine::scoring::{AccountView, HealthScore, ScoringCore};
use vigil_engine::{Event, EventKind};

const LATENESS: i64 = 7 * DAY;

/// One generated event: account, time offset, kind, value, duplicated?, two arrival jitters.
type Raw = (u8, i64, u8, f64, bool, i64, i64);

fn raw() -> impl Strategy<Value = Raw> {
    (
        0u8..4,
        0i64..60 * DAY,
        0u8..13,
        0.0f64..1000.0,
        proptest::bool::weighted(0.15),
        0i64..LATENESS,
        0i64..LATENESS,
    )
}

fn build(raws: &[Raw]) -> (Vec<Event>, Vec<(i64, Event)>) {
    let mut events = Vec::new();
    let mut arrivals = Vec::new();
    for (i, &(acct, off, kind, value, dup, j1, j2)) in raws.iter().enumerate() {
        let kind = EventKind::from_code(kind).expect("code < 13");
        let mut e = ev(&format!("e{i}"), &format!("acct{acct}"), T0 + off, kind);
        match kind {
            EventKind::Survey => e.score = (value < 900.0).then_some((value / 90.0).floor()),
            EventKind::TicketClosed | EventKind::Complaint | EventKind::ComplaintResolved | EventKind::Signup => {
                e.cost = Some(value)
            }
            _ => e.amount = Some(value),
        }
        // Arrival key = ts + jitter with jitter < lateness: every event arrives before the max
        // event time seen runs more than the lateness past it, so none is late.
        arrivals.push((e.ts_ms + j1, e.clone()));
        if dup {
            arrivals.push((e.ts_ms + j2, e.clone()));
        }
        events.push(e);
    }
    arrivals.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.event_id.cmp(&b.1.event_id)));
    events.sort_by(|a, b| a.ts_ms.cmp(&b.ts_ms).then_with(|| a.event_id.cmp(&b.event_id)));
    (events, arrivals)
}

fn feed(events: &[Event], batch_sizes: &[usize]) -> ScoringCore {
    let mut c = core();
    let mut i = 0;
    let mut k = 0;
    while i < events.len() {
        let n = batch_sizes[k % batch_sizes.len()].max(1);
        let end = (i + n).min(events.len());
        let out = apply(&mut c, &events[i..end]);
        assert_eq!(out.late, 0, "the generator never produces late events");
        i = end;
        k += 1;
    }
    c
}

fn observe(c: &ScoringCore) -> Vec<(AccountView, HealthScore)> {
    let mut ids: Vec<String> = c.account_ids().map(str::to_string).collect();
    ids.sort();
    ids.iter()
        .map(|id| (c.account_view(id).expect("view"), c.score(id).expect("score")))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shuffled_within_lateness_gives_the_same_state(
        raws in proptest::collection::vec(raw(), 1..160),
        sizes in proptest::collection::vec(1usize..40, 1..6),
    ) {
        let (in_order, arrivals) = build(&raws);
        let shuffled: Vec<Event> = arrivals.into_iter().map(|(_, e)| e).collect();
        let a = feed(&in_order, &[1000]);
        let b = feed(&shuffled, &sizes);
        prop_assert_eq!(observe(&a), observe(&b));
        let (sa, sb) = (a.stats(), b.stats());
        prop_assert_eq!(sa.applied_total, in_order.len() as u64);
        prop_assert_eq!(sb.applied_total, in_order.len() as u64);
        prop_assert_eq!(sb.duplicates_total, (shuffled.len() - in_order.len()) as u64);
        prop_assert_eq!(sb.late_total, 0);
        // The same clock on both: the same evaluation.
        let (mut a, mut b) = (a, b);
        let end = T0 + 61 * DAY;
        a.advance_clock(end);
        b.advance_clock(end);
        prop_assert_eq!(observe(&a), observe(&b));
        prop_assert_eq!(a.health_batch_where(|_| true).num_rows(), b.health_batch().num_rows());
    }
}

#[test]
fn duplicates_in_one_batch_and_across_batches_change_nothing() {
    let e1 = amount(ev("e1", "a", at(1, 1), EventKind::Purchase), 10.0);
    let e2 = ev("e2", "a", at(1, 2), EventKind::Complaint);
    let e3 = ev("e3", "a", at(2, 1), EventKind::Activity);
    let mut c = core();
    let out = apply(&mut c, &[e1.clone(), e2.clone(), e1.clone()]);
    assert_eq!((out.applied, out.duplicates), (2, 1));
    let out = apply(&mut c, &[e2.clone(), e3.clone(), e3.clone()]);
    assert_eq!((out.applied, out.duplicates), (1, 2));
    let mut clean = core();
    apply(&mut clean, &[e1, e2, e3]);
    assert_eq!(observe(&c), observe(&clean));
    let v = c.account_view("a").expect("a");
    // Revenue counted once: 10, complaints 1, events 3.
    assert_close(v.windows[2].revenue(), 10.0, "revenue");
    assert_eq!((v.complaints, v.windows[2].events()), (1, 3));
    let s = c.stats();
    assert_eq!((s.applied_total, s.duplicates_total), (3, 3));
    assert_eq!(s.dedup_entries, 3);
    assert!(s.dedup_bytes_per_id >= 16.0, "{}", s.dedup_bytes_per_id);
}

#[test]
fn same_id_on_another_account_is_not_a_duplicate() {
    // Duplicates are redeliveries (same account); an id reused by another account is applied.
    let mut c = core();
    let out = apply(
        &mut c,
        &[
            ev("x", "a", at(1, 1), EventKind::Activity),
            ev("x", "b", at(1, 1), EventKind::Activity),
        ],
    );
    assert_eq!((out.applied, out.duplicates), (2, 0));
}

#[test]
fn dedup_window_is_dropped_past_the_watermark_and_old_redeliveries_count_as_late() {
    let mut c = core();
    let old = ev("old", "a", at(1, 1), EventKind::Activity);
    apply(&mut c, std::slice::from_ref(&old));
    assert_eq!(c.stats().dedup_entries, 1);
    // Max ts day 10: watermark day 3, the day-1 set is dropped.
    apply(&mut c, &[ev("new", "a", at(10, 1), EventKind::Activity)]);
    assert_eq!(c.stats().dedup_entries, 1);
    let out = apply(&mut c, &[old]);
    assert_eq!((out.applied, out.duplicates, out.late), (0, 0, 1));
    assert_eq!(c.account_view("a").expect("a").windows[1].events(), 2);
}

#[test]
fn an_event_beyond_the_lateness_is_late_whatever_the_batching() {
    let mut c = core();
    let out = apply(
        &mut c,
        &[
            ev("n", "a", at(10, 0), EventKind::Activity),
            ev("l", "a", at(2, 23), EventKind::Activity), // 7 d 1 h behind: late
            ev("ok", "a", at(3, 0), EventKind::Activity), // exactly 7 d behind: applied
        ],
    );
    assert_eq!((out.applied, out.late, out.late_rows.clone()), (2, 1, vec![1]));
}
