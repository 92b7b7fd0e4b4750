//! Alerts: quiet key account (clock driven, once per episode) and recovered, churn threshold
//! crossing, complaint spike, deterministic ids, the alert batch.

mod scoring_common;

use scoring_common::*;
use vigil_engine::EventKind as K;
use vigil_engine::scoring::{
    AccountInfo, Alert, AlertKind, ScoringConfig, ScoringCore, Tier, alert_schema, alerts_to_batch,
};

/// The churn-risk alerts here run at a configured threshold of 0.7 (without one, and without a
/// fitted churn model, there are none: `no_churn_alert_without_a_threshold_or_a_fitted_model`).
fn config() -> ScoringConfig {
    let mut cfg = ScoringConfig::default();
    cfg.churn.threshold = Some(0.7);
    cfg
}

/// A core with [`config`] (shadows the common helper's default one).
fn core() -> ScoringCore {
    ScoringCore::new(config()).expect("valid config")
}

#[test]
fn no_churn_alert_without_a_threshold_or_a_fitted_model() {
    // A one-time buyer 110 days ago: risk 1 − 2^(−110/60) = 0.72. With the default
    // configuration (no threshold) and no churn model no churn-risk alert fires; with a
    // threshold of 0.7, one does.
    let events = [ev("p", "c", at(0, 12), K::Purchase)];
    let mut c = ScoringCore::new(ScoringConfig::default()).expect("valid");
    apply(&mut c, &events);
    let all = c.advance_clock(at(110, 12));
    assert!(c.score("c").expect("c").churn_risk > 0.7);
    assert!(of_kind(&all, AlertKind::ChurnRisk).is_empty(), "{all:?}");
    let mut c = core();
    apply(&mut c, &events);
    assert_eq!(of_kind(&c.advance_clock(at(110, 12)), AlertKind::ChurnRisk).len(), 1);
}

#[test]
fn no_churn_alert_for_a_cancelled_account() {
    // A cancellation takes the risk to 1, but the account is lost, not at risk: no churn-risk
    // alert, neither when it cancels nor at later clock advances.
    let mut c = core();
    apply(&mut c, &[ev("p0", "c", at(0, 12), K::Purchase)]);
    let mut all = apply(&mut c, &[ev("x", "c", at(1, 12), K::Cancellation)]).alerts;
    assert_eq!(c.score("c").expect("c").churn_risk, 1.0);
    for d in 2..40 {
        all.extend(c.advance_clock(at(d, 12)));
    }
    assert!(of_kind(&all, AlertKind::ChurnRisk).is_empty(), "{all:?}");
}

fn of_kind(alerts: &[Alert], kind: AlertKind) -> Vec<Alert> {
    alerts.iter().filter(|a| a.kind == kind).cloned().collect()
}

#[test]
fn quiet_key_account_fires_at_deadline_once_then_recovers_once() {
    let mut c = core();
    c.upsert_account(AccountInfo {
        account_id: "k".into(),
        tier: Tier::Key,
        ..AccountInfo::default()
    });
    // Daily activity at noon on days 0..=59, replayed in 10-day batches with the clock following
    // the event time. A standard account with the same pattern never gets a quiet alert.
    let mut all = Vec::new();
    for start in (0..60).step_by(10) {
        let mut batch = daily("k", "k", K::Activity, start..start + 10);
        batch.extend(daily("s", "std", K::Activity, start..start + 10));
        let out = apply(&mut c, &batch);
        all.extend(out.alerts);
        all.extend(c.advance_clock(at(start + 9, 12)));
    }
    assert!(of_kind(&all, AlertKind::Quiet).is_empty(), "{all:?}");
    // Gaps are all 1 day -> learned gap exp(EWMA(ln 1)) = 1 day; k = 3 -> deadline = last
    // interaction (day 59 noon) + 3 days = day 62 noon.
    let deadline = at(62, 12);
    assert!(c.advance_clock(deadline - 1).is_empty(), "1 ms before the deadline");
    let alerts = c.advance_clock(deadline);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let q = &alerts[0];
    assert_eq!(q.kind, AlertKind::Quiet);
    assert_eq!(q.account_id, "k");
    assert_eq!(q.at_ms, deadline);
    assert_eq!(q.episode_start_ms, at(59, 12));
    assert_eq!(q.id, format!("quiet/k/{}", at(59, 12)));
    assert_close(q.value, 3.0, "days silent");
    assert_close(q.threshold, 3.0, "k x gap");
    assert_eq!(c.is_quiet("k"), Some(true));
    // Further clock advance, day by day: no second quiet alert.
    let mut later = Vec::new();
    for d in 63..=84 {
        later.extend(c.advance_clock(at(d, 0)));
    }
    assert!(of_kind(&later, AlertKind::Quiet).is_empty(), "{later:?}");
    // The account interacts again on day 85: exactly one recovered notice for that episode.
    let out = apply(&mut c, &[ev("back", "k", at(85, 12), K::Activity)]);
    let rec = of_kind(&out.alerts, AlertKind::Recovered);
    assert_eq!(rec.len(), 1, "{:?}", out.alerts);
    assert_eq!(rec[0].id, format!("recovered/k/{}", at(59, 12)));
    assert_close(rec[0].value, 26.0, "days silent (day 59 -> 85)");
    assert_eq!(c.is_quiet("k"), Some(false));
    let out = apply(&mut c, &[ev("back2", "k", at(85, 13), K::Activity)]);
    assert!(of_kind(&out.alerts, AlertKind::Recovered).is_empty());
    // A new silence is a new episode with a new id. The gap of 26 days enters the EWMA:
    // 0.8·0 + 0.2·ln 26 = 0.651619 -> gap 1.918 days -> deadline day 85 13:00 + 5.755 days.
    let gap = (0.2 * 26f64.ln()).exp();
    let deadline2 = at(85, 13) + (3.0 * gap * DAY as f64).round() as i64;
    assert!(of_kind(&c.advance_clock(deadline2 - 1), AlertKind::Quiet).is_empty());
    let alerts = of_kind(&c.advance_clock(deadline2), AlertKind::Quiet);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].id, format!("quiet/k/{}", at(85, 13)));
    assert_eq!(alerts[0].at_ms, deadline2);
}

#[test]
fn quiet_needs_a_key_account_and_a_learned_cadence() {
    let mut c = core();
    // ARR over the threshold makes "rich" key; "few" is key but has only 2 gaps (< min_gaps 3).
    c.upsert_account(AccountInfo {
        account_id: "rich".into(),
        arr: Some(250_000.0),
        ..AccountInfo::default()
    });
    c.upsert_account(AccountInfo {
        account_id: "few".into(),
        tier: Tier::Key,
        ..AccountInfo::default()
    });
    let mut events = daily("r", "rich", K::Activity, 0..10);
    events.extend(daily("f", "few", K::Activity, [0, 1, 2]));
    apply(&mut c, &events);
    let alerts = c.advance_clock(at(40, 0));
    let quiet: Vec<&str> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Quiet)
        .map(|a| a.account_id.as_str())
        .collect();
    assert_eq!(quiet, vec!["rich"]);
    // Demoted (tombstone) before its deadline: no alert.
    let mut c = core();
    c.upsert_account(AccountInfo {
        account_id: "k".into(),
        tier: Tier::Key,
        ..AccountInfo::default()
    });
    apply(&mut c, &daily("k", "k", K::Activity, 0..10));
    c.advance_clock(at(9, 13));
    c.remove_account("k");
    assert!(of_kind(&c.advance_clock(at(40, 0)), AlertKind::Quiet).is_empty());
}

#[test]
fn churn_risk_threshold_up_crossing_once_per_episode() {
    let mut c = core();
    apply(&mut c, &[ev("p0", "c", at(0, 12), K::Purchase)]);
    // One-time buyer, tau = 30: risk on day d = 1 - 2^(-d/60). Threshold 0.7:
    // day 104 -> 0.69924 (below), day 105 -> 0.70270 (crossing).
    let mut alerts = Vec::new();
    for d in 1..=110 {
        for a in c.advance_clock(at(d, 12)) {
            alerts.push((d, a));
        }
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (day, a) = &alerts[0];
    assert_eq!(*day, 105);
    assert_eq!(a.kind, AlertKind::ChurnRisk);
    assert_eq!(a.id, format!("churn_risk/c/{}", at(105, 0)));
    assert_close(a.value, 1.0 - 2f64.powf(-105.0 / 60.0), "risk");
    assert_close(a.threshold, 0.7, "threshold");
    // A purchase brings risk to 0 (< 0.7 - 0.1): the episode ends. It crosses again 105 days
    // later: a second alert with a new id.
    let out = apply(&mut c, &[ev("p1", "c", at(111, 12), K::Purchase)]);
    assert!(out.alerts.is_empty());
    let mut again = Vec::new();
    for d in 112..=220 {
        for a in c.advance_clock(at(d, 12)) {
            again.push((d, a));
        }
    }
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].0, 216);
    assert_eq!(again[0].1.id, format!("churn_risk/c/{}", at(216, 0)));
}

#[test]
fn churn_alert_from_events_on_apply() {
    // A one-time buyer 100 days ago: risk 1 − 2^(−100/60) = 0.685, below 0.7. A complaint adds
    // the hazard 0.3 × 1/2: risk 1 − 0.315 × 0.85 = 0.732. The alert comes from apply_batch.
    let mut c = core();
    apply(&mut c, &[ev("p0", "c", at(0, 12), K::Purchase)]);
    assert!(of_kind(&c.advance_clock(at(100, 6)), AlertKind::ChurnRisk).is_empty());
    let out = apply(&mut c, &[ev("x", "c", at(100, 12), K::Complaint)]);
    let churn = of_kind(&out.alerts, AlertKind::ChurnRisk);
    assert_eq!(churn.len(), 1, "{:?}", out.alerts);
    let base = 1.0 - 2f64.powf(-100.0 / 60.0);
    assert_close(churn[0].value, 1.0 - (1.0 - base) * (1.0 - 0.3 * 0.5), "risk");
    assert_eq!(churn[0].id, format!("churn_risk/c/{}", at(100, 0)));
}

#[test]
fn alert_on_apply_when_the_accounts_last_row_is_a_duplicate() {
    // In one batch: a complaint that takes the risk over the threshold (as in
    // `churn_alert_from_events_on_apply`), other accounts' events, then a redelivery of the
    // complaint (the account's last row, a duplicate). The alert still comes from apply_batch,
    // once; an account whose own last row is not a duplicate alerts as well.
    let mut c = core();
    apply(
        &mut c,
        &[
            ev("p0", "c", at(0, 12), K::Purchase),
            ev("p1", "d", at(0, 12), K::Purchase),
        ],
    );
    assert!(of_kind(&c.advance_clock(at(100, 6)), AlertKind::ChurnRisk).is_empty());
    let mut batch = vec![
        ev("x", "c", at(100, 12), K::Complaint),
        ev("y", "d", at(100, 12), K::Complaint),
    ];
    for i in 0..200 {
        batch.push(ev(&format!("a{i}"), &format!("o{i}"), at(100, 13), K::Activity));
    }
    batch.push(ev("x", "c", at(100, 12), K::Complaint));
    let out = apply(&mut c, &batch);
    assert_eq!(out.duplicates, 1);
    let mut churn: Vec<String> = of_kind(&out.alerts, AlertKind::ChurnRisk)
        .into_iter()
        .map(|a| a.id)
        .collect();
    churn.sort();
    assert_eq!(
        churn,
        [
            format!("churn_risk/c/{}", at(100, 0)),
            format!("churn_risk/d/{}", at(100, 0))
        ]
    );
}

fn scenario(per_event: bool, alerts_on_apply: bool) -> Vec<Alert> {
    let cfg = ScoringConfig {
        alerts_on_apply,
        ..config()
    };
    let mut c = ScoringCore::new(cfg).expect("valid");
    c.upsert_account(AccountInfo {
        account_id: "k".into(),
        tier: Tier::Key,
        ..AccountInfo::default()
    });
    let mut events = daily("k", "k", K::Activity, 0..20);
    events.extend(daily("c", "s", K::Complaint, [2, 3, 4]));
    events.push(ev("p", "b", at(0, 1), K::Purchase));
    events.push(ev("k-back", "k", at(40, 12), K::Activity));
    events.sort_by_key(|e| e.ts_ms);
    let mut by_day = std::collections::BTreeMap::<i64, Vec<vigil_engine::Event>>::new();
    for e in events {
        by_day.entry((e.ts_ms - T0).div_euclid(DAY)).or_default().push(e);
    }
    let mut alerts = Vec::new();
    let mut day = 0;
    for (d, evs) in by_day {
        while day < d {
            alerts.extend(c.advance_clock(at(day, 23)));
            day += 1;
        }
        if per_event {
            for e in evs {
                alerts.extend(apply(&mut c, &[e]).alerts);
            }
        } else {
            alerts.extend(apply(&mut c, &evs).alerts);
        }
    }
    while day <= 110 {
        alerts.extend(c.advance_clock(at(day, 23)));
        day += 1;
    }
    alerts
}

#[test]
fn alert_ids_are_deterministic_across_batching_and_evaluation_timing() {
    let ids = |alerts: Vec<Alert>| {
        let mut v: Vec<String> = alerts.into_iter().map(|a| a.id).collect();
        v.sort();
        v
    };
    let a = ids(scenario(true, true));
    let b = ids(scenario(false, true));
    let c = ids(scenario(true, false));
    assert_eq!(a, b);
    assert_eq!(a, c);
    // - quiet after k's day 19 noon (gap 1 d, deadline day 22 noon), recovered on day 40, and a
    //   new quiet episode after day 40 (gap 0.2·ln 21 -> 1.84 d, deadline ~day 46);
    // - the spike of days 2-4 (3 complaints in 7 days, start day 2);
    // - s's churn: no transaction, last interaction day 4, 3 open complaints (h = 1, beta 0.3):
    //   risk = 1 - 2^(-d/60)·0.7 >= 0.7 first at d = 74 (0.70239; d = 73 gives 0.69893): day 78;
    // - b's churn (one-time buyer, no hazard): 1 - 2^(-d/60) >= 0.7 first at d = 105: day 105;
    // - k's churn would cross at day 40 + 74 = 114, after the end (day 110).
    let mut expect = vec![
        format!("quiet/k/{}", at(19, 12)),
        format!("recovered/k/{}", at(19, 12)),
        format!("quiet/k/{}", at(40, 12)),
        format!("complaint_spike/s/{}", at(2, 0)),
        format!("churn_risk/s/{}", at(78, 0)),
        format!("churn_risk/b/{}", at(105, 0)),
    ];
    expect.sort();
    assert_eq!(a, expect);
    // Same run twice: identical alerts, field by field.
    assert_eq!(scenario(false, true), scenario(false, true));
}

#[test]
fn alerts_batch_has_one_row_per_alert() {
    let alerts = scenario(false, true);
    let batch = alerts_to_batch(&alerts);
    assert_eq!(batch.schema(), alert_schema());
    assert_eq!(batch.num_rows(), alerts.len());
    use arrow::array::AsArray;
    let ids = batch.column(0).as_string::<i32>();
    for (i, a) in alerts.iter().enumerate() {
        assert_eq!(ids.value(i), a.id);
    }
}

#[test]
fn quiet_deadline_already_past_in_the_first_batch_fires_on_the_next_clock_advance() {
    // A process (re)starting on a backlog: the key account's history and other accounts' recent
    // events arrive in one batch; its deadline (last + 3 × 1 day floor) lies before the newest
    // event, so the first clock advance raises the quiet alert once.
    let mut c = core();
    c.upsert_account(AccountInfo {
        account_id: "k".into(),
        tier: Tier::Key,
        arr: Some(250_000.0),
        ..AccountInfo::default()
    });
    let now = at(30, 0);
    // The pipeline's first tick comes before the first batch: the clock is already at `now`.
    assert!(c.advance_clock(now).is_empty());
    let mut batch: Vec<_> = (0..6)
        .map(|j| {
            ev(
                &format!("k-{j}"),
                "k",
                now - 7 * DAY + DAY / 2 + j * DAY / 2,
                K::Activity,
            )
        })
        .collect();
    batch.extend((0..40).map(|i| {
        ev(
            &format!("bg-{i}"),
            &format!("bg-{}", i % 8),
            now - (i % 5) * DAY,
            K::Activity,
        )
    }));
    let out = apply(&mut c, &batch);
    let mut alerts = out.alerts;
    alerts.extend(c.advance_clock(now));
    let quiet = of_kind(&alerts, AlertKind::Quiet);
    assert_eq!(quiet.len(), 1, "{alerts:?}");
    assert_eq!(quiet[0].episode_start_ms, now - 4 * DAY);
    assert!(of_kind(&c.advance_clock(now + DAY), AlertKind::Quiet).is_empty());
}
