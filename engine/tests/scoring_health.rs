//! Health components, weights, bands, contributions, trend and churn risk, with expected values
//! worked out by hand.

mod scoring_common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use scoring_common::*;
use vigil_engine::models::bgnbd::BgNbdParams;
use vigil_engine::scoring::{
    Band, BaseRule, Component as C, HealthScore, Population, ScoringConfig, ScoringCore, health_schema,
};
use vigil_engine::{Event, EventKind as K};

fn score_after(events: &[Event], now: i64) -> HealthScore {
    let mut c = core();
    apply(&mut c, events);
    c.advance_clock(now);
    c.score("a").expect("account a")
}

fn component(events: &[Event], now: i64, comp: C) -> Option<f64> {
    score_after(events, now).component_score(comp)
}

#[test]
fn engagement_component_table() {
    // now = day 99 noon: long window = days 10..=99 (90 d), short = days 70..=99 (30 d).
    let steady = daily("x", "a", K::Activity, 0..=99);
    let mut slowing = daily("x", "a", K::Activity, 0..=69);
    slowing.extend(daily("y", "a", K::Activity, [80, 90, 99]));
    let cases: Vec<(&str, Vec<Event>, i64, Option<f64>)> = vec![
        // 1/day throughout: recent 30/30 = 1, baseline (90 - 30) / (min(100, 90) - 30) = 60/60 =
        // 1, q = 1 -> 100·(1 - 4^-1) = 75.
        ("steady", steady, at(99, 12), Some(75.0)),
        // recent 3/30, baseline 60/60 = 1 -> q = 0.1 -> 100·(1 - 4^(-0.1)).
        ("slowing", slowing, at(99, 12), Some(100.0 * (1.0 - 4f64.powf(-0.1)))),
        // first seen day 95, now day 99: age 5 days <= 30 -> no baseline -> absent.
        ("too young", daily("x", "a", K::Activity, [95, 96]), at(99, 12), None),
        // first seen day 60: age 40 days, baseline days 60..=69 (10 days, 10 active) -> 1;
        // recent 15 of days 70..=99 -> 0.5; q = 0.5 -> 100·(1 - 4^-0.5) = 50.
        (
            "young, half the pace",
            {
                let mut e = daily("x", "a", K::Activity, 60..=69);
                e.extend(daily("y", "a", K::Activity, (70..=99).step_by(2)));
                e
            },
            at(99, 12),
            Some(50.0),
        ),
        // activity only on days 0..=5: nothing in the long window, q = 0 -> 0.
        ("dormant", daily("x", "a", K::Activity, 0..=5), at(99, 12), Some(0.0)),
        // silent baseline then activity: base 0, recent > 0 -> 100. First seen day 0 (a meeting).
        (
            "revived",
            {
                let mut e = vec![ev("m", "a", at(0, 1), K::Meeting)];
                e.extend(daily("x", "a", K::Activity, [98]));
                e
            },
            at(99, 12),
            Some(100.0),
        ),
        // no activity kind ever -> absent.
        ("no activity", daily("m", "a", K::Meeting, [1, 2]), at(99, 12), None),
    ];
    for (name, events, now, expect) in cases {
        let got = component(&events, now, C::Engagement);
        match (got, expect) {
            (Some(g), Some(e)) => assert_close(g, e, name),
            _ => assert_eq!(got, expect, "{name}"),
        }
    }
}

#[test]
fn recency_component_table() {
    // Interactions on days 0, 10, 20, 30 at noon: gaps 10, 10, 10 -> learned cadence 10 days.
    let tenth = daily("m", "a", K::Meeting, [0, 10, 20, 30]);
    let cases: Vec<(&str, Vec<Event>, i64, f64)> = vec![
        // 5 days since, within one cadence -> 100.
        ("within cadence", tenth.clone(), at(35, 12), 100.0),
        // 15 days since, cadence 10 -> 100·2^(-(15-10)/10) = 70.7107.
        (
            "half a cadence late",
            tenth.clone(),
            at(45, 12),
            100.0 * 2f64.powf(-0.5),
        ),
        // 30 days since -> 100·2^(-2) = 25.
        ("two cadences late", tenth, at(60, 12), 25.0),
        // days 0, 10: one gap, not learned -> default cadence 7: 14 days since -> 100·2^(-1) = 50.
        (
            "default cadence",
            daily("m", "a", K::Meeting, [0, 10]),
            at(24, 12),
            50.0,
        ),
    ];
    for (name, events, now, expect) in cases {
        assert_close(component(&events, now, C::Recency).expect(name), expect, name);
    }
}

/// (name, events, now, component, expected component score).
type ComponentCase = (&'static str, Vec<Event>, i64, C, Option<f64>);

#[test]
fn support_sentiment_relationship_commercial_advocacy_table() {
    let support = vec![
        ev("t1", "a", at(1, 1), K::TicketOpened),
        ev("t2", "a", at(1, 2), K::TicketOpened),
        ev("t3", "a", at(1, 3), K::TicketOpened),
        ev("t4", "a", at(1, 4), K::TicketClosed),
        ev("c1", "a", at(1, 5), K::Complaint),
        ev("c2", "a", at(1, 6), K::Complaint),
        ev("c3", "a", at(1, 7), K::ComplaintResolved),
    ];
    let cases: Vec<ComponentCase> = vec![
        // open tickets 3-1 = 2, open complaints 2-1 = 1, complaints in 30 d = 2:
        // burden = 2 + 2·1 + 0.5·2 = 5 -> 100·2/(2+5) = 28.5714.
        ("support burden", support, at(2, 0), C::Support, Some(200.0 / 7.0)),
        // one ticket opened and closed: burden 0 -> 100.
        (
            "support resolved",
            vec![
                ev("t1", "a", at(1, 1), K::TicketOpened),
                ev("t2", "a", at(1, 2), K::TicketClosed),
            ],
            at(2, 0),
            C::Support,
            Some(100.0),
        ),
        (
            "support no data",
            daily("x", "a", K::Activity, [1]),
            at(2, 0),
            C::Support,
            None,
        ),
        // surveys 9 (day 5) and 5 (day 40): latest 5, long mean 7 -> 10·(5+7)/2 = 60.
        (
            "sentiment",
            vec![
                score(ev("s1", "a", at(5, 1), K::Survey), 9.0),
                score(ev("s2", "a", at(40, 1), K::Survey), 5.0),
            ],
            at(41, 0),
            C::Sentiment,
            Some(60.0),
        ),
        // survey 8 on day 0, now day 120: none in the long window -> 10·8 = 80.
        (
            "sentiment latest only",
            vec![
                score(ev("s1", "a", at(0, 1), K::Survey), 8.0),
                ev("x", "a", at(120, 0), K::Activity),
            ],
            at(120, 1),
            C::Sentiment,
            Some(80.0),
        ),
        // 2 meetings in 90 d, target 3 -> 66.667.
        (
            "relationship",
            daily("m", "a", K::Meeting, [10, 20]),
            at(30, 0),
            C::Relationship,
            Some(200.0 / 3.0),
        ),
        // 5 meetings -> capped at 100.
        (
            "relationship cap",
            daily("m", "a", K::Meeting, 1..=5),
            at(30, 0),
            C::Relationship,
            Some(100.0),
        ),
        // meeting on day 0, now day 100 -> none in window -> 0.
        (
            "relationship lapsed",
            vec![
                ev("m", "a", at(0, 1), K::Meeting),
                ev("x", "a", at(100, 0), K::Activity),
            ],
            at(100, 1),
            C::Relationship,
            Some(0.0),
        ),
        // renewal + downgrade: 100·(1+1)/(1+1+2) = 50.
        (
            "commercial mixed",
            vec![ev("r", "a", at(1, 1), K::Renewal), ev("d", "a", at(2, 1), K::Downgrade)],
            at(3, 0),
            C::Commercial,
            Some(50.0),
        ),
        // two renewals: 100·3/4 = 75.
        (
            "commercial renewals",
            daily("r", "a", K::Renewal, [1, 2]),
            at(3, 0),
            C::Commercial,
            Some(75.0),
        ),
        // a downgrade: 100·1/3 = 33.33.
        (
            "commercial downgrade",
            daily("d", "a", K::Downgrade, [1]),
            at(3, 0),
            C::Commercial,
            Some(100.0 / 3.0),
        ),
        // referral in window -> 50 + 50·min(1, 1/1) = 100.
        (
            "advocacy",
            daily("f", "a", K::Referral, [5]),
            at(6, 0),
            C::Advocacy,
            Some(100.0),
        ),
        // referral long ago -> 50 + 0 = 50 (neutral, no penalty).
        (
            "advocacy lapsed",
            vec![
                ev("f", "a", at(0, 1), K::Referral),
                ev("x", "a", at(100, 0), K::Activity),
            ],
            at(100, 1),
            C::Advocacy,
            Some(50.0),
        ),
        (
            "advocacy no data",
            daily("x", "a", K::Activity, [1]),
            at(2, 0),
            C::Advocacy,
            None,
        ),
    ];
    for (name, events, now, comp, expect) in cases {
        let got = component(&events, now, comp);
        match (got, expect) {
            (Some(g), Some(e)) => assert_close(g, e, name),
            _ => assert_eq!(got, expect, "{name}"),
        }
    }
}

#[test]
fn score_is_weighted_mean_and_contributions_sum_to_score_minus_50() {
    // Only recency (weight 0.10) and support (0.20) have data: normalised 0.1/0.3 = 1/3 and
    // 0.2/0.3 = 2/3. Recency 100 (1 day since, default cadence 7), support 200/7 (as above).
    // score = 1/3·100 + 2/3·200/7 = 33.333333 + 19.047619 = 52.380952 -> band watch (< 70).
    // contributions: 1/3·(100-50) = 16.666667; 2/3·(200/7 - 50) = -14.285714; sum 2.380952.
    let events = vec![
        ev("t1", "a", at(1, 1), K::TicketOpened),
        ev("t2", "a", at(1, 2), K::TicketOpened),
        ev("t3", "a", at(1, 3), K::TicketOpened),
        ev("t4", "a", at(1, 4), K::TicketClosed),
        ev("c1", "a", at(1, 5), K::Complaint),
        ev("c2", "a", at(1, 6), K::Complaint),
        ev("c3", "a", at(1, 7), K::ComplaintResolved),
    ];
    let s = score_after(&events, at(2, 0));
    let expect_score = 1.0 / 3.0 * 100.0 + 2.0 / 3.0 * 200.0 / 7.0;
    assert_close(s.score, expect_score, "score");
    assert_close(expect_score, 52.380_952_380_952_38, "hand arithmetic");
    assert_eq!(s.band, Band::Watch);
    assert_eq!(s.components.len(), 2);
    assert_close(
        s.contribution(C::Recency).expect("recency"),
        1.0 / 3.0 * 50.0,
        "recency contribution",
    );
    assert_close(
        s.contribution(C::Support).expect("support"),
        2.0 / 3.0 * (200.0 / 7.0 - 50.0),
        "support contribution",
    );
    let sum: f64 = s.components.iter().map(|p| p.contribution).sum();
    assert_close(sum, s.score - 50.0, "sum of contributions");
    assert_eq!(s.contribution(C::Engagement), None);

    // Zero weight drops a component: with support weight 0, only recency remains -> 100, healthy.
    let mut cfg = ScoringConfig::default();
    cfg.weights.support = 0.0;
    let mut c = ScoringCore::new(cfg).expect("valid");
    apply(&mut c, &events);
    c.advance_clock(at(2, 0));
    let s = c.score("a").expect("a");
    assert_close(s.score, 100.0, "recency only");
    assert_eq!(s.band, Band::Healthy);

    // No component at all (dimension record only): the neutral 50.
    let mut c = core();
    c.upsert_account(vigil_engine::scoring::AccountInfo::new("empty"));
    let s = c.score("empty").expect("empty");
    assert_eq!((s.score, s.components.len(), s.band), (50.0, 0, Band::Watch));
    assert!(c.score("missing").is_none());
}

#[test]
fn bands_table() {
    let cfg = ScoringConfig::default();
    // healthy >= 70 > watch >= 40 > at risk.
    for (score, band) in [
        (100.0, Band::Healthy),
        (70.0, Band::Healthy),
        (69.999, Band::Watch),
        (40.0, Band::Watch),
        (39.999, Band::AtRisk),
        (0.0, Band::AtRisk),
    ] {
        assert_eq!(Band::of(score, &cfg), band, "{score}");
    }
    let mut cfg = ScoringConfig::default();
    cfg.bands.healthy = 80.0;
    cfg.bands.watch = 60.0;
    assert_eq!(Band::of(75.0, &cfg), Band::Watch);
    assert_eq!(Band::of(59.0, &cfg), Band::AtRisk);
    assert_eq!(Band::AtRisk.as_str(), "at_risk");
}

#[test]
fn trend_compares_with_the_score_recorded_7_days_before() {
    let mut c = core();
    apply(&mut c, &daily("m", "a", K::Meeting, [0, 2, 4, 6, 8, 10]));
    // Day 10's sweep records day 10's score (rounded to 0.01).
    c.advance_clock(at(10, 13));
    let s10 = c.score("a").expect("a").score;
    assert_eq!(
        c.score("a").expect("a").trend_7d,
        None,
        "nothing recorded 7 days before"
    );
    c.advance_clock(at(16, 0));
    assert_eq!(c.score("a").expect("a").trend_7d, None, "day 9 was not recorded");
    c.advance_clock(at(17, 0));
    let s = c.score("a").expect("a");
    let expect = s.score - (s10 * 100.0).round() / 100.0;
    assert_close(s.trend_7d.expect("trend"), expect, "trend");
    assert!(expect < 0.0, "silence lowers recency: {expect}");
}

#[test]
fn churn_risk_formula_table() {
    let p0 = ev("p0", "a", at(0, 12), K::Purchase);
    let complaint = ev("c", "a", at(59, 1), K::Complaint);
    let detractor = score(ev("s", "a", at(59, 2), K::Survey), 4.0);
    let downgrade = ev("d", "a", at(59, 3), K::Downgrade);
    let now = at(60, 12);
    let cases: Vec<(&str, Vec<Event>, f64, BaseRule)> = vec![
        // One-time buyer, no fitted params: 60 days since the purchase, tau = 30:
        // base = 1 - 2^(-60/(2·30)) = 0.5; no hazard -> 0.5.
        ("recency rule", vec![p0.clone()], 0.5, BaseRule::Recency),
        // + 1 open complaint: h = min(1, 1/2) = 0.5, beta 0.3 -> 1 - 0.5·(1 - 0.15) = 0.575.
        (
            "complaint",
            vec![p0.clone(), complaint.clone()],
            0.575,
            BaseRule::Recency,
        ),
        // + detractor (4 <= 6): beta 0.25 -> 1 - 0.5·0.85·0.75 = 0.68125.
        (
            "detractor",
            vec![p0.clone(), complaint.clone(), detractor.clone()],
            0.68125,
            BaseRule::Recency,
        ),
        // + downgrade within 90 d: beta 0.3 -> 1 - 0.5·0.85·0.75·0.7 = 0.776875.
        (
            "downgrade",
            vec![p0.clone(), complaint, detractor, downgrade],
            0.776_875,
            BaseRule::Recency,
        ),
        // Cancellation -> 1.
        (
            "cancelled",
            vec![p0.clone(), ev("x", "a", at(30, 0), K::Cancellation)],
            1.0,
            BaseRule::Cancelled,
        ),
    ];
    for (name, events, expect, rule) in cases {
        let s = score_after(&events, now);
        assert_close(s.churn_risk, expect, name);
        assert_eq!(s.churn.rule, rule, "{name}");
    }

    // Falling engagement: activity 1/day on days 0..=69 and on 80, 90, 99; now day 99:
    // q = 0.1 (see the engagement table) -> h = 1 - 0.1 = 0.9; no transaction, last interaction
    // today -> base 1 - 2^0 = 0 -> risk = 1 - (1 - 0.3·0.9) = 0.27.
    let mut slowing = daily("x", "a", K::Activity, 0..=69);
    slowing.extend(daily("y", "a", K::Activity, [80, 90, 99]));
    let s = score_after(&slowing, at(99, 12));
    assert_close(s.churn.hazards[1], 0.9, "engagement hazard");
    assert_close(s.churn_risk, 0.27, "engagement risk");
}

#[test]
fn churn_risk_uses_bgnbd_p_alive_for_repeat_buyers() {
    let params = BgNbdParams {
        r: 0.25,
        alpha: 4.0,
        a: 0.8,
        b: 2.5,
    };
    let mut c = core();
    c.set_population(Population {
        params: Some(params),
        typical_gap_days: 30.0,
        churn: None,
    });
    // Purchases on days 0, 10, 20; one-time buyer "b" on day 0; now day 50.
    let mut events = daily("p", "a", K::Purchase, [0, 10, 20]);
    events.push(ev("pb", "b", at(0, 12), K::Purchase));
    events.sort_by_key(|e| e.ts_ms);
    apply(&mut c, &events);
    c.advance_clock(at(50, 12));
    // x = 2, t_x = 20, T = 50: P(alive) = 1 / (1 + a/(b+x-1)·((alpha+T)/(alpha+t_x))^(r+x))
    // = 1 / (1 + 0.8/3.5·(54/24)^2.25) = 1 / (1 + 0.228571·6.200271) = 0.413701.
    let odds = 0.8 / 3.5 * (54.0f64 / 24.0).powf(2.25);
    let p = 1.0 / (1.0 + odds);
    assert!((p - 0.413_701).abs() < 1e-6, "hand arithmetic: {p}");
    let s = c.score("a").expect("a");
    assert_close(s.p_alive.expect("p_alive"), p, "p_alive");
    assert_eq!(s.churn.rule, BaseRule::BgNbd);
    assert_close(s.churn_risk, 1.0 - p, "risk = 1 - P(alive) without hazards");
    // x = 0: BG/NBD says P(alive) = 1, the recency rule applies: 50 days, tau 30 ->
    // 1 - 2^(-50/60).
    let s = c.score("b").expect("b");
    assert_eq!(s.p_alive, Some(1.0));
    assert_eq!(s.churn.rule, BaseRule::Recency);
    assert_close(s.churn_risk, 1.0 - 2f64.powf(-50.0 / 60.0), "one-time buyer");
}

#[test]
fn a_fitted_churn_model_gives_the_risk_and_the_alert_threshold() {
    use vigil_engine::models::churn::ChurnModel;
    use vigil_engine::scoring::AlertKind;
    // One-time buyer on day 0 with a complaint on day 59; now day 60 noon. Features: base =
    // 1 - 2^(-60/60) = 0.5 (recency rule, tau 30), engagement 0 (no activity), complaints
    // min(1, 1/2) = 0.5, detractor 0, downgrade 0.
    // Risk = σ(-3 + 2·0.5 + 4·0.5) = σ(0) = 0.5.
    let model = ChurnModel {
        horizon_days: 30,
        intercept: -3.0,
        weights: [2.0, 1.0, 4.0, 1.5, 0.5],
        alert_threshold: 0.45,
    };
    let mut c = core();
    c.set_population(Population {
        params: None,
        typical_gap_days: 30.0,
        churn: Some(model),
    });
    let events = vec![
        ev("p0", "a", at(0, 12), K::Purchase),
        ev("c", "a", at(59, 1), K::Complaint),
    ];
    let out = apply(&mut c, &events);
    let alerts: Vec<_> = c
        .advance_clock(at(60, 12))
        .into_iter()
        .chain(out.alerts)
        .filter(|a| a.kind == AlertKind::ChurnRisk)
        .collect();
    let s = c.score("a").expect("a");
    assert_eq!(s.churn.features(), [0.5, 0.0, 0.5, 0.0, 0.0]);
    assert_close(s.churn_risk, 0.5, "σ(0)");
    // 0.5 ≥ the model's threshold 0.45 (the configured 0.7 would not alert): one alert, at
    // the model's threshold.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_close(alerts[0].threshold, 0.45, "threshold of the alert");
}

#[test]
fn refit_bgnbd_sets_params_and_typical_gap() {
    // 300 accounts following the BG/NBD story with a deterministic generator: purchase rate per
    // day from {0.03, 0.07, 0.15, 0.3}, dropout probability after each purchase from
    // {0.05, 0.2, 0.5}, first purchase on days 0..30, observed to day 160.
    let mut c = core();
    let mut state: u64 = 12345;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut events = Vec::new();
    for a in 0..300 {
        let rate = [0.03, 0.07, 0.15, 0.3][(uniform() * 4.0) as usize];
        let drop = [0.05, 0.2, 0.5][(uniform() * 3.0) as usize];
        let mut t = uniform() * 30.0;
        let mut k = 0;
        while t < 160.0 {
            events.push(ev(
                &format!("p{a}-{k}"),
                &format!("acct{a}"),
                T0 + (t * DAY as f64) as i64,
                K::Purchase,
            ));
            k += 1;
            if uniform() < drop {
                break;
            }
            t += -uniform().ln() / rate;
        }
    }
    events.sort_by_key(|e| e.ts_ms);
    for chunk in events.chunks(500) {
        apply(&mut c, chunk);
    }
    c.advance_clock(at(160, 0));
    let fit = c.refit_bgnbd().expect("fit converges");
    assert_eq!(fit.customers, 300);
    let pop = c.population();
    assert_eq!(pop.params, Some(fit.params));
    // Median of t_x / x over repeat buyers, computed here from the views.
    let mut gaps: Vec<f64> = (0..300)
        .filter_map(|a| c.account_view(&format!("acct{a}")).and_then(|v| v.rfm))
        .filter(|r| r.x >= 1.0)
        .map(|r| r.t_x / r.x)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let n = gaps.len();
    let median = if n % 2 == 1 {
        gaps[n / 2]
    } else {
        (gaps[n / 2 - 1] + gaps[n / 2]) / 2.0
    };
    assert_close(pop.typical_gap_days, median, "typical gap");
    let v = c.account_view("acct0").expect("acct0");
    let s = c.score("acct0").expect("acct0");
    assert_close(
        s.p_alive.expect("p"),
        fit.params.p_alive(&v.rfm.expect("rfm")),
        "p_alive",
    );
}

#[test]
fn health_batch_matches_scores_and_schema() {
    let mut c = core();
    apply(&mut c, &daily("x", "a", K::Activity, 0..=20));
    apply(
        &mut c,
        &[
            amount(ev("p", "b", at(20, 1), K::Purchase), 12.5),
            cost(ev("c", "b", at(20, 2), K::Complaint), 3.0),
        ],
    );
    c.upsert_account(vigil_engine::scoring::AccountInfo {
        account_id: "b".into(),
        tier: vigil_engine::scoring::Tier::Key,
        arr: Some(5.0),
        owner: Some("olga".into()),
        segment: Some("smb".into()),
        name: None,
    });
    c.advance_clock(at(21, 0));
    let batch = c.health_batch();
    assert_eq!(batch.schema(), health_schema());
    assert_eq!(batch.num_rows(), 2);
    let schema = health_schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for n in [
        "account_id",
        "tier",
        "arr",
        "owner",
        "segment",
        "score",
        "band",
        "churn_risk",
        "p_alive",
        "bgnbd_x",
        "bgnbd_t_x",
        "bgnbd_t",
        "last_seen",
        "cadence_days",
        "open_tickets",
        "open_complaints",
        "engagement",
        "recency",
        "support",
        "sentiment",
        "relationship",
        "commercial",
        "advocacy",
        "trend_7d",
        "events_30d",
        "revenue_90d",
        "complaint_cost_90d",
        "cancelled",
        "quiet",
        "status",
    ] {
        assert!(names.contains(&n), "missing column {n}");
    }
    let col = |n: &str| batch.column_by_name(n).expect(n).clone();
    let ids = col("account_id");
    let ids = ids.as_string::<i32>();
    for row in 0..2 {
        let id = ids.value(row);
        let s = c.score(id).expect("known");
        assert_close(col("score").as_primitive::<Float64Type>().value(row), s.score, "score");
        assert_close(
            col("churn_risk").as_primitive::<Float64Type>().value(row),
            s.churn_risk,
            "churn",
        );
        let mut sum = 0.0;
        for comp in vigil_engine::scoring::Component::ALL {
            let a = col(comp.as_str());
            let a = a.as_primitive::<Float64Type>();
            match s.contribution(comp) {
                Some(v) => {
                    assert_close(a.value(row), v, comp.as_str());
                    sum += v;
                }
                None => assert!(a.is_null(row), "{id} {comp:?} should be null"),
            }
        }
        assert_close(sum, s.score - 50.0, "row contributions");
    }
    // b: key via tier, revenue 12.5, complaint cost 3, 1 open complaint, events_30d = 2.
    let b = (0..2).find(|&r| ids.value(r) == "b").expect("b row");
    assert_eq!(col("tier").as_string::<i32>().value(b), "key");
    assert_eq!(col("owner").as_string::<i32>().value(b), "olga");
    assert_close(
        col("revenue_90d").as_primitive::<Float64Type>().value(b),
        12.5,
        "revenue",
    );
    assert_close(
        col("complaint_cost_90d").as_primitive::<Float64Type>().value(b),
        3.0,
        "cost",
    );
    assert_eq!(col("open_complaints").as_primitive::<Int64Type>().value(b), 1);
    assert_eq!(col("events_30d").as_primitive::<Int64Type>().value(b), 2);
    assert_eq!(col("bgnbd_x").as_primitive::<Float64Type>().value(b), 0.0);
    let a_row = 1 - b;
    assert!(col("bgnbd_x").is_null(a_row), "no transaction, no statistics");
    assert_eq!(col("events_30d").as_primitive::<Int64Type>().value(a_row), 21);
}
