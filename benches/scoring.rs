//! Scoring core benchmark: events/s per core for 8,192-event batches over 1 M accounts, uniform
//! and Zipf-skewed account activity, de-duplication on.
//!
//! Method (see BENCHMARKS.md, "Scoring core"):
//! 1. Pre-generate every batch (generation is not timed).
//! 2. Warm-up: every one of the 1 M accounts gets `WARM_EVENTS_PER_ACCOUNT` events spread over
//!    the 28 days before the measured phase (this also creates the accounts, timed as "cold").
//! 3. Measured phase: `VIGIL_BENCH_BATCHES` batches (default 300) covering 2 simulated days;
//!    each event is up to 6 h older than its batch's time (out of order within the lateness),
//!    1 % are redeliveries of an event of the same batch. Each batch is applied with
//!    `apply_batch` (alerts for the touched accounts evaluated at its end, the default), then
//!    the clock is advanced to the batch's time with `advance_clock` (replay mode: quiet timers,
//!    and the daily sweep of all accounts when the day changes). Both are timed per batch into
//!    HDR histograms. `VIGIL_BENCH_NO_INLINE_EVAL=1` turns `alerts_on_apply` off (alerts
//!    evaluated by `advance_clock` instead), to tell `apply_batch`'s own work from evaluation.
//! 4. Then 2 more days of the same shape, timed the same way ("steady state";
//!    `VIGIL_BENCH_STEADY=0` skips them). The first measured days follow a sparse warm-up, so
//!    their de-duplication tables grow and take fresh memory (page faults while events flow);
//!    by the later days the newest table starts at the size of a full day, but the accounts hold
//!    more daily entries (more of them spill to the heap).
//!    Then (`VIGIL_BENCH_FULL_WINDOW=0` skips it) untimed days at the measured rate up to day
//!    `lateness + 1`, and 2 more timed days ("full window"): every day the de-duplication window
//!    holds is then a full day, and a new day's table is the one of the day that left the window
//!    (no fresh memory). The accounts' entry lists keep growing until the long window is full;
//!    `VIGIL_BENCH_FILL_DAYS=92` fills to day 92 first (about 110 M untimed events, 2 minutes),
//!    where the 90-day window is full and every account evicts a day each day.
//! 5. Baseline, same batches, same run: a pass that reads every column the core reads and
//!    hashes each account id (ahash) and event id (XXH3-128), without state updates.
//!
//! `VIGIL_BENCH_PRETOUCH_MB=N` first maps and writes N MiB for the allocator
//! (`vigil::alloc::pretouch`, `[memory] pretouch_mb`), so that the state grows without page faults.
//!
//! Then criterion measures the baseline pass on one batch, `apply_batch` of a batch whose events
//! were all applied before (redeliveries: the dedup path), and `score` reads.

use std::hint::black_box;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampMillisecondType, UInt8Type};
use arrow::record_batch::RecordBatch;
use criterion::Criterion;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use vigil_engine::scoring::hash::event_id_hash;
use vigil_engine::scoring::intern::Interner;
use vigil_engine::scoring::testing::events_to_batch;
use vigil_engine::scoring::{AccountInfo, ScoringConfig, ScoringCore, Tier};
use vigil_engine::{Event, EventKind};

/// Accounts (1 M; `VIGIL_BENCH_ACCOUNTS` overrides, for experiments).
static ACCOUNTS_N: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("VIGIL_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
});
const BATCH: usize = 8_192;
const WARM_EVENTS_PER_ACCOUNT: usize = 4;
const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z.
const START: i64 = 20_454 * DAY;
/// Fraction of accounts that are key accounts (quiet timers).
const KEY_SHARE: usize = 50; // 1 in 50 = 2 %

/// Kind mix of the measured phase (weights sum to 1000).
const MIX: [(EventKind, u32); 13] = [
    (EventKind::Activity, 700),
    (EventKind::Purchase, 80),
    (EventKind::Renewal, 10),
    (EventKind::TicketOpened, 50),
    (EventKind::TicketClosed, 40),
    (EventKind::Complaint, 20),
    (EventKind::ComplaintResolved, 15),
    (EventKind::Survey, 30),
    (EventKind::Meeting, 30),
    (EventKind::Referral, 5),
    (EventKind::Downgrade, 5),
    (EventKind::Signup, 10),
    (EventKind::Cancellation, 5),
];

fn account_id(i: usize) -> String {
    format!("acct-{i:07}")
}

fn pick_kind(rng: &mut SmallRng) -> EventKind {
    let mut x = rng.random_range(0..1000u32);
    for (k, w) in MIX {
        if x < w {
            return k;
        }
        x -= w;
    }
    EventKind::Activity
}

fn event(rng: &mut SmallRng, id: String, account: usize, ts: i64, kind: EventKind) -> Event {
    let mut e = Event::new(id, account_id(account), ts, kind);
    match kind {
        EventKind::Purchase
        | EventKind::Renewal
        | EventKind::Downgrade
        | EventKind::Cancellation
        | EventKind::Referral => e.amount = Some((rng.random_range(100..100_000u32) as f64) / 100.0),
        EventKind::TicketClosed | EventKind::Complaint | EventKind::ComplaintResolved | EventKind::Signup => {
            e.cost = Some(rng.random_range(0..5_000u32) as f64 / 100.0)
        }
        EventKind::Survey => e.score = Some(rng.random_range(0..=10u32) as f64),
        _ => {}
    }
    e
}

/// Warm-up batches: every account gets `WARM_EVENTS_PER_ACCOUNT` events over 28 days, in time
/// order.
fn warm_batches(rng: &mut SmallRng) -> Vec<RecordBatch> {
    let total = (*ACCOUNTS_N) * WARM_EVENTS_PER_ACCOUNT;
    let span = 28 * DAY;
    let mut out = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..total {
        let account = n % (*ACCOUNTS_N);
        let ts = START - span + (n as i64 * span) / total as i64;
        let kind = if n < (*ACCOUNTS_N) {
            EventKind::Signup
        } else {
            pick_kind(rng)
        };
        batch.push(event(rng, format!("w{n:08}"), account, ts, kind));
        if batch.len() == BATCH {
            out.push(events_to_batch(&batch));
            batch.clear();
        }
    }
    if !batch.is_empty() {
        out.push(events_to_batch(&batch));
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Dist {
    Uniform,
    Zipf,
}

/// Measured batches: `n` batches over 2 days; returns the batches and each batch's time.
fn measured_batches(rng: &mut SmallRng, dist: Dist, n: usize, tag: &str, start: i64) -> Vec<(RecordBatch, i64)> {
    let zipf = Zipf::new((*ACCOUNTS_N) as f64, 1.0).expect("valid zipf");
    let step = 2 * DAY / n as i64;
    let mut out = Vec::with_capacity(n);
    for b in 0..n {
        let t = start + b as i64 * step;
        let mut events: Vec<Event> = Vec::with_capacity(BATCH);
        while events.len() < BATCH {
            if !events.is_empty() && rng.random_range(0..100u32) == 0 {
                let dup = events[rng.random_range(0..events.len())].clone();
                events.push(dup);
                continue;
            }
            let account = match dist {
                Dist::Uniform => rng.random_range(0..(*ACCOUNTS_N)),
                // Rank r (1 = hottest) scattered over the index space so hot accounts are not
                // also the first interned.
                Dist::Zipf => ((zipf.sample(rng) as u64 - 1) * 2_654_435_761 % (*ACCOUNTS_N) as u64) as usize,
            };
            let ts = t - rng.random_range(0..6 * HOUR);
            let kind = pick_kind(rng);
            events.push(event(
                rng,
                format!("{tag}{b:05}-{:05}", events.len()),
                account,
                ts,
                kind,
            ));
        }
        out.push((events_to_batch(&events), t));
    }
    out
}

/// The baseline: read the columns the core reads, hash account ids (the interner's ahash) and
/// event ids (XXH3-128, as the core does).
fn baseline_pass(batch: &RecordBatch, hasher: &Interner) -> u64 {
    let ids = batch.column(0).as_string::<i32>();
    let accounts = batch.column(1).as_string::<i32>();
    let ts = batch.column(2).as_primitive::<TimestampMillisecondType>();
    let kinds = batch.column(3).as_dictionary::<UInt8Type>().keys();
    let amount = batch.column(5).as_primitive::<Float64Type>();
    let mut acc = 0u64;
    for row in 0..batch.num_rows() {
        let a = hasher.hash(accounts.value(row));
        let e = event_id_hash(ids.value(row)) as u64;
        let v = if amount.is_valid(row) {
            amount.value(row).to_bits()
        } else {
            0
        };
        acc = acc.wrapping_add(a ^ e ^ ts.value(row) as u64 ^ kinds.value(row) as u64 ^ v);
    }
    acc
}

/// On-CPU time of this thread in seconds (Linux `/proc/thread-self/schedstat`), to report
/// throughput per CPU-second on a shared machine where wall time includes waiting for a core.
fn cpu_s() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// This thread's minor page faults and its user and system CPU time in clock ticks (Linux
/// `/proc/thread-self/stat` fields 10, 14 and 15), to tell the kernel's share of a phase (page
/// faults on fresh memory) from the core's own work. Zeros where unavailable.
fn thread_stat() -> [i64; 3] {
    let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.rsplit(')').next().unwrap_or("");
    let f: Vec<i64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    match (f.get(7), f.get(11), f.get(12)) {
        (Some(&minflt), Some(&utime), Some(&stime)) => [minflt, utime, stime],
        _ => [0; 3],
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// One timed phase: batches applied, each followed by `advance_clock` to its time.
struct Phase {
    events: u64,
    apply_s: f64,
    advance_s: f64,
    apply_hist: Histogram<u64>,
    total_hist: Histogram<u64>,
    /// Fraction of the phase's wall time this thread was on a CPU.
    cpu_share: f64,
    /// Minor page faults taken in the phase (apply and advance).
    faults: i64,
    /// Share of the phase's CPU time spent in the kernel (page faults), tick-sampled.
    sys_share: f64,
}

struct Report {
    name: String,
    /// The measured phase: the first 2 days at the measured rate after the sparse warm-up (the
    /// de-duplication tables grow and take fresh memory).
    first: Phase,
    /// 2 more days at the same rate (`VIGIL_BENCH_STEADY=0` skips them): the newest table starts
    /// at a full day's size, but the accounts hold more daily entries.
    steady: Option<Phase>,
    /// 2 days after every day in the de-duplication window was at the measured rate
    /// (`VIGIL_BENCH_FULL_WINDOW=0` skips them): a day's table is the one of the day that left
    /// the window, no fresh memory.
    full_window: Option<Phase>,
    baseline_s: f64,
    cold_events: u64,
    cold_s: f64,
}

#[inline(never)]
fn measure(core: &mut ScoringCore, batches: &[(RecordBatch, i64)], dist: Dist, label: &str) -> Phase {
    let (mut apply_hist, mut total_hist) = (hist(), hist());
    let cpu0 = cpu_s();
    let st0 = thread_stat();
    let wall0 = Instant::now();
    let (mut apply_s, mut advance_s, mut events) = (0.0, 0.0, 0u64);
    let mut alerts = 0usize;
    let slow_us: Option<u64> = std::env::var("VIGIL_BENCH_SLOW_US").ok().and_then(|v| v.parse().ok());
    for (i, (b, t_batch)) in batches.iter().enumerate() {
        let t0 = Instant::now();
        let out = core.apply_batch(b).expect("valid");
        let t1 = Instant::now();
        alerts += out.alerts.len() + core.advance_clock(*t_batch).len();
        let t2 = Instant::now();
        let (a, v) = ((t1 - t0).as_nanos() as u64, (t2 - t1).as_nanos() as u64);
        if slow_us.is_some_and(|s| a / 1000 >= s) {
            eprintln!("[{dist:?}] {label} batch {i}: apply_batch {} us", a / 1000);
        }
        apply_hist.record(a.max(1)).expect("in range");
        total_hist.record((a + v).max(1)).expect("in range");
        apply_s += (t1 - t0).as_secs_f64();
        advance_s += (t2 - t1).as_secs_f64();
        events += b.num_rows() as u64;
    }
    let wall_s = wall0.elapsed().as_secs_f64();
    let cpu_share = match (cpu0, cpu_s()) {
        (Some(a), Some(b)) if wall_s > 0.0 => ((b - a) / wall_s).min(1.0),
        _ => 1.0,
    };
    eprintln!("[{dist:?}] {label}: {events} events, {alerts} alerts, on-CPU share {cpu_share:.2}");
    let st1 = thread_stat();
    let (faults, user, sys) = (st1[0] - st0[0], st1[1] - st0[1], st1[2] - st0[2]);
    Phase {
        events,
        apply_s,
        advance_s,
        apply_hist,
        total_hist,
        cpu_share,
        faults,
        sys_share: if user + sys > 0 {
            sys as f64 / (user + sys) as f64
        } else {
            0.0
        },
    }
}

/// Whether the optional phase switched by the environment variable `var` runs (`var=0` skips
/// it).
fn phase_on(var: &str) -> bool {
    std::env::var(var).map_or(true, |v| v != "0")
}

fn run(dist: Dist, n_batches: usize, seed: u64) -> (Report, ScoringCore) {
    let mut rng = SmallRng::seed_from_u64(seed);
    eprintln!(
        "[{dist:?}] generating {} warm-up + {n_batches} measured batches...",
        (*ACCOUNTS_N) * WARM_EVENTS_PER_ACCOUNT / BATCH
    );
    let warm = warm_batches(&mut rng);
    let measured = measured_batches(&mut rng, dist, n_batches, "m", START);
    let steady_on = phase_on("VIGIL_BENCH_STEADY");
    let steady = steady_on.then(|| measured_batches(&mut rng, dist, n_batches, "s", START + 2 * DAY));
    let mut cfg = ScoringConfig::default();
    if std::env::var_os("VIGIL_BENCH_NO_INLINE_EVAL").is_some() {
        cfg.alerts_on_apply = false;
    }
    let mut core = ScoringCore::new(cfg).expect("default config");
    for i in (0..(*ACCOUNTS_N)).step_by(KEY_SHARE) {
        core.upsert_account(AccountInfo {
            account_id: account_id(i),
            tier: Tier::Key,
            ..AccountInfo::default()
        });
    }
    // Cold phase: creates the accounts.
    let t = Instant::now();
    let mut cold_events = 0u64;
    for b in &warm {
        cold_events += core.apply_batch(b).expect("valid").applied as u64;
    }
    let cold_s = t.elapsed().as_secs_f64();
    core.advance_clock(START - HOUR);
    eprintln!("[{dist:?}] warm-up done: {cold_events} events in {cold_s:.2} s");

    // Baseline over the measured batches.
    let hasher = Interner::default();
    let t = Instant::now();
    let mut sink = 0u64;
    for (b, _) in &measured {
        sink ^= baseline_pass(b, &hasher);
    }
    let baseline_s = t.elapsed().as_secs_f64();
    black_box(sink);

    let first = measure(&mut core, &measured, dist, "measured");
    let steady = steady.map(|batches| measure(&mut core, &batches, dist, "steady state"));
    let full_window = phase_on("VIGIL_BENCH_FULL_WINDOW").then(|| {
        // Untimed days at the measured rate until the first measured day has left the
        // de-duplication window (or to day `VIGIL_BENCH_FILL_DAYS`, e.g. 92 for a full 90-day
        // window, where every account evicts a day each day), then two timed days.
        let lateness = core.config().lateness_days as i64;
        let fill_to = std::env::var("VIGIL_BENCH_FILL_DAYS")
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            .max(lateness + 1);
        let mut day = if steady.is_some() { 4 } else { 2 };
        let t = Instant::now();
        while day < fill_to {
            let fill = measured_batches(&mut rng, dist, n_batches, &format!("f{day}-"), START + day * DAY);
            for (b, t_batch) in &fill {
                core.apply_batch(b).expect("valid");
                core.advance_clock(*t_batch);
            }
            day += 2;
        }
        eprintln!(
            "[{dist:?}] filled the window to day {day} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let batches = measured_batches(&mut rng, dist, n_batches, "w", START + day * DAY);
        eprintln!("[{dist:?}] measuring the full window");
        measure(&mut core, &batches, dist, "full window")
    });
    (
        Report {
            name: format!("{dist:?}"),
            first,
            steady,
            full_window,
            baseline_s,
            cold_events,
            cold_s,
        },
        core,
    )
}

fn print_phase(r: &Phase, label: &str, baseline_s: f64) {
    let eps = |secs: f64| r.events as f64 / secs / 1e6;
    println!(
        "{label}apply_batch: {:.2} M events/s ({:.2}x baseline time)",
        eps(r.apply_s),
        r.apply_s / baseline_s
    );
    println!(
        "{label}apply_batch + advance_clock (incl. daily sweeps): {:.2} M events/s ({:.2}x baseline time)",
        eps(r.apply_s + r.advance_s),
        (r.apply_s + r.advance_s) / baseline_s
    );
    println!(
        "{label}on-CPU share: {:.2}; apply_batch per CPU-second: {:.2} M events/s, apply+advance: {:.2} M events/s; at the median batch: {:.2} M events/s",
        r.cpu_share,
        eps(r.apply_s * r.cpu_share),
        eps((r.apply_s + r.advance_s) * r.cpu_share),
        BATCH as f64 / (us(&r.apply_hist, 0.5) / 1e6) / 1e6
    );
    println!(
        "{label}page faults: {} ({:.1} per 1000 events); kernel share of CPU time: {:.0} %",
        r.faults,
        r.faults as f64 * 1000.0 / r.events as f64,
        r.sys_share * 100.0
    );
    println!(
        "{label}per-batch latency apply: p50 {:.0} us, p99 {:.0} us, p999 {:.0} us, max {:.0} us",
        us(&r.apply_hist, 0.5),
        us(&r.apply_hist, 0.99),
        us(&r.apply_hist, 0.999),
        r.apply_hist.max() as f64 / 1000.0
    );
    println!(
        "{label}per-batch latency apply+advance: p50 {:.0} us, p99 {:.0} us, p999 {:.0} us, max {:.0} us",
        us(&r.total_hist, 0.5),
        us(&r.total_hist, 0.99),
        us(&r.total_hist, 0.999),
        r.total_hist.max() as f64 / 1000.0
    );
}

fn print_report(r: &Report, core: &ScoringCore) {
    let s = core.stats();
    let eps = |secs: f64| r.first.events as f64 / secs / 1e6;
    println!(
        "== scoring core, {} account activity, {} accounts, batches of {BATCH} ==",
        r.name, s.accounts
    );
    println!(
        "cold (creating accounts): {:.2} M events/s ({} events)",
        r.cold_events as f64 / r.cold_s / 1e6,
        r.cold_events
    );
    println!(
        "baseline (read columns + hash ids): {:.2} M events/s",
        eps(r.baseline_s)
    );
    print_phase(&r.first, "", r.baseline_s);
    if let Some(p) = &r.steady {
        print_phase(p, "steady state (2 more days) ", r.baseline_s);
    }
    if let Some(p) = &r.full_window {
        print_phase(
            p,
            "full window (2 days after a lateness of days at the measured rate) ",
            r.baseline_s,
        );
    }
    println!(
        "state: {:.0} B/account ({} B struct + entries/ids/interner), {:.2} day entries/account; dedup: {} ids, {:.1} B/id; timers {}",
        s.state_bytes_per_account,
        s.account_struct_bytes,
        s.day_entries as f64 / s.accounts as f64,
        s.dedup_entries,
        s.dedup_bytes_per_id,
        s.timers
    );
    println!(
        "applied {} duplicates {} late {}",
        s.applied_total, s.duplicates_total, s.late_total
    );
    // Read paths.
    let t = Instant::now();
    let table = core.health_batch();
    println!(
        "health_batch: {} rows in {:.2} s",
        table.num_rows(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let snap = core.snapshot();
    let snap_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = ScoringCore::restore(&snap).expect("restore");
    println!(
        "snapshot: {:.0} MB in {:.2} s, restore {:.2} s",
        snap.len() as f64 / 1e6,
        snap_s,
        t.elapsed().as_secs_f64()
    );
    drop(back);
}

fn criterion_part(core: &mut ScoringCore) {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut rng = SmallRng::seed_from_u64(99);
    // Fresh ids for every iteration: a pool of generated batches, consumed once each.
    let pool = measured_batches(&mut rng, Dist::Uniform, 160, "c", START);
    let hasher = Interner::default();
    let mut g = c.benchmark_group("scoring_batch_8192_uniform");
    g.throughput(criterion::Throughput::Elements(BATCH as u64));
    g.bench_function("baseline_read_and_hash", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(baseline_pass(&pool[i % pool.len()].0, &hasher))
        })
    });
    // Batches applied once before: every event is a redelivery (full dedup lookup, no state
    // change). Fresh batches cannot be repeated, so the fresh-batch figure is the HDR run above.
    for (b, _) in &pool {
        core.apply_batch(b).expect("valid");
    }
    let mut next = 0usize;
    g.bench_function("apply_batch_all_redeliveries", |b| {
        b.iter(|| {
            next += 1;
            black_box(core.apply_batch(&pool[next % pool.len()].0).expect("valid"))
        })
    });
    g.finish();
    let ids: Vec<String> = (0..1000)
        .map(|_| account_id(rng.random_range(0..(*ACCOUNTS_N))))
        .collect();
    c.bench_function("score_1000_random_accounts", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for id in &ids {
                sum += core.score(id).map_or(0.0, |s| s.score);
            }
            black_box(sum)
        })
    });
    c.final_summary();
}

fn main() {
    // The `vigil` binary's allocator setting (the allocator itself comes with the `vigil` crate).
    vigil::alloc::use_huge_pages();
    // `[memory] pretouch_mb` of `vigil.toml`: the process's memory mapped and written up front.
    if let Some(mb) = std::env::var("VIGIL_BENCH_PRETOUCH_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let t = Instant::now();
        let areas = vigil::alloc::pretouch(mb).expect("pretouch");
        let mib: usize = areas.iter().map(|a| a.len >> 20).sum();
        eprintln!("pretouched {mib} MiB in {:.2} s", t.elapsed().as_secs_f64());
    }
    let n_batches: usize = std::env::var("VIGIL_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (uniform, mut core) = run(Dist::Uniform, n_batches, 1);
    print_report(&uniform, &core);
    if std::env::var_os("VIGIL_BENCH_SKIP_CRITERION").is_none() {
        criterion_part(&mut core);
    }
    drop(core);
    if std::env::var_os("VIGIL_BENCH_ONLY_UNIFORM").is_some() {
        return;
    }
    let (zipf, core) = run(Dist::Zipf, n_batches, 2);
    print_report(&zipf, &core);
}
