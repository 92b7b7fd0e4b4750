//! Gamma-Gamma against the published CDNOW fit (Fader, Hardie & Lee 2005, "RFM and CLV"):
//! occasions and values built from the raw transactions of the 2,357-customer sample with the
//! engine's own summary builder, calibration 1997-01-01 ..= 1997-09-30.

use chrono::NaiveDate;
use vigil_engine::models::gamma_gamma::{self, Spend};
use vigil_engine::models::summary::Transactions;

const SAMPLE_TXT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/cdnow/CDNOW_sample.txt");

fn day(yyyymmdd: &str) -> i32 {
    let n: u32 = yyyymmdd.parse().expect("yyyymmdd");
    let d = NaiveDate::from_ymd_opt((n / 10_000) as i32, n / 100 % 100, n % 100).expect("valid date");
    (d - NaiveDate::from_ymd_opt(1997, 1, 1).expect("origin")).num_days() as i32
}

#[test]
fn fit_reproduces_published_parameters() {
    let text = std::fs::read_to_string(SAMPLE_TXT).expect("read CDNOW_sample.txt");
    let mut tx = Transactions::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 5, "bad line {line:?}");
        tx.add(f[1], day(f[2]), f[4].parse().expect("dollar value"));
    }
    let summaries = tx.summarise(day("19970930"), 7.0);
    assert_eq!(summaries.len(), 2357);
    let spends: Vec<Spend> = summaries
        .iter()
        .filter_map(|(_, c)| {
            Some(Spend {
                x: c.rfm?.x,
                m: c.repeat_value?,
            })
        })
        .collect();
    let fit = gamma_gamma::fit(&spends).expect("fit");
    let p = fit.params;
    println!(
        "Gamma-Gamma on {} repeat customers: p = {:.4}, q = {:.4}, gamma = {:.4}, LL = {:.3}",
        fit.customers, p.p, p.q, p.gamma, fit.log_likelihood
    );
    assert_eq!(fit.customers, 946);
    for (name, got, want) in [("p", p.p, 6.25), ("q", p.q, 3.74), ("gamma", p.gamma, 15.44)] {
        assert!((got - want).abs() <= 0.005, "{name} = {got}, published {want}");
    }
}
