//! `vigil replay` as a process: a JSON Lines backfill with invalid lines, duplicates and events
//! out of order (exact summary counts, alerts in event time, plain progress lines, the history
//! that `vigil sql` reads afterwards), the same result in small batches, late events and their
//! warning with `--assume-sorted`, and a Parquet replay of the history segment it wrote; a
//! generated two-year history of 2,000 accounts gives the same health table whether its file is
//! in time order or shuffled (sorted in memory, or spilling to disk).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use vigil_engine::{Event, EventKind};

use common::vigil;

/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn ev(id: &str, account: &str, ts: i64, kind: &str) -> String {
    format!(r#"{{"event_id":"{id}","account_id":"{account}","ts":{ts},"kind":"{kind}"}}"#)
}

/// The events file and what replaying it must report:
///
/// - `acme` (a key account in the config): activity daily at 10:00 on days 0-9 — 10 events;
///   with k = 3 it goes quiet 3 usual gaps after day 9 10:00: one `quiet` alert, raised in
///   event time (the file's last event is on day 20). See [`acme_quiet_at`] for the gap.
/// - `beta`: activity daily at 12:00 on days 0-20 — 21 events.
/// - `gamma`: complaints on days 14, 15, 16 — 3 events: one `complaint_spike` (3 in 7 days).
/// - 3 duplicates: exact copies of acme day 3, beta day 7, gamma day 15, each two days of the
///   file after its original (within the lateness, so they are duplicates and not late).
/// - 2 events of `acme` 20 days before day 0, after everything else. The replay sorts the events
///   by time first, so they are applied (before everything else). With `--assume-sorted` they
///   are older than the watermark (day 20 12:00 − 7 days) when read: late, not applied.
/// - 5 invalid lines: not_json ×2, unknown_kind, missing_field (no ts), negative_money; and a
///   blank line, which is not an event at all.
///
/// Applied 10 + 21 + 3 + 2 = 36 (34 and 2 late with `--assume-sorted`); valid rows 36 + 3 = 39.
/// The `events` history holds the applied events, each id once; late ones go to `late_events`.
fn events_file(path: &Path) {
    let mut lines = Vec::new();
    let mut copies = Vec::new();
    for d in 0..=20 {
        // Copies go out two days after their original.
        if matches!(d, 5 | 9 | 17) {
            lines.push(copies.remove(0));
        }
        if d <= 9 {
            let l = ev(&format!("acme-{d}"), "acme", T0 + d * DAY + 10 * HOUR, "activity");
            if d == 3 {
                copies.push(l.clone());
            }
            lines.push(l);
        }
        let l = ev(&format!("beta-{d}"), "beta", T0 + d * DAY + 12 * HOUR, "activity");
        if d == 7 {
            copies.push(l.clone());
        }
        lines.push(l);
        if (14..=16).contains(&d) {
            let l = ev(&format!("gamma-{d}"), "gamma", T0 + d * DAY + 15 * HOUR, "complaint");
            if d == 15 {
                copies.push(l.clone());
            }
            lines.push(l);
        }
        match d {
            2 => lines.push("this is not json".into()),
            5 => lines.push(String::new()),
            6 => lines.push(format!(
                r#"{{"event_id":"bad-kind","account_id":"beta","ts":{},"kind":"teleport"}}"#,
                T0 + 6 * DAY
            )),
            8 => lines.push(r#"{"event_id":"bad-ts","account_id":"beta","kind":"activity"}"#.into()),
            11 => lines.push(format!(
                r#"{{"event_id":"bad-money","account_id":"beta","ts":{},"kind":"purchase","amount":-5}}"#,
                T0 + 11 * DAY
            )),
            13 => lines.push(r#"{"event_id":"trunc"#.into()),
            _ => {}
        }
    }
    assert!(copies.is_empty());
    lines.push(ev("late-1", "acme", T0 - 20 * DAY, "activity"));
    lines.push(ev("late-2", "acme", T0 - 20 * DAY + HOUR, "meeting"));
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// When `acme` is quiet: 3 usual gaps after day 9 10:00. The usual gap is exp of an EWMA
/// (α = 0.2) of the log gaps between its days of interaction. Sorted, its two old events count:
/// one gap of 20 days (day −20 to day 0), then nine of 1 day, so exp(ln 20 × 0.8⁹) ≈ 1.49 days.
/// With `--assume-sorted` they are late and every gap is 1 day.
fn acme_quiet_at(with_old_events: bool) -> i64 {
    let gap_days = if with_old_events {
        (20f64.ln() * 0.8f64.powi(9)).exp()
    } else {
        1.0
    };
    T0 + 9 * DAY + 10 * HOUR + (3.0 * gap_days * DAY as f64) as i64
}

const SUMMARY: &str = "replay: applied=36 invalid=5 [missing_field=1 negative_money=1 not_json=2 unknown_kind=1] \
                       duplicates=3 late=0 alerts=2 accounts=3";
/// The same file replayed with `--assume-sorted`.
const SUMMARY_AS_READ: &str = "replay: applied=34 invalid=5 [missing_field=1 negative_money=1 not_json=2 \
                               unknown_kind=1] duplicates=3 late=2 alerts=2 accounts=3";

/// A vigil.toml (valid for `vigil run`; replay uses its accounts and data_dir).
fn config(dir: &Path, data_dir: &Path) -> std::path::PathBuf {
    let path = dir.join("vigil.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n\n[source]\nbrokers = \"localhost:9\"\ntopics = [\"interactions\"]\n\
             group_id = \"replay-test\"\n\n[[accounts]]\naccount_id = \"acme\"\ntier = \"key\"\n",
            data_dir.to_str().unwrap()
        ),
    )
    .unwrap();
    path
}

/// `vigil replay FILE --config CFG --data-dir DATA EXTRA...`.
fn replay_with(file: &Path, cfg: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "replay",
        file.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    vigil(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The summary line (the last line of stdout) and the alert lines before it.
fn summary_and_alerts(out: &Output) -> (String, Vec<serde_json::Value>) {
    let text = stdout(out);
    let mut lines: Vec<&str> = text.lines().collect();
    let summary = lines.pop().expect("a summary line").to_string();
    let alerts = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line {l}: {e}")))
        .collect();
    (summary, alerts)
}

fn sql(data_dir: &Path, query: &str) -> String {
    stdout(&vigil(&[
        "sql",
        query,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--format",
        "csv",
    ]))
}

fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    files
}

#[test]
fn jsonl_then_parquet_replay_counts_alerts_progress_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("events.jsonl");
    events_file(&file);
    let size = std::fs::metadata(&file).unwrap().len();
    let data = tmp.path().join("data");
    let cfg = config(tmp.path(), &data);

    let out = vigil(&["replay", file.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    let (summary, alerts) = summary_and_alerts(&out);
    assert_eq!(summary, SUMMARY);
    // The alerts, as JSON lines, in event time: acme quiet from its last activity on day 9
    // 10:00, gamma's complaint spike from its first complaint day.
    let mut got: Vec<(String, String, i64)> = alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["account_id"].as_str().unwrap().to_string(),
                a["episode_start_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("complaint_spike".to_string(), "gamma".to_string(), T0 + 14 * DAY),
            ("quiet".to_string(), "acme".to_string(), T0 + 9 * DAY + 10 * HOUR),
        ]
    );
    let quiet = alerts.iter().find(|a| a["kind"] == "quiet").unwrap();
    assert_eq!(quiet["at_ms"].as_i64(), Some(acme_quiet_at(true)));
    // stderr is not a terminal here: plain progress lines, a line when the sort starts and one
    // when scoring starts, the last one at the end of the file; no warning.
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        err.contains("replay: read 39 valid events (5 invalid) in ")
            && err.contains(" s; sorting them by event time\n"),
        "progress on stderr:\n{err}"
    );
    assert!(
        err.contains("replay: sorted 39 events by event time in ") && err.contains(" s (in memory); scoring them\n"),
        "{err}"
    );
    assert!(
        err.contains(&format!("replay: {size}/{size} bytes, 39 events, ")),
        "progress on stderr:\n{err}"
    );
    assert!(err.contains(" ev/s\n"), "{err}");
    assert!(!err.contains("warning"), "{err}");

    // History: every applied event once (duplicates left out), the late events apart, and the
    // alerts.
    assert_eq!(
        sql(
            &data,
            "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events"
        ),
        "n,ids\n36,36\n"
    );
    assert_eq!(sql(&data, "SELECT count(*) AS n FROM late_events"), "n\n0\n");
    assert_eq!(
        sql(
            &data,
            "SELECT event_id FROM events WHERE ts < '2026-03-01T00:00:00Z' ORDER BY ts"
        ),
        "event_id\nlate-1\nlate-2\n"
    );
    assert_eq!(
        sql(&data, "SELECT kind, account_id FROM alerts ORDER BY kind"),
        "kind,account_id\ncomplaint_spike,gamma\nquiet,acme\n"
    );
    // The health table as of the end of the replay.
    assert_eq!(
        sql(&data, "SELECT account_id FROM health ORDER BY account_id"),
        "account_id\nacme\nbeta\ngamma\n"
    );

    // Small batches (lockstep with the clock): the same result.
    let data_small = tmp.path().join("data-small");
    let out = replay_with(&file, &cfg, &data_small, &["--batch-rows", "4", "--quiet"]);
    assert_eq!(stdout(&out), format!("{SUMMARY}\n"), "--quiet prints only the summary");
    assert_eq!(sql(&data_small, "SELECT count(*) AS n FROM events"), "n\n36\n");

    // --assume-sorted: the events are scored as they are read, so the two old ones at the end are
    // late (acme's cadence is then one day), and a warning says how many and why.
    let data_as_read = tmp.path().join("data-as-read");
    let out = replay_with(&file, &cfg, &data_as_read, &["--assume-sorted"]);
    let (summary, alerts) = summary_and_alerts(&out);
    assert_eq!(summary, SUMMARY_AS_READ);
    let quiet = alerts.iter().find(|a| a["kind"] == "quiet").unwrap();
    assert_eq!(quiet["at_ms"].as_i64(), Some(acme_quiet_at(false)));
    assert_eq!(acme_quiet_at(false), T0 + 12 * DAY + 10 * HOUR);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("replay: warning: 2 of 39 valid events (5.1 %) were late (older than the greatest event time"),
        "{err}"
    );
    assert!(err.contains("replay it without --assume-sorted"), "{err}");
    assert!(!err.contains("sorting them"), "no sort with --assume-sorted:\n{err}");
    assert_eq!(sql(&data_as_read, "SELECT count(*) AS n FROM events"), "n\n34\n");
    assert_eq!(
        sql(&data_as_read, "SELECT event_id FROM late_events ORDER BY event_id"),
        "event_id\nlate-1\nlate-2\n"
    );

    // Parquet: the history segment the first replay wrote, into a fresh data directory.
    let segments = parquet_files(&data.join("events"));
    assert_eq!(segments.len(), 1, "{segments:?}");
    let fresh = tmp.path().join("fresh");
    let out = replay_with(&segments[0], &cfg, &fresh, &[]);
    let (summary, alerts) = summary_and_alerts(&out);
    assert_eq!(
        summary,
        "replay: applied=36 invalid=0 duplicates=0 late=0 alerts=2 accounts=3"
    );
    assert_eq!(alerts.len(), 2);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("replay: 36/36 rows, 36 events, "), "{err}");
    assert_eq!(sql(&fresh, "SELECT count(*) AS n FROM events"), "n\n36\n");
}

#[test]
fn parquet_rows_are_cast_to_the_event_schema_and_bad_rows_counted() {
    let tmp = tempfile::tempdir().unwrap();
    // Only the required columns, `kind` as plain text (not the dictionary vigil writes), one
    // unknown kind and one row without an account.
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("account_id", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("kind", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["p1", "p2", "p3", "p4"])),
            Arc::new(StringArray::from(vec![Some("a"), Some("a"), Some("b"), None])),
            Arc::new(TimestampMillisecondArray::from(vec![T0, T0 + HOUR, T0 + 2 * HOUR, T0])),
            Arc::new(StringArray::from(vec!["activity", "purchase", "teleport", "activity"])),
        ],
    )
    .unwrap();
    let file = tmp.path().join("events.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let data = tmp.path().join("data");
    let out = vigil(&["replay", file.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    let (summary, alerts) = summary_and_alerts(&out);
    assert_eq!(
        summary,
        "replay: applied=2 invalid=2 [missing_field=1 unknown_kind=1] duplicates=0 late=0 alerts=0 accounts=1"
    );
    assert!(alerts.is_empty());
    assert_eq!(
        sql(&data, "SELECT event_id, kind FROM events ORDER BY event_id"),
        "event_id,kind\np1,activity\np2,purchase\n"
    );
}

/// A replay is kept in the data directory as a whole: the same file replayed again changes no
/// table (its content is recognised), another file continues from the state the first left,
/// and history a crashed replay left past the last checkpoint is dropped.
#[test]
fn replaying_the_same_file_twice_changes_nothing_and_another_file_adds_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("events.jsonl");
    events_file(&file);
    let data = tmp.path().join("data");
    let cfg = config(tmp.path(), &data);
    let replay = |f: &Path| replay_with(f, &cfg, &data, &["--quiet"]);
    let queries = [
        "SELECT * FROM health ORDER BY account_id",
        "SELECT event_id, account_id, ts FROM events ORDER BY event_id",
        "SELECT event_id FROM late_events ORDER BY event_id",
        "SELECT alert_id, kind, account_id FROM alerts ORDER BY alert_id",
        "SELECT * FROM complaint_costs",
    ];
    let answers = || queries.map(|q| sql(&data, q));
    assert_eq!(stdout(&replay(&file)), format!("{SUMMARY}\n"));
    let once = answers();
    assert!(once[1].lines().count() == 37, "36 events and the header:\n{}", once[1]);

    // The same file again (also under another name): nothing changes.
    let copy = tmp.path().join("copy.jsonl");
    std::fs::copy(&file, &copy).unwrap();
    for f in [&file, &copy] {
        let out = replay(f);
        assert_eq!(
            stdout(&out),
            "replay: applied=0 invalid=0 duplicates=0 late=0 alerts=0 accounts=3 (already replayed: nothing changed)\n"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("was replayed into"));
        assert_eq!(answers(), once, "a second replay of {} changed a table", f.display());
    }

    // A segment a crashed replay wrote past the checkpoint (numbered after it) is dropped.
    let events_dir = data.join("events");
    let segments = parquet_files(&events_dir);
    let orphan = events_dir.join("_-0-000000000099.parquet");
    std::fs::copy(&segments[0], &orphan).unwrap();

    // Another file, later in time: applied on top of the first one's state.
    let next = tmp.path().join("next.jsonl");
    std::fs::write(
        &next,
        [
            ev("delta-1", "delta", T0 + 21 * DAY, "activity"),
            ev("beta-21", "beta", T0 + 21 * DAY + HOUR, "activity"),
            // A copy of an event of the first file within the lateness: a duplicate.
            ev("beta-20", "beta", T0 + 20 * DAY + 12 * HOUR, "activity"),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    assert_eq!(
        stdout(&replay(&next)),
        "replay: applied=2 invalid=0 duplicates=1 late=0 alerts=0 accounts=4\n"
    );
    assert!(!orphan.exists(), "the crashed replay's segment is gone");
    assert_eq!(
        sql(
            &data,
            "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events"
        ),
        "n,ids\n38,38\n"
    );
    assert_eq!(
        sql(&data, "SELECT account_id FROM health ORDER BY account_id"),
        "account_id\nacme\nbeta\ndelta\ngamma\n"
    );

    // A file older than what the data directory holds: late against its state, and said so.
    let older = tmp.path().join("older.jsonl");
    std::fs::write(&older, ev("epsilon-1", "epsilon", T0 + DAY, "activity") + "\n").unwrap();
    let out = replay(&older);
    assert_eq!(
        stdout(&out),
        "replay: applied=0 invalid=0 duplicates=0 late=1 alerts=0 accounts=4\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("older than what earlier replays into this data directory left"),
        "{err}"
    );
    assert_eq!(sql(&data, "SELECT event_id FROM late_events"), "event_id\nepsilon-1\n");
}

/// 2024-01-01T00:00:00Z: generated histories span the two years from here.
const HISTORY_START: i64 = 1_704_067_200_000;
const HISTORY_DAYS: i64 = 730;

/// One line of a generated file: its event's time and id, and the JSON.
struct Line {
    ts: i64,
    id: String,
    json: String,
}

/// A random amount in `lo..hi`, in cents.
fn money(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    (rng.random_range(lo..hi) * 100.0).round() / 100.0
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// A contract-v1 history of `accounts` accounts over two years, deterministic for `seed`, in no
/// particular time order: each account signs up in the first year (acquisition cost, channel),
/// then the rest of `events` distinct events fall uniformly over the two years on uniformly
/// chosen accounts, with every other kind in realistic shares and the amount, cost, score and
/// category each kind carries; one event in 200 is followed by an exact copy of itself (a
/// duplicate, not counted in `events`).
fn history(seed: u64, events: usize, accounts: usize) -> Vec<Line> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out: Vec<Line> = Vec::with_capacity(events + events / 100);
    let push = |rng: &mut StdRng, out: &mut Vec<Line>, e: Event| {
        let line = Line {
            ts: e.ts_ms,
            id: e.event_id.clone(),
            json: e.to_json(),
        };
        if rng.random_range(0..200) == 0 {
            out.push(Line {
                ts: line.ts,
                id: line.id.clone(),
                json: line.json.clone(),
            });
        }
        out.push(line);
    };
    let account = |a: usize| format!("acct-{a:05}");
    for a in 0..accounts.min(events) {
        let ts = HISTORY_START + rng.random_range(0..HISTORY_DAYS / 2 * DAY);
        let mut e = Event::new(format!("ev-{a:08}"), account(a), ts, EventKind::Signup);
        e.cost = Some(money(&mut rng, 100.0, 5_000.0));
        e.category = Some(pick(&mut rng, &["ads", "partner", "outbound", "organic"]).into());
        push(&mut rng, &mut out, e);
    }
    for n in accounts.min(events)..events {
        let a = rng.random_range(0..accounts);
        let ts = HISTORY_START + rng.random_range(0..HISTORY_DAYS * DAY);
        // Shares in 1/1000: activity 480, meeting 80, ticket opened/closed 80/75, purchase 100,
        // survey 60, complaint 35, complaint resolved 25, renewal 25, referral 15, downgrade 10,
        // cancellation 5, signup (a second one) 10.
        let roll = rng.random_range(0..1000);
        let kind = match roll {
            0..480 => EventKind::Activity,
            480..560 => EventKind::Meeting,
            560..640 => EventKind::TicketOpened,
            640..715 => EventKind::TicketClosed,
            715..815 => EventKind::Purchase,
            815..875 => EventKind::Survey,
            875..910 => EventKind::Complaint,
            910..935 => EventKind::ComplaintResolved,
            935..960 => EventKind::Renewal,
            960..975 => EventKind::Referral,
            975..985 => EventKind::Downgrade,
            985..990 => EventKind::Cancellation,
            _ => EventKind::Signup,
        };
        let mut e = Event::new(format!("ev-{n:08}"), account(a), ts, kind);
        match kind {
            EventKind::Signup => {
                e.cost = Some(money(&mut rng, 100.0, 5_000.0));
                e.category = Some("partner".into());
            }
            EventKind::Activity => {
                e.category = Some(pick(&mut rng, &["api", "dashboard", "reports", "export"]).into());
                e.user_id = Some(format!("u{}", rng.random_range(0..20)));
            }
            EventKind::Purchase => {
                e.amount = Some(money(&mut rng, 20.0, 5_000.0));
                e.category = Some(pick(&mut rng, &["core", "addon", "services"]).into());
            }
            EventKind::Renewal => {
                e.amount = Some(money(&mut rng, 2_000.0, 80_000.0));
                e.category = Some(pick(&mut rng, &["team", "business", "enterprise"]).into());
            }
            EventKind::Downgrade | EventKind::Cancellation => {
                e.amount = Some(money(&mut rng, 500.0, 40_000.0));
                e.category = Some(pick(&mut rng, &["price", "product", "support", "budget"]).into());
            }
            EventKind::TicketOpened => e.category = Some(pick(&mut rng, &["billing", "technical"]).into()),
            EventKind::TicketClosed => {
                e.cost = Some(money(&mut rng, 5.0, 250.0));
                e.category = Some(pick(&mut rng, &["billing", "technical"]).into());
            }
            EventKind::Complaint | EventKind::ComplaintResolved => {
                e.cost = Some(money(&mut rng, 10.0, 400.0));
                e.category = Some(pick(&mut rng, &["outage", "billing", "service"]).into());
            }
            EventKind::Survey => {
                e.score = Some(f64::from(rng.random_range(0..=10u8)));
                e.category = Some("nps".into());
            }
            EventKind::Meeting => e.category = Some(pick(&mut rng, &["call", "visit", "qbr"]).into()),
            EventKind::Referral => e.amount = Some(money(&mut rng, 500.0, 20_000.0)),
        }
        if rng.random_range(0..10) == 0 {
            e.attrs = Some(format!(r#"{{"source":"gen","n":{n}}}"#));
        }
        push(&mut rng, &mut out, e);
    }
    out
}

/// Writes `lines` as JSON Lines, then `invalid` lines that are not events.
fn write_lines<'a>(path: &Path, lines: impl IntoIterator<Item = &'a Line>, invalid: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for l in lines {
        writeln!(w, "{}", l.json).unwrap();
    }
    for i in 0..invalid {
        writeln!(w, "not an event {i}").unwrap();
    }
    w.flush().unwrap();
}

/// The summary: the last stdout line of a replay.
fn summary_line(out: &Output) -> String {
    stdout(out).lines().last().expect("a summary line").to_string()
}

/// The `late=` count of a summary line.
fn late_count(summary: &str) -> u64 {
    let late = summary.split_whitespace().find_map(|w| w.strip_prefix("late="));
    late.and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no late= in {summary}"))
}

/// 200,000 events (and 10 invalid lines) of 2,000 accounts over two years, as a file in time
/// order and as a shuffled one: replayed, both give the same summary with no late event and the
/// same health table, every column; so does the shuffled file sorted through spill files (a
/// small `--sort-memory-mb`). Replayed as read (`--assume-sorted`), the shuffled file loses most
/// events as late, which is what the sort prevents.
#[test]
fn shuffled_and_time_sorted_files_give_the_same_health_table() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = history(20_260_301, 200_000, 2_000);
    assert!(lines.len() > 200_000, "{} lines", lines.len());
    lines.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
    let sorted = tmp.path().join("sorted.jsonl");
    write_lines(&sorted, &lines, 10);
    let mut rng = StdRng::seed_from_u64(7);
    lines.shuffle(&mut rng);
    let shuffled = tmp.path().join("shuffled.jsonl");
    write_lines(&shuffled, &lines, 10);
    let generated = started.elapsed();

    let replay = |file: &Path, data: &Path, extra: &[&str]| -> (String, String, String) {
        let mut args = vec![
            "replay",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let out = vigil(&args);
        let summary = summary_line(&out);
        eprintln!(
            "{summary} ({}{extra:?}: {:.1} s)",
            file.display(),
            t.elapsed().as_secs_f64()
        );
        let err = String::from_utf8(out.stderr).unwrap();
        let health = sql(data, "SELECT * FROM health ORDER BY account_id");
        (summary, health, err)
    };
    let (sorted_summary, sorted_health, _) = replay(&sorted, &tmp.path().join("data-sorted"), &[]);
    let (shuffled_summary, shuffled_health, _) = replay(&shuffled, &tmp.path().join("data-shuffled"), &[]);
    // A small sort memory: the shuffled file is sorted through spill files.
    let (spilled_summary, spilled_health, spilled_err) =
        replay(&shuffled, &tmp.path().join("data-spilled"), &["--sort-memory-mb", "16"]);

    assert_eq!(late_count(&sorted_summary), 0, "{sorted_summary}");
    assert_eq!(late_count(&shuffled_summary), 0, "{shuffled_summary}");
    assert!(
        sorted_summary.contains("invalid=10 [not_json=10] ") && sorted_summary.contains(" accounts=2000"),
        "{sorted_summary}"
    );
    assert!(!sorted_summary.contains("duplicates=0 "), "{sorted_summary}");
    assert_eq!(shuffled_summary, sorted_summary);
    assert_eq!(spilled_summary, sorted_summary);
    assert!(spilled_err.contains(" MiB spilled to disk in "), "{spilled_err}");
    // As read, without the sort.
    let (as_read_summary, _, as_read_err) = replay(&shuffled, &tmp.path().join("data-as-read"), &["--assume-sorted"]);
    let late = late_count(&as_read_summary);
    assert!(late > 150_000, "{as_read_summary}");
    assert!(
        as_read_err.contains(&format!("replay: warning: {late} of 201")),
        "{as_read_err}"
    );

    // Every column of every account, byte for byte.
    eprintln!("{}", sorted_health.lines().take(4).collect::<Vec<_>>().join("\n"));
    assert_eq!(sorted_health.lines().count(), 2_001);
    assert!(sorted_health.starts_with("account_id,"), "{}", &sorted_health[..200]);
    assert!(
        shuffled_health == sorted_health,
        "the health tables differ; first differing line:\n{:?}",
        sorted_health.lines().zip(shuffled_health.lines()).find(|(a, b)| a != b)
    );
    assert!(
        spilled_health == sorted_health,
        "the health tables differ; first differing line:\n{:?}",
        sorted_health.lines().zip(spilled_health.lines()).find(|(a, b)| a != b)
    );
    eprintln!(
        "generated and written in {:.1} s, whole test {:.1} s",
        generated.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Writes the input of the replay memory benchmark (BENCHMARKS.md, "Replay: sorting the input"):
/// `VIGIL_REPLAY_BENCH_EVENTS` (default 1,000,000) distinct events of the generated two-year
/// history over `VIGIL_REPLAY_BENCH_ACCOUNTS` (default 10,000) accounts, shuffled (or in time
/// order with `VIGIL_REPLAY_BENCH_ORDER=sorted`), to the file `VIGIL_REPLAY_BENCH_FILE`. Not a
/// test: `cargo test -p vigil --test replay -- --ignored write_replay_benchmark_file`.
#[test]
#[ignore = "writes the replay benchmark's input file; run on demand"]
fn write_replay_benchmark_file() {
    let path = std::env::var_os("VIGIL_REPLAY_BENCH_FILE").expect("VIGIL_REPLAY_BENCH_FILE: where to write the file");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .map(|v| v.replace('_', "").parse().unwrap_or_else(|_| panic!("{name}: {v}")))
            .unwrap_or(default)
    };
    let mut lines = history(
        1_000_000,
        env("VIGIL_REPLAY_BENCH_EVENTS", 1_000_000),
        env("VIGIL_REPLAY_BENCH_ACCOUNTS", 10_000),
    );
    match std::env::var("VIGIL_REPLAY_BENCH_ORDER").as_deref() {
        Ok("sorted") => lines.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id))),
        Ok("shuffled") | Err(_) => lines.shuffle(&mut StdRng::seed_from_u64(7)),
        Ok(other) => panic!("VIGIL_REPLAY_BENCH_ORDER: {other} (sorted or shuffled)"),
    }
    write_lines(Path::new(&path), &lines, 0);
    eprintln!("{} lines written to {}", lines.len(), Path::new(&path).display());
}

#[test]
fn timestamps_before_1970_are_refused_and_the_named_queries_still_run() {
    // Go's zero time and a negative epoch (common producer bugs) among valid events: both are
    // refused as `ts_out_of_range`; every named query and `SELECT *` over the history answer.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("events.jsonl");
    let mut lines = vec![
        r#"{"event_id":"zero","account_id":"acme","ts":"0001-01-01T00:00:00Z","kind":"activity"}"#.to_string(),
        ev("neg", "acme", -86_400_000, "purchase"),
    ];
    for (i, kind) in ["signup", "activity", "complaint", "purchase", "cancellation"]
        .iter()
        .enumerate()
    {
        lines.push(ev(&format!("ok-{i}"), "acme", T0 + i as i64 * DAY, kind));
    }
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let data = tmp.path().join("data");
    let cfg = config(tmp.path(), &data);
    let out = replay_with(&file, &cfg, &data, &["--quiet"]);
    let summary = stdout(&out);
    assert!(
        out.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("applied=5 invalid=2 [ts_out_of_range=2]"), "{summary}");
    for q in [
        "SELECT * FROM events",
        "SELECT * FROM retention_nday",
        "SELECT * FROM retention_cohorts",
        "SELECT * FROM annual_retention",
        "SELECT * FROM churned_accounts",
        "SELECT * FROM complaint_costs",
        "SELECT * FROM acquisition_cost",
        "SELECT * FROM customer_value",
    ] {
        let out = vigil(&["sql", q, "--data-dir", data.to_str().unwrap(), "--format", "csv"]);
        assert!(out.status.success(), "{q}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
