//! Data-driven tests of every per-account state field: events in, expected values worked out by
//! hand in the comments.

mod scoring_common;

use scoring_common::*;
use vigil_engine::scoring::hash::event_id_hash;
use vigil_engine::scoring::{AccountInfo, AccountView, Tier};
use vigil_engine::{Event, EventKind as K};

/// Applies `events` (in the given order) to a fresh core with windows of 7, 30 and 90 days (the
/// cases count three distinct windows), then advances the clock to `now`.
fn view_after(events: &[Event], now: i64) -> AccountView {
    let mut cfg = vigil_engine::scoring::ScoringConfig::default();
    cfg.windows.short = 7;
    let mut c = vigil_engine::scoring::ScoringCore::new(cfg).expect("valid config");
    apply(&mut c, events);
    c.advance_clock(now);
    c.account_view("a").expect("account a exists")
}

struct Case {
    name: &'static str,
    events: Vec<Event>,
    now: i64,
    check: fn(&AccountView),
}

#[test]
fn state_fields_table() {
    let cases = vec![
        Case {
            name: "first/last seen overall and per kind",
            // activity day 3 10:00, purchase day 1 09:00, activity day 5 08:00 (unsorted on purpose,
            // all within the 7-day lateness of the max ts seen so far).
            events: vec![
                ev("e1", "a", at(3, 10), K::Activity),
                ev("e2", "a", at(1, 9), K::Purchase),
                ev("e3", "a", at(5, 8), K::Activity),
            ],
            now: at(6, 0),
            check: |v| {
                assert_eq!(v.first_seen_ms, Some(at(1, 9)));
                assert_eq!(v.last_seen_ms, Some(at(5, 8)));
                assert_eq!(v.last_interaction_ms, Some(at(5, 8)));
                assert_eq!(
                    v.kind_seen_ms,
                    vec![(K::Activity, at(3, 10), at(5, 8)), (K::Purchase, at(1, 9), at(1, 9))]
                );
            },
        },
        Case {
            name: "rolling windows 7/30/90 of activity",
            // now = day 100 noon. Windows include today: short = days 94..=100, mid = 71..=100,
            // long = 11..=100. Activity on days 10, 11, 70, 71, 93, 94, 100:
            // short {94, 100} = 2; mid {71, 93, 94, 100} = 4; long adds {11, 70} = 6; day 10 is out.
            events: daily("x", "a", K::Activity, [10, 11, 70, 71, 93, 94, 100]),
            now: at(100, 12),
            check: |v| {
                let got: Vec<u32> = v.windows.iter().map(|w| w.count(K::Activity)).collect();
                assert_eq!(got, vec![2, 4, 6]);
                let events: Vec<u64> = v.windows.iter().map(|w| w.events()).collect();
                assert_eq!(events, vec![2, 4, 6]);
            },
        },
        Case {
            name: "purchases and revenue",
            // purchase 7.25 on day 5 (out of all windows at day 100), renewal 1000 on day 50
            // (long only), purchases 100.5 and 0.0001 on day 95 (all windows).
            // revenue short = mid = 100.5 + 0.0001 = 100.5001; long = 100.5001 + 1000 = 1100.5001.
            events: vec![
                amount(ev("p1", "a", at(5, 1), K::Purchase), 7.25),
                amount(ev("r1", "a", at(50, 1), K::Renewal), 1000.0),
                amount(ev("p2", "a", at(95, 1), K::Purchase), 100.5),
                amount(ev("p3", "a", at(95, 2), K::Purchase), 0.0001),
            ],
            now: at(100, 0),
            check: |v| {
                assert_close(v.windows[0].revenue(), 100.5001, "revenue short");
                assert_close(v.windows[1].revenue(), 100.5001, "revenue mid");
                assert_close(v.windows[2].revenue(), 1100.5001, "revenue long");
                assert_eq!(v.windows[2].count(K::Purchase), 2, "purchase on day 5 is outside");
                assert_eq!(v.windows[2].count(K::Renewal), 1);
            },
        },
        Case {
            name: "tickets, complaints, handling costs, open counts",
            // 3 tickets opened, 1 closed (cost 40) -> open 3 - 1 = 2, ticket cost 40.
            // complaints cost 10 and 5, one resolved (extra cost 2.5) -> open 2 - 1 = 1,
            // complaint cost 10 + 5 + 2.5 = 17.5.
            events: vec![
                ev("t1", "a", at(1, 1), K::TicketOpened),
                ev("t2", "a", at(1, 2), K::TicketOpened),
                ev("t3", "a", at(2, 1), K::TicketOpened),
                cost(ev("t4", "a", at(2, 2), K::TicketClosed), 40.0),
                cost(ev("c1", "a", at(3, 1), K::Complaint), 10.0),
                cost(ev("c2", "a", at(3, 2), K::Complaint), 5.0),
                cost(ev("c3", "a", at(4, 1), K::ComplaintResolved), 2.5),
            ],
            now: at(5, 0),
            check: |v| {
                assert_eq!((v.tickets_opened, v.tickets_closed, v.open_tickets), (3, 1, 2));
                assert_eq!((v.complaints, v.complaints_resolved, v.open_complaints), (2, 1, 1));
                assert_close(v.windows[2].ticket_cost(), 40.0, "ticket cost");
                assert_close(v.windows[2].complaint_cost(), 17.5, "complaint cost");
                assert_eq!(v.windows[0].count(K::TicketOpened), 3);
                assert_eq!(v.windows[0].count(K::Complaint), 2);
            },
        },
        Case {
            name: "more closes than opens never goes negative",
            // 1 opened, 3 closed (tickets opened before the engine started) -> open max(0, 1-3) = 0.
            events: vec![
                ev("t1", "a", at(1, 1), K::TicketClosed),
                ev("t2", "a", at(1, 2), K::TicketClosed),
                ev("t3", "a", at(1, 3), K::TicketOpened),
                ev("t4", "a", at(1, 4), K::TicketClosed),
            ],
            now: at(2, 0),
            check: |v| assert_eq!(v.open_tickets, 0),
        },
        Case {
            name: "surveys: latest by time, rolling mean, unscored surveys",
            // now day 100: survey 9 on day 20, 8 on day 90, 3 on day 95, and one without score on
            // day 96. Latest scored = 3 (day 95). Long mean (days 11..=100) = (9 + 8 + 3) / 3 =
            // 6.6667; short mean (94..=100) = 3; survey count short = 2 (incl. unscored).
            events: vec![
                score(ev("s1", "a", at(20, 1), K::Survey), 9.0),
                score(ev("s2", "a", at(90, 1), K::Survey), 8.0),
                score(ev("s3", "a", at(95, 1), K::Survey), 3.0),
                ev("s4", "a", at(96, 1), K::Survey),
            ],
            now: at(100, 0),
            check: |v| {
                assert_eq!(v.latest_survey, Some((at(95, 1), 3.0)));
                assert_close(v.windows[2].survey_mean().expect("mean"), 20.0 / 3.0, "long mean");
                assert_close(v.windows[0].survey_mean().expect("mean"), 3.0, "short mean");
                assert_eq!(v.windows[0].count(K::Survey), 2);
            },
        },
        Case {
            name: "meetings, referrals, renewals, downgrades, signups in the long window",
            // now day 100; long window = days 11..=100. Meetings days 5 (out), 20, 60 -> 2.
            // Referrals day 99 (value 500) -> 1. Renewals day 30 -> 1. Downgrades days 40, 41 -> 2
            // (lost 100 + 50 = 150).
            events: vec![
                ev("m1", "a", at(5, 1), K::Meeting),
                ev("m2", "a", at(20, 1), K::Meeting),
                amount(ev("r1", "a", at(30, 1), K::Renewal), 10.0),
                amount(ev("d1", "a", at(40, 1), K::Downgrade), 100.0),
                amount(ev("d2", "a", at(41, 1), K::Downgrade), 50.0),
                ev("m3", "a", at(60, 1), K::Meeting),
                amount(ev("f1", "a", at(99, 1), K::Referral), 500.0),
            ],
            now: at(100, 0),
            check: |v| {
                let l = &v.windows[2];
                assert_eq!(l.count(K::Meeting), 2);
                assert_eq!(l.count(K::Referral), 1);
                assert_close(l.amount(K::Referral), 500.0, "referral value");
                assert_eq!(l.count(K::Renewal), 1);
                assert_eq!(l.count(K::Downgrade), 2);
                assert_close(l.amount(K::Downgrade), 150.0, "downgrade value");
                assert_eq!(v.windows[1].count(K::Meeting), 0, "mid = days 71..=100");
            },
        },
        Case {
            name: "BG/NBD statistics: one transaction per day, purchases and renewals",
            // Transactions: day 10 (two purchases + a renewal = one day), day 40, day 70; activity
            // does not count. Distinct days = 3 -> x = 2, t_x = 70 - 10 = 60, T = 100 - 10 = 90.
            events: vec![
                ev("p1", "a", at(10, 1), K::Purchase),
                ev("p2", "a", at(10, 5), K::Purchase),
                ev("r1", "a", at(10, 6), K::Renewal),
                ev("x1", "a", at(20, 1), K::Activity),
                ev("p3", "a", at(40, 1), K::Purchase),
                ev("p4", "a", at(70, 1), K::Purchase),
            ],
            now: at(100, 12),
            check: |v| {
                assert_eq!(v.transaction_days, 3);
                let r = v.rfm.expect("rfm");
                assert_eq!((r.x, r.t_x, r.t), (2.0, 60.0, 90.0));
            },
        },
        Case {
            name: "cancellation",
            // purchase day 10, cancellation day 50 -> cancelled.
            events: vec![
                ev("p1", "a", at(10, 1), K::Purchase),
                ev("c1", "a", at(50, 1), K::Cancellation),
            ],
            now: at(51, 0),
            check: |v| assert!(v.cancelled),
        },
        Case {
            name: "renewal after a cancellation reactivates",
            events: vec![
                ev("p1", "a", at(10, 1), K::Purchase),
                ev("c1", "a", at(50, 1), K::Cancellation),
                ev("r1", "a", at(60, 1), K::Renewal),
            ],
            now: at(61, 0),
            check: |v| assert!(!v.cancelled),
        },
        Case {
            name: "cadence: EWMA of log gaps over distinct interaction days",
            // Interaction days 0, 2, 4, 6, 8 (two events on day 4, same day counts once):
            // gaps 2, 2, 2, 2 -> EWMA of ln 2 = ln 2 -> cadence exp(ln 2) = 2 days, 4 gaps.
            // ticket_closed on day 9 is not an interaction.
            events: {
                let mut e = daily("x", "a", K::Activity, [0, 2, 4, 6, 8]);
                e.push(ev("y4", "a", at(4, 20), K::Meeting));
                e.push(ev("t9", "a", at(9, 1), K::TicketClosed));
                e
            },
            now: at(10, 0),
            check: |v| {
                assert_close(v.cadence_days.expect("learned"), 2.0, "cadence");
                assert_eq!(v.cadence_gaps, 4);
                assert_eq!(v.last_interaction_ms, Some(at(8, 12)));
            },
        },
        Case {
            name: "cadence is robust to an outlier gap",
            // Days 0, 1, 2, 3, 13: gaps 1, 1, 1, 10. EWMA (alpha 0.2) of ln gaps: 0, 0, 0, then
            // 0.8·0 + 0.2·ln 10 = 0.460517 -> exp = 10^0.2 = 1.584893 days (the mean gap would be 3.25).
            events: daily("x", "a", K::Activity, [0, 1, 2, 3, 13]),
            now: at(14, 0),
            check: |v| assert_close(v.cadence_days.expect("learned"), 10f64.powf(0.2), "cadence"),
        },
        Case {
            name: "cadence floor and minimum number of gaps",
            // Days 0, 1: one gap -> fewer than min_gaps (3) -> not learned.
            events: daily("x", "a", K::Activity, [0, 1]),
            now: at(2, 0),
            check: |v| {
                assert_eq!(v.cadence_days, None);
                assert_eq!(v.cadence_gaps, 1);
            },
        },
    ];
    for case in cases {
        let v = view_after(&case.events, case.now);
        eprintln!("case: {}", case.name);
        (case.check)(&v);
    }
}

#[test]
fn latest_survey_tie_breaks_by_event_id_hash_in_any_order() {
    // Two answers at the same ts: the one whose event-id hash (low 64 bits) is greater wins,
    // whichever arrives first.
    let a = score(ev("answer-a", "a", at(1, 1), K::Survey), 2.0);
    let b = score(ev("answer-b", "a", at(1, 1), K::Survey), 9.0);
    let expect = if event_id_hash("answer-a") as u64 > event_id_hash("answer-b") as u64 {
        2.0
    } else {
        9.0
    };
    for order in [vec![a.clone(), b.clone()], vec![b, a]] {
        let v = view_after(&order, at(2, 0));
        assert_eq!(v.latest_survey, Some((at(1, 1), expect)));
    }
}

#[test]
fn late_events_are_counted_reported_and_not_applied() {
    let mut c = core();
    // Max ts = day 100 noon; watermark = day 100 noon - 7 d = day 93 noon.
    apply(&mut c, &[ev("n", "a", at(100, 12), K::Activity)]);
    let out = apply(
        &mut c,
        &[
            ev("late", "a", at(93, 11), K::Activity), // 1 h before the watermark: late
            ev("ok", "a", at(93, 12), K::Activity),   // exactly the watermark: applied
            ev("late2", "b", at(50, 0), K::Purchase), // far behind: late (account b not created)
        ],
    );
    assert_eq!((out.applied, out.late, out.duplicates), (1, 2, 0));
    assert_eq!(out.late_rows, vec![0, 2]);
    assert_eq!(c.stats().late_total, 2);
    assert!(c.account_view("b").is_none());
    let v = c.account_view("a").expect("a");
    assert_eq!(v.first_seen_ms, Some(at(93, 12)));
    assert_eq!(v.windows[1].count(K::Activity), 2);
    // The clock does not move the watermark (event time only): with the clock at day 200, an
    // event of day 94 is still on time, one of day 93 before noon still late.
    c.advance_clock(at(200, 0));
    let out = apply(
        &mut c,
        &[
            ev("on-time", "a", at(94, 0), K::Activity),
            ev("old", "a", at(93, 0), K::Activity),
        ],
    );
    assert_eq!((out.applied, out.late, out.late_rows), (1, 1, vec![1]));
}

#[test]
fn accounts_dimension_joins_and_key_rule() {
    let mut c = core();
    apply(&mut c, &[ev("e", "acme", at(1, 0), K::Activity)]);
    // (tier, arr) -> key? threshold 100,000: key tier -> yes; standard 150,000 -> yes;
    // standard 99,999.99 -> no; standard no ARR -> no.
    let table = [
        (Tier::Key, None, true),
        (Tier::Standard, Some(150_000.0), true),
        (Tier::Standard, Some(99_999.99), false),
        (Tier::Standard, None, false),
    ];
    for (tier, arr, key) in table {
        c.upsert_account(AccountInfo {
            account_id: "acme".into(),
            name: Some("Acme".into()),
            tier,
            arr,
            owner: Some("olga".into()),
            segment: Some("enterprise".into()),
        });
        let v = c.account_view("acme").expect("acme");
        assert_eq!(v.key, key, "{tier:?} {arr:?}");
        let m = v.meta.expect("meta");
        assert_eq!((m.tier, m.arr, m.owner.as_deref()), (tier, arr, Some("olga")));
    }
    // A dimension record for an account without events creates it.
    c.upsert_account(AccountInfo::new("quiet-co"));
    assert!(c.account_view("quiet-co").is_some_and(|v| v.first_seen_ms.is_none()));
    assert!(c.remove_account("acme"));
    let v = c.account_view("acme").expect("events stay");
    assert_eq!((v.key, v.meta), (false, None));
    assert_eq!(v.last_seen_ms, Some(at(1, 0)));
    assert!(!c.remove_account("nobody"));
}

#[test]
fn unknown_kind_and_wrong_schema_are_rejected_without_change() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, DictionaryArray, StringArray, UInt8Array};
    use arrow::datatypes::UInt8Type;
    use arrow::record_batch::RecordBatch;

    let good = vigil_engine::scoring::testing::events_to_batch(&[ev("e", "a", at(1, 0), K::Activity)]);
    // Same batch with the kind dictionary replaced by one naming an unknown kind.
    let dict = DictionaryArray::<UInt8Type>::try_new(
        UInt8Array::from(vec![0u8]),
        Arc::new(StringArray::from(vec!["teleport"])) as ArrayRef,
    )
    .expect("dict");
    let mut cols = good.columns().to_vec();
    cols[vigil_engine::schema::KIND] = Arc::new(dict);
    let bad = RecordBatch::try_new(good.schema(), cols).expect("batch");
    let mut c = core();
    let err = c.apply_batch(&bad).expect_err("unknown kind");
    assert!(err.to_string().contains("teleport"), "{err}");
    assert!(c.is_empty());
    // A dictionary in another order maps by name, not by key.
    let dict = DictionaryArray::<UInt8Type>::try_new(
        UInt8Array::from(vec![1u8]),
        Arc::new(StringArray::from(vec!["activity", "purchase"])) as ArrayRef,
    )
    .expect("dict");
    let mut cols = good.columns().to_vec();
    cols[vigil_engine::schema::KIND] = Arc::new(dict);
    let remapped = RecordBatch::try_new(good.schema(), cols).expect("batch");
    c.apply_batch(&remapped).expect("valid");
    let v = c.account_view("a").expect("a");
    assert_eq!(v.transaction_days, 1, "key 1 names `purchase` in this dictionary");
    // Wrong column type.
    let projected = good.project(&[0, 1]).expect("project");
    assert!(c.apply_batch(&projected).is_err());
}

#[test]
fn long_and_short_account_ids_intern_once() {
    // Ids over 16 bytes are checked against the id list, shorter ones inline in the state.
    let long = "an-account-id-that-is-longer-than-sixteen-bytes";
    let mut c = core();
    let events: Vec<Event> = (0..40)
        .map(|i| {
            let account = if i % 2 == 0 { long } else { "short-1" };
            ev(&format!("e{i}"), account, at(100, i % 20), K::Activity)
        })
        .collect();
    apply(&mut c, &events[..20]);
    let restored = vigil_engine::scoring::ScoringCore::restore(&c.snapshot()).expect("restore");
    for mut k in [c, restored] {
        apply(&mut k, &events[20..]);
        assert_eq!(k.len(), 2);
        assert_eq!(k.stats().applied_total, 40);
        let v = k.account_view(long).expect("known");
        assert_eq!(v.windows[0].count(K::Activity), 20);
    }
}
