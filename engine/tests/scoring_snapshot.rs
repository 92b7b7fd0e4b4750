//! Snapshot and restore: identical state, identical future outputs; subset snapshots.

mod scoring_common;

use scoring_common::*;
use vigil_engine::models::bgnbd::BgNbdParams;
use vigil_engine::scoring::{AccountInfo, Alert, Population, ScoringConfig, ScoringCore, Tier};
use vigil_engine::{Event, EventKind as K};

fn history() -> Vec<Event> {
    let mut e = Vec::new();
    for a in 0..6 {
        let id = format!("k{a}");
        e.extend(daily(
            &format!("{id}-x"),
            &id,
            K::Activity,
            (0..30).filter(|d| d % (a + 1) == 0),
        ));
        e.push(amount(
            ev(&format!("{id}-p"), &id, at(3 + a, 2), K::Purchase),
            100.0 + a as f64,
        ));
        e.push(amount(ev(&format!("{id}-p2"), &id, at(20 + a, 2), K::Purchase), 50.0));
        e.push(score(ev(&format!("{id}-s"), &id, at(25, a), K::Survey), a as f64 + 3.0));
    }
    e.extend(daily("c", "std", K::Complaint, [27, 28]));
    e.push(ev("t", "std", at(28, 3), K::TicketOpened));
    e.sort_by_key(|x| x.ts_ms);
    e
}

fn future() -> Vec<Event> {
    let mut e = vec![
        ev("k0-late-but-ok", "k0", at(29, 20), K::Meeting),
        ev("c-3", "std", at(30, 1), K::Complaint),
        // Redelivery of an event already applied: must be a duplicate after restore too.
        score(ev("k1-s", "k1", at(25, 1), K::Survey), 4.0),
    ];
    e.extend(daily("k2-y", "k2", K::Activity, [31, 33]));
    e
}

fn built(alerts_on_apply: bool) -> ScoringCore {
    let cfg = ScoringConfig {
        alerts_on_apply,
        ..Default::default()
    };
    let mut c = ScoringCore::new(cfg).expect("valid");
    for a in 0..6 {
        c.upsert_account(AccountInfo {
            account_id: format!("k{a}"),
            tier: if a % 2 == 0 { Tier::Key } else { Tier::Standard },
            arr: Some(50_000.0 * a as f64),
            owner: Some(format!("owner{a}")),
            segment: None,
            name: None,
        });
    }
    for chunk in history().chunks(17) {
        apply(&mut c, chunk);
    }
    c.advance_clock(at(29, 0));
    c.set_population(Population {
        params: Some(BgNbdParams {
            r: 0.3,
            alpha: 5.0,
            a: 0.9,
            b: 2.0,
        }),
        typical_gap_days: 12.0,
        churn: None,
    });
    c
}

/// Drives a core into the future; returns every alert and the final health table.
fn drive(c: &mut ScoringCore) -> (Vec<Alert>, arrow::record_batch::RecordBatch) {
    let mut alerts = Vec::new();
    for e in future() {
        alerts.extend(apply(c, &[e]).alerts);
    }
    for d in 30..80 {
        alerts.extend(c.advance_clock(at(d, 6)));
    }
    (alerts, c.health_batch())
}

#[test]
fn round_trip_gives_identical_state_and_future_outputs() {
    for alerts_on_apply in [true, false] {
        let mut original = built(alerts_on_apply);
        // Leave accounts pending evaluation (dirty) in the snapshot when alerts_on_apply is false.
        apply(&mut original, &[ev("pending", "k3", at(29, 1), K::Activity)]);
        let bytes = original.snapshot();
        let mut restored = ScoringCore::restore(&bytes).expect("restore");
        assert!(restored == original, "restored state equals the original");
        let counts = |c: &ScoringCore| {
            let s = c.stats();
            let f = (
                s.accounts,
                s.applied_total,
                s.duplicates_total,
                s.late_total,
                s.dedup_entries,
            );
            (f, s.day_entries, s.timers, s.clock_ms, s.max_event_ms, s.watermark_ms)
        };
        assert_eq!(counts(&restored), counts(&original));
        let (a1, h1) = drive(&mut original);
        let (a2, h2) = drive(&mut restored);
        assert!(!a1.is_empty(), "the future raises alerts");
        assert_eq!(a1, a2);
        assert_eq!(h1, h2);
        assert!(restored == original, "still equal after the same future");
        // The redelivered purchase was a duplicate on both.
        assert_eq!(restored.stats().duplicates_total, 1);
    }
}

#[test]
fn subset_snapshot_holds_only_selected_accounts_with_their_dedup_keys() {
    let original = built(true);
    let even = |id: &str| matches!(id, "k0" | "k2" | "k4");
    let bytes = original.snapshot_where(even);
    assert!(bytes.len() < original.snapshot().len());
    let mut sub = ScoringCore::restore(&bytes).expect("restore");
    let mut ids: Vec<&str> = sub.account_ids().collect();
    ids.sort();
    assert_eq!(ids, vec!["k0", "k2", "k4"]);
    for id in ids.clone() {
        assert_eq!(sub.account_view(id), original.account_view(id), "{id}");
        assert_eq!(sub.score(id), original.score(id), "{id}");
    }
    // A redelivery of a k2 event (within the lateness) is still a duplicate in the subset.
    let out = apply(&mut sub, &[score(ev("k2-s", "k2", at(25, 2), K::Survey), 5.0)]);
    assert_eq!((out.applied, out.duplicates), (0, 1));
    // Future outputs of the subset equal the full core's outputs for those accounts.
    let mut full = built(true);
    apply(&mut full, &[score(ev("k2-s", "k2", at(25, 2), K::Survey), 5.0)]);
    let (fa, _) = drive(&mut full);
    let (sa, _) = drive(&mut sub);
    let fa: Vec<Alert> = fa.into_iter().filter(|a| even(&a.account_id)).collect();
    assert!(!fa.is_empty());
    assert_eq!(fa, sa.into_iter().filter(|a| even(&a.account_id)).collect::<Vec<_>>());
    // Rows of k0, k2, k4 come in the same order in both (index order).
    assert_eq!(sub.health_batch_where(even), full.health_batch_where(even));
}

#[test]
fn restore_rejects_garbage() {
    assert!(ScoringCore::restore(b"not a snapshot").is_err());
    let mut bytes = built(true).snapshot();
    bytes.truncate(bytes.len() / 2);
    assert!(ScoringCore::restore(&bytes).is_err());
}
