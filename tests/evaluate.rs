//! `vigil evaluate` on a generated history where churn gives warning signs: activity fading over
//! the two months before a cancellation, complaints, detractor survey answers. The backtest
//! replays the history, scores every account monthly and holds each score against the
//! cancellations of the next 30 days.

mod common;

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use common::vigil;

const DAY: i64 = 86_400_000;
/// 2024-01-01.
const START: i64 = 1_704_067_200_000;

/// 300 accounts over a year; about a third cancel between days 120 and 330, after activity
/// fades over 60 days, complaints and detractor answers. Everyone buys monthly until leaving.
fn history(seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::new();
    let mut n = 0u64;
    let mut ev = |out: &mut String, account: usize, day: i64, kind: &str, extra: &str| {
        n += 1;
        let ts = START + day * DAY + 9 * 3_600_000 + (n as i64 % 3_600) * 1_000;
        writeln!(
            out,
            r#"{{"event_id":"e{n}","account_id":"a{account:03}","ts":{ts},"kind":"{kind}"{extra}}}"#
        )
        .unwrap();
    };
    for a in 0..300 {
        let start = rng.random_range(0..30);
        let churn_day = (rng.random_range(0..3) == 0).then(|| rng.random_range(120..330));
        let end = churn_day.unwrap_or(365);
        let base = rng.random_range(0.3..0.8);
        ev(&mut out, a, start, "signup", r#","cost":500,"category":"ads""#);
        for day in start..end {
            let left = churn_day.map_or(i64::MAX, |c| c - day);
            let p = if left <= 60 {
                base * (left as f64 / 60.0).max(0.05)
            } else {
                base
            };
            if rng.random_bool(p) {
                ev(&mut out, a, day, "activity", "");
            }
            if (day - start) % 30 == 15 && left > 20 {
                let amount = rng.random_range(50..500);
                ev(&mut out, a, day, "purchase", &format!(r#","amount":{amount}"#));
            }
            if left <= 45 && rng.random_bool(0.04) {
                ev(&mut out, a, day, "complaint", r#","cost":50,"category":"service""#);
            }
            if left <= 30 && rng.random_bool(0.03) {
                ev(&mut out, a, day, "survey", r#","score":2"#);
            }
            if left > 60 && (day - start) % 90 == 45 {
                let score = rng.random_range(7..=10);
                ev(&mut out, a, day, "survey", &format!(r#","score":{score}"#));
            }
            if left > 60 && rng.random_bool(0.005) {
                ev(&mut out, a, day, "complaint", r#","cost":50,"category":"billing""#);
                ev(
                    &mut out,
                    a,
                    day + 2,
                    "complaint_resolved",
                    r#","cost":20,"category":"billing""#,
                );
            }
        }
        if let Some(c) = churn_day {
            ev(&mut out, a, c, "cancellation", r#","amount":3000,"category":"price""#);
        }
    }
    out
}

#[test]
fn backtest_reports_auc_lift_and_calibration_for_each_score() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("history.jsonl");
    std::fs::write(&file, history(7)).unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    vigil(&["replay", file.to_str().unwrap(), "--data-dir", d, "--quiet"]);

    let out = vigil(&["evaluate", "--data-dir", d, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // Cut-offs from day 90 after the first event's day, every 30 days, while 30 days follow: 9.
    // Cancellations start on day 120, so the churn model is first fitted (on the weekly
    // cut-offs whose 30 days had passed) for the cut-off of day 150: two are left out.
    let cutoffs = report["cutoffs"].as_array().expect("cutoffs");
    assert_eq!(report["skipped_cutoffs"], 2, "{report}");
    assert_eq!(cutoffs.len(), 7, "{report}");
    assert_eq!(report["model_cutoffs"], 7, "{report}");
    assert_eq!(cutoffs[1].as_i64().unwrap() - cutoffs[0].as_i64().unwrap(), 30 * DAY);
    let observations = report["observations"].as_u64().unwrap();
    let churned = report["churned"].as_u64().unwrap();
    assert!(observations > 1_000 && churned > 30, "{report}");
    let score = |name: &str| {
        report["scores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["score"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))
            .clone()
    };
    for name in ["churn_risk", "health_score", "activity_rule"] {
        let s = score(name);
        let auc = s["auc"].as_f64().unwrap();
        let lift = s["top_decile_lift"].as_f64().unwrap();
        eprintln!("{name}: AUC {auc:.3}, top-decile lift {lift:.2}");
        assert!((0.0..=1.0).contains(&auc));
        let bins = s["calibration"].as_array().unwrap();
        assert_eq!(bins.len(), 10);
        let counted: u64 = bins.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, observations);
    }
    // The warning signs are in the data: the fading activity alone ranks churners well.
    let rule = score("activity_rule");
    assert!(rule["auc"].as_f64().unwrap() > 0.75, "{report}");
    // vigil's scores read the same fading activity and the complaints and detractor answers
    // besides: both rank churners better than the rule, overall (AUC) and at the top (lift).
    for name in ["churn_risk", "health_score"] {
        for measure in ["auc", "top_decile_lift"] {
            let (ours, theirs) = (score(name)[measure].as_f64().unwrap(), rule[measure].as_f64().unwrap());
            assert!(
                ours > theirs,
                "{name} {measure} {ours:.3} <= activity_rule {theirs:.3}: {report}"
            );
        }
    }

    // The text form.
    let text = String::from_utf8(vigil(&["evaluate", "--data-dir", d]).stdout).unwrap();
    assert!(text.contains("churn_risk calibration"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("activity_rule")), "{text}");
}
