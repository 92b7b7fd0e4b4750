//! BG/NBD against the published CDNOW results (Fader, Hardie & Lee 2005): the RFM summary built
//! from the raw transactions, the maximum-likelihood fit, and the published expectations.
//!
//! Week convention (checked against the `lifetimes` summary CSV for every customer): time is
//! `days / 7` since the customer's first purchase; the calibration period holds the transactions
//! dated 1997-01-01 ..= 1997-09-30 and ends at 1997-09-30 (day 272 of 1997, so a 1997-01-01
//! customer has T = 272/7 = 38.857 weeks, printed 38.86). Transactions of one customer on one day
//! are one purchase occasion.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::NaiveDate;
use vigil_engine::models::bgnbd::{self, BgNbdParams, Rfm};

const SUMMARY_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/cdnow/cdnow_customers_summary.csv"
);
const SAMPLE_TXT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/cdnow/CDNOW_sample.txt");

const PUBLISHED: BgNbdParams = BgNbdParams {
    r: 0.243,
    alpha: 4.414,
    a: 0.793,
    b: 2.426,
};
const PUBLISHED_LL: f64 = -9582.4;

/// `(ID, statistics)` rows of the summary CSV (`ID,frequency,recency,T`).
fn read_summary() -> Vec<(u32, Rfm)> {
    let text = std::fs::read_to_string(SUMMARY_CSV).expect("read cdnow_customers_summary.csv");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ID,frequency,recency,T"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "bad line {l:?}");
            let num = |s: &str| {
                s.parse::<f64>()
                    .unwrap_or_else(|e| panic!("bad number {s:?} in {l:?}: {e}"))
            };
            let id = f[0].parse::<u32>().expect("ID");
            (
                id,
                Rfm {
                    x: num(f[1]),
                    t_x: num(f[2]),
                    t: num(f[3]),
                },
            )
        })
        .collect()
}

fn date(yyyymmdd: &str) -> NaiveDate {
    let n: u32 = yyyymmdd.parse().expect("yyyymmdd");
    NaiveDate::from_ymd_opt((n / 10_000) as i32, n / 100 % 100, n % 100).expect("valid date")
}

/// The calibration-period summary of every customer of `CDNOW_sample.txt`, keyed by sample_id.
fn summary_from_transactions() -> BTreeMap<u32, Rfm> {
    let origin = date("19970101");
    let calibration_end = date("19970930");
    let weeks = |d: NaiveDate| (d - origin).num_days() as f64 / 7.0;
    let text = std::fs::read_to_string(SAMPLE_TXT).expect("read CDNOW_sample.txt");
    // sample_id -> distinct purchase days (as dates) within the calibration period.
    let mut days: BTreeMap<u32, Vec<NaiveDate>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 5, "bad line {line:?}");
        let id: u32 = f[1].parse().expect("sample_id");
        let d = date(f[2]);
        let entry = days.entry(id).or_default();
        if d <= calibration_end {
            entry.push(d);
        }
    }
    days.into_iter()
        .map(|(id, mut ds)| {
            ds.sort_unstable();
            ds.dedup();
            assert!(!ds.is_empty(), "customer {id} has no calibration purchase");
            let occasions: Vec<f64> = ds.iter().map(|&d| weeks(d)).collect();
            let first = occasions[0];
            // Times relative to the first purchase, as the scoring core will pass them.
            let rel: Vec<f64> = occasions.iter().map(|o| o - first).collect();
            (id, bgnbd::rfm_from_occasions(&rel, weeks(calibration_end) - first))
        })
        .collect()
}

#[test]
fn summary_from_raw_transactions_matches_csv() {
    let csv = read_summary();
    let built = summary_from_transactions();
    assert_eq!(csv.len(), 2357);
    assert_eq!(built.len(), 2357);
    assert_eq!(
        built[&1],
        Rfm {
            x: 2.0,
            t_x: 213.0 / 7.0,
            t: 272.0 / 7.0
        }
    );
    let mut worst = 0.0_f64;
    for (id, want) in &csv {
        let got = built
            .get(id)
            .unwrap_or_else(|| panic!("customer {id} missing from the transactions"));
        for (name, g, w) in [("x", got.x, want.x), ("t_x", got.t_x, want.t_x), ("T", got.t, want.t)] {
            let diff = (g - w).abs();
            worst = worst.max(diff);
            assert!(
                diff <= 0.01,
                "customer {id}: {name} = {g} from transactions, {w} in the CSV"
            );
        }
    }
    println!("RFM from CDNOW_sample.txt matches the CSV for all 2357 customers (max abs diff {worst:.4})");
}

#[test]
fn fit_reproduces_published_parameters() {
    let customers: Vec<Rfm> = read_summary().into_iter().map(|(_, c)| c).collect();
    let started = Instant::now();
    let fit = bgnbd::fit(&customers).expect("fit");
    let elapsed = started.elapsed();
    let p = fit.params;
    println!(
        "BG/NBD fit of {} customers: r = {:.6}, alpha = {:.6}, a = {:.6}, b = {:.6}, LL = {:.4}, {} iterations, {:.1} ms",
        fit.customers,
        p.r,
        p.alpha,
        p.a,
        p.b,
        fit.log_likelihood,
        fit.iterations,
        elapsed.as_secs_f64() * 1e3
    );
    assert_eq!(fit.customers, 2357);
    for (name, got, want) in [
        ("r", p.r, PUBLISHED.r),
        ("alpha", p.alpha, PUBLISHED.alpha),
        ("a", p.a, PUBLISHED.a),
        ("b", p.b, PUBLISHED.b),
    ] {
        assert!((got - want).abs() <= 0.01 * want, "{name} = {got}, published {want}");
    }
    assert!(
        (fit.log_likelihood - PUBLISHED_LL).abs() <= 0.5,
        "LL = {}, published {PUBLISHED_LL}",
        fit.log_likelihood
    );
    // The reported LL is the total over the individual likelihoods.
    assert!((fit.log_likelihood - p.total_log_likelihood(&customers)).abs() < 1e-6);
    // A maximum: better than the published (rounded) parameters and than small steps around it.
    assert!(fit.log_likelihood >= PUBLISHED.total_log_likelihood(&customers) - 1e-9);
    for k in 0..4 {
        for step in [-1e-3, 1e-3] {
            let mut q = [p.r, p.alpha, p.a, p.b];
            q[k] *= f64::exp(step);
            let q = BgNbdParams {
                r: q[0],
                alpha: q[1],
                a: q[2],
                b: q[3],
            };
            assert!(
                q.total_log_likelihood(&customers) <= fit.log_likelihood + 1e-9,
                "{q:?} is better"
            );
        }
    }
}

#[test]
fn published_conditional_expectation() {
    let c = Rfm {
        x: 2.0,
        t_x: 30.43,
        t: 38.86,
    };
    let e = PUBLISHED.expected_conditional(39.0, &c);
    assert!(
        (e - 1.226).abs() <= 0.001,
        "E[Y(39) | x=2, t_x=30.43, T=38.86] = {e}, published 1.226"
    );
}

/// Times and values of Hardie's BG/NBD Excel sheet (also the `lifetimes` test suite).
const UNCONDITIONAL: [(f64, f64); 6] = [
    (0.1429, 0.0078),
    (1.0, 0.0532),
    (3.0, 0.1506),
    (31.8571, 1.0405),
    (32.0, 1.0437),
    (78.0, 1.8576),
];

#[test]
fn published_unconditional_expectations() {
    // The published E[X(t)] values were computed with the full-precision MLE, not with the
    // 3-decimal parameters: (a+b-1)/(a-1) with a = 0.793 amplifies the rounding, so the rounded
    // parameters give 1.0452 at t = 32 and 1.8605 at t = 78 (mpmath agrees to 1e-12). Check the
    // published values against our own fit to 0.0005, and the rounded parameters to 0.005.
    let customers: Vec<Rfm> = read_summary().into_iter().map(|(_, c)| c).collect();
    let mle = bgnbd::fit(&customers).expect("fit").params;
    for (t, want) in UNCONDITIONAL {
        let e = mle.expected_unconditional(t);
        println!("E[X({t})] = {e:.5} with the fitted parameters (published {want})");
        assert!(
            (e - want).abs() <= 0.0005,
            "E[X({t})] = {e} with {mle:?}, published {want}"
        );
        let e = PUBLISHED.expected_unconditional(t);
        assert!(
            (e - want).abs() <= 0.005,
            "E[X({t})] = {e} with the rounded parameters, published {want}"
        );
    }
    // The conditional expectation is insensitive enough for both.
    let c = Rfm {
        x: 2.0,
        t_x: 30.43,
        t: 38.86,
    };
    assert!((mle.expected_conditional(39.0, &c) - 1.226).abs() <= 0.001);
}
