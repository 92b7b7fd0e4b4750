//! Analyst SQL benchmark: generates an event history (Parquet segments, one per month), accounts
//! and a health snapshot in a data directory, then times every named query on DataFusion.
//!
//! ```text
//! cargo bench -p vigil-queries --bench analyst_sql -- gen DIR EVENTS
//! cargo bench -p vigil-queries --bench analyst_sql -- run DIR ITERATIONS
//! ```
//!
//! `run` writes DIR/sql/<query>.sql (the rendered SQL, for DuckDB), DIR/results/datafusion_<query>.csv
//! and DIR/datafusion_timings.json; `queries/benches/duckdb_compare.py` runs the same SQL on
//! DuckDB over the same files and compares.

use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::parquet::arrow::ArrowWriter;
use vigil_engine::decode::EventRef;
use vigil_engine::scoring::table::{HealthBatchBuilder, HealthRow};
use vigil_engine::{EventBatchBuilder, EventKind, SourceMeta};
use vigil_queries::accounts::{Account, accounts_batch};
use vigil_queries::live::health_schema;
use vigil_queries::{Analyst, SegmentStore, named};

const DAY: i64 = 86_400_000;
/// 2023-01-01T00:00:00Z.
const START: i64 = 1_672_531_200_000;
const DAYS: u64 = 730;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
struct Ev {
    ts: i64,
    account: u32,
    kind: EventKind,
    amount: f32,
    cost: f32,
    category: u8,
}

const CATEGORIES: &[&str] = &[
    "",
    "ads",
    "referral",
    "organic",
    "partner",
    "billing",
    "support",
    "product",
    "price",
    "competitor",
    "web",
    "api",
];

fn cat_for(kind: EventKind, r: &mut Rng) -> u8 {
    match kind {
        EventKind::Signup => 1 + r.below(4) as u8,
        EventKind::Complaint | EventKind::ComplaintResolved => 5 + r.below(3) as u8,
        EventKind::Cancellation => 6 + r.below(4) as u8,
        EventKind::Activity => 10 + r.below(2) as u8,
        _ => 0,
    }
}

fn generate(dir: &Path, events: u64) {
    let accounts = (events / 100).max(10);
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut by_month: Vec<Vec<Ev>> = vec![Vec::new(); 25];
    let push = |e: Ev, by_month: &mut Vec<Vec<Ev>>| {
        let day = (e.ts - START) / DAY;
        let month = ((day * 12) / 365).clamp(0, 24) as usize;
        by_month[month].push(e);
    };
    let mut total = 0u64;
    for a in 0..accounts as u32 {
        let budget = 20 + r.below(161);
        let contractual = r.below(10) != 0;
        let start = r.below(DAYS - 30);
        let mut end = DAYS;
        let add = |kind: EventKind, day: u64, r: &mut Rng, by_month: &mut Vec<Vec<Ev>>| {
            let ts = START + day as i64 * DAY + r.below(DAY as u64) as i64;
            let (amount, cost) = match kind {
                EventKind::Purchase => (10.0 + 200.0 * r.unit() as f32, f32::NAN),
                EventKind::Renewal => (1000.0 + 20000.0 * r.unit() as f32, f32::NAN),
                EventKind::Cancellation | EventKind::Downgrade => (500.0 + 10000.0 * r.unit() as f32, f32::NAN),
                EventKind::Signup => (f32::NAN, 50.0 + 200.0 * r.unit() as f32),
                EventKind::Complaint | EventKind::ComplaintResolved | EventKind::TicketClosed => {
                    (f32::NAN, 5.0 + 40.0 * r.unit() as f32)
                }
                _ => (f32::NAN, f32::NAN),
            };
            let category = cat_for(kind, r);
            push(
                Ev {
                    ts,
                    account: a,
                    kind,
                    amount,
                    cost,
                    category,
                },
                by_month,
            );
        };
        if contractual {
            add(EventKind::Signup, start, &mut r, &mut by_month);
            total += 1;
            if r.below(4) == 0 {
                end = start + 1 + r.below(DAYS - start - 1);
                add(EventKind::Cancellation, end, &mut r, &mut by_month);
                total += 1;
                if r.below(5) == 0 && end + 2 < DAYS {
                    let back = end + 1 + r.below(DAYS - end - 1);
                    add(EventKind::Signup, back, &mut r, &mut by_month);
                    total += 1;
                }
            }
        }
        for _ in 0..budget {
            let day = start + r.below(end - start);
            let kind = if !contractual {
                EventKind::Purchase
            } else {
                match r.below(1000) {
                    0..800 => EventKind::Activity,
                    800..880 => EventKind::Purchase,
                    880..910 => EventKind::TicketOpened,
                    910..930 => EventKind::TicketClosed,
                    930..950 => EventKind::Complaint,
                    950..965 => EventKind::ComplaintResolved,
                    965..980 => EventKind::Survey,
                    980..990 => EventKind::Meeting,
                    990..995 => EventKind::Renewal,
                    _ => EventKind::Downgrade,
                }
            };
            add(kind, day, &mut r, &mut by_month);
            total += 1;
        }
    }
    let store = SegmentStore::open("events", dir.join("events"), vigil_engine::schema::event_schema(), "ts").unwrap();
    let write_events = store.segments().is_empty();
    if !write_events {
        println!(
            "{} already holds events: writing accounts and health only",
            dir.display()
        );
    }
    let mut id = 0u64;
    for month in by_month.iter_mut().filter(|_| write_events) {
        month.sort_by_key(|e| e.ts);
        for chunk in month.chunks(1 << 20) {
            let mut b = EventBatchBuilder::with_capacity(chunk.len());
            for e in chunk {
                id += 1;
                let account = format!("acc{:06}", e.account);
                let ev = EventRef {
                    event_id: Cow::Owned(format!("ev{id:010}")),
                    account_id: Cow::Owned(account),
                    ts_ms: e.ts,
                    kind: e.kind,
                    user_id: None,
                    amount: (!e.amount.is_nan()).then_some((e.amount as f64 * 100.0).round() / 100.0),
                    cost: (!e.cost.is_nan()).then_some((e.cost as f64 * 100.0).round() / 100.0),
                    score: None,
                    category: (e.category != 0).then(|| Cow::Borrowed(CATEGORIES[e.category as usize])),
                    attrs: None,
                };
                b.append(&ev, &SourceMeta::default());
            }
            store.append(b.finish()).unwrap();
        }
        store.flush_segment().unwrap();
    }
    // Accounts: 10% key; arr for 80%.
    let accs: Vec<Account> = (0..accounts as u32)
        .map(|a| {
            let mut acc = Account::new(format!("acc{a:06}"));
            acc.name = Some(format!("Account {a}"));
            acc.tier = if r.below(10) == 0 { "key" } else { "standard" }.into();
            acc.arr = (r.below(5) != 0).then(|| (1000.0 + 50000.0 * r.unit()).round());
            acc.owner = Some(format!("owner{}", r.below(20)));
            acc.segment = Some(["enterprise", "mid-market", "smb"][r.below(3) as usize].into());
            acc
        })
        .collect();
    let batch = accounts_batch(&accs).unwrap();
    let mut w = ArrowWriter::try_new(
        File::create(dir.join("accounts.parquet")).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    // Health snapshot: one row per account, through the scoring core's own table builder.
    let n = accounts as usize;
    let mut hb = HealthBatchBuilder::with_capacity(n);
    for (i, acc) in accs.iter().enumerate() {
        let score = (100.0 * r.unit()).round();
        let mut contributions = [None; 7];
        for c in contributions.iter_mut() {
            if r.below(4) != 0 {
                *c = Some(((r.unit() - 0.5) * 20.0 * 10.0).round() / 10.0);
            }
        }
        hb.append(&HealthRow {
            account_id: &acc.account_id,
            key: acc.tier == "key",
            arr: acc.arr,
            owner: acc.owner.as_deref(),
            segment: acc.segment.as_deref(),
            score,
            band: vigil_queries::udf::health_band::band(score),
            churn_risk: r.unit(),
            p_alive: Some(r.unit()),
            rfm: None,
            last_seen_ms: Some(START + (DAYS as i64 - (i % 90) as i64) * DAY),
            cadence_days: Some(1.0 + 30.0 * r.unit()),
            open_tickets: r.below(3) as i64,
            open_complaints: r.below(2) as i64,
            contributions,
            trend_7d: Some(r.unit() - 0.5),
            events_30d: r.below(50) as i64,
            revenue_90d: (1000.0 * r.unit()).round(),
            complaint_cost_90d: (100.0 * r.unit()).round(),
            cancelled: r.below(5) == 0,
            quiet: r.below(20) == 0,
            status: vigil_engine::scoring::AccountStatus::Active,
        });
    }
    let health = hb.finish();
    let mut w = ArrowWriter::try_new(File::create(dir.join("health.parquet")).unwrap(), health_schema(), None).unwrap();
    w.write(&health).unwrap();
    w.close().unwrap();
    println!("generated {total} events for {accounts} accounts in {}", dir.display());
}

async fn run(dir: &Path, iterations: usize) {
    let analyst = Analyst::open_data_dir(dir).await.unwrap();
    let sql_dir = dir.join("sql");
    let res_dir = dir.join("results");
    std::fs::create_dir_all(&sql_dir).unwrap();
    std::fs::create_dir_all(&res_dir).unwrap();
    let mut timings = Vec::new();
    for q in named::builtin() {
        let sql = q.render(&[]).unwrap();
        std::fs::write(sql_dir.join(format!("{}.sql", q.name)), &sql).unwrap();
        let mut ms = Vec::new();
        let mut last = Vec::new();
        for i in 0..=iterations {
            let t = Instant::now();
            let df = analyst.context().sql(&sql).await.unwrap();
            let batches = df.collect().await.unwrap();
            let el = t.elapsed().as_secs_f64() * 1000.0;
            if i > 0 {
                ms.push(el);
            }
            last = batches;
        }
        ms.sort_by(f64::total_cmp);
        let median = ms[ms.len() / 2];
        let rows: usize = last.iter().map(|b| b.num_rows()).sum();
        let schema = analyst.context().sql(&sql).await.unwrap().schema().as_arrow().clone();
        let mut out = File::create(res_dir.join(format!("datafusion_{}.csv", q.name))).unwrap();
        vigil_queries::output::write_batches(&mut out, &Arc::new(schema), &last, vigil_queries::output::Format::Csv)
            .unwrap();
        println!("{:<22} {:>10.1} ms  ({rows} rows)", q.name, median);
        timings.push(format!(
            "{{\"query\":\"{}\",\"median_ms\":{median:.3},\"rows\":{rows}}}",
            q.name
        ));
    }
    std::fs::write(
        dir.join("datafusion_timings.json"),
        format!("[{}]\n", timings.join(",\n")),
    )
    .unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let arg = |i: usize| args.get(i).cloned();
    match arg(0).as_deref() {
        Some("gen") => {
            let dir = PathBuf::from(arg(1).expect("DIR"));
            let events: u64 = arg(2).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
            generate(&dir, events);
        }
        Some("run") => {
            let dir = PathBuf::from(arg(1).expect("DIR"));
            let iterations: usize = arg(2).map(|s| s.parse().unwrap()).unwrap_or(3);
            tokio::runtime::Runtime::new().unwrap().block_on(run(&dir, iterations));
        }
        _ => {
            eprintln!("usage: analyst_sql gen DIR EVENTS | run DIR ITERATIONS (see queries/benches/duckdb_compare.py)")
        }
    }
}
