//! Population model fits on the CDNOW sample, the data of the published results: BG/NBD on the
//! 2,357 customers (calibration weeks 1-39) and Gamma-Gamma on the 946 with a repeat purchase,
//! each from the summary the engine builds from the raw transactions. `benches/models_lifetimes.py`
//! times the `lifetimes` package (PyPI) on the same data for the side-by-side comparison in
//! BENCHMARKS.md.

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use vigil_engine::models::bgnbd::{self, Rfm};
use vigil_engine::models::gamma_gamma::{self, Spend};
use vigil_engine::models::summary::Transactions;

fn day(yyyymmdd: &str) -> i32 {
    let n: u32 = yyyymmdd.parse().expect("yyyymmdd");
    let d = NaiveDate::from_ymd_opt((n / 10_000) as i32, n / 100 % 100, n % 100).expect("date");
    (d - NaiveDate::from_ymd_opt(1997, 1, 1).expect("origin")).num_days() as i32
}

fn cdnow() -> (Vec<Rfm>, Vec<Spend>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/cdnow/CDNOW_sample.txt");
    let text = std::fs::read_to_string(path).expect("the CDNOW sample (../shared/data/cdnow)");
    let mut tx = Transactions::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 5 {
            tx.add(f[1], day(f[2]), f[4].parse().expect("value"));
        }
    }
    let rows = tx.summarise(day("19970930"), 7.0);
    let rfm: Vec<Rfm> = rows.iter().filter_map(|(_, c)| c.rfm).collect();
    let spend = rows
        .iter()
        .filter_map(|(_, c)| {
            Some(Spend {
                x: c.rfm?.x,
                m: c.repeat_value?,
            })
        })
        .collect();
    (rfm, spend)
}

fn fits(c: &mut Criterion) {
    let (rfm, spend) = cdnow();
    assert_eq!(rfm.len(), 2357);
    assert_eq!(spend.len(), 946);
    let mut g = c.benchmark_group("model_fit_cdnow");
    g.sample_size(20);
    g.bench_function("bgnbd_2357_customers", |b| {
        b.iter(|| bgnbd::fit(black_box(&rfm)).expect("fit"))
    });
    g.bench_function("gamma_gamma_946_customers", |b| {
        b.iter(|| gamma_gamma::fit(black_box(&spend)).expect("fit"))
    });
    g.finish();
}

criterion_group!(benches, fits);
criterion_main!(benches);
