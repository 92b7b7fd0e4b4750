//! Realistic demo traffic: a few hundred accounts over 90 days of event time — key accounts
//! with steady cadences, complaint bursts, churners who fade and cancel, detractors, new
//! signups, and one key account (`acme-corp`) that goes quiet. Deterministic for a seed.

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use vigil_engine::scoring::{AccountInfo, Tier};
use vigil_engine::{Event, EventKind};

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// Days of history the demo generates.
pub const HISTORY_DAYS: i64 = 90;
/// The key account that goes quiet, and the day (from the start) it stops interacting.
pub const QUIET_ACCOUNT: &str = "acme-corp";
pub const QUIET_FROM_DAY: f64 = 60.0;

/// The generated world: the accounts dimension and every event, sorted by event time.
#[derive(Debug, Clone)]
pub struct DemoData {
    pub accounts: Vec<AccountInfo>,
    pub events: Vec<Event>,
    /// Messages that break the contract (to show the dead-letter path), with the event time
    /// before which each is sent.
    pub invalid: Vec<(i64, String, Vec<u8>)>,
}

struct Profile {
    info: AccountInfo,
    start_day: f64,
    gap_days: f64,
    stop_day: Option<f64>,
    churn_day: Option<f64>,
    burst_day: Option<f64>,
    detractor: bool,
}

fn exp_sample(rng: &mut StdRng, mean: f64) -> f64 {
    let u: f64 = rng.random_range(1e-9..1.0);
    -mean * u.ln()
}

const COMPANIES: [&str; 12] = [
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "wonka",
    "gringotts",
    "oscorp",
];
const OWNERS: [&str; 5] = ["ana", "bo", "chen", "dia", "eli"];

fn profiles(rng: &mut StdRng, n: usize) -> Vec<Profile> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let key = i < 24;
        let id = if i == 0 {
            QUIET_ACCOUNT.to_string()
        } else {
            format!("{}-{i:03}", COMPANIES[i % COMPANIES.len()])
        };
        let arr = if i == 0 {
            480_000.0
        } else if key {
            rng.random_range(120_000.0..600_000.0f64).round()
        } else {
            rng.random_range(4_000.0..60_000.0f64).round()
        };
        let segment = if key {
            "enterprise"
        } else if arr > 30_000.0 {
            "mid-market"
        } else {
            "smb"
        };
        let churner = !key && i % 17 == 5;
        let late_signup = !key && i % 13 == 7;
        out.push(Profile {
            info: AccountInfo {
                account_id: id.clone(),
                name: Some(id.replace('-', " ")),
                tier: if key { Tier::Key } else { Tier::Standard },
                arr: Some(arr),
                owner: Some(OWNERS[i % OWNERS.len()].to_string()),
                segment: Some(segment.to_string()),
            },
            start_day: if late_signup {
                rng.random_range(20.0..70.0)
            } else {
                rng.random_range(0.0..5.0)
            },
            gap_days: if i == 0 {
                1.0
            } else if key {
                rng.random_range(0.3..1.2)
            } else {
                rng.random_range(1.0..6.0)
            },
            stop_day: (i == 0).then_some(QUIET_FROM_DAY),
            churn_day: churner.then(|| rng.random_range(40.0..85.0)),
            burst_day: (i % 29 == 3).then(|| rng.random_range(30.0..80.0)),
            detractor: i % 11 == 4,
        });
    }
    out
}

/// Generates the demo world. `start_ms` is the event time of day 0.
pub fn generate(seed: u64, accounts: usize, start_ms: i64) -> DemoData {
    let mut rng = StdRng::seed_from_u64(seed);
    let profiles = profiles(&mut rng, accounts.max(1));
    let mut events = Vec::new();
    let mut seq = 0u64;
    let mut push = |events: &mut Vec<Event>, p: &Profile, day: f64, kind: EventKind| -> usize {
        seq += 1;
        let ts = start_ms + (day * DAY_MS as f64) as i64;
        events.push(Event::new(format!("demo-{seq:08}"), &p.info.account_id, ts, kind));
        events.len() - 1
    };
    let end = HISTORY_DAYS as f64;
    for p in &profiles {
        let arr = p.info.arr.unwrap_or(0.0);
        let key = p.info.tier == Tier::Key;
        let last_day = p.stop_day.or(p.churn_day).unwrap_or(end).min(end);
        let i = push(&mut events, p, p.start_day, EventKind::Signup);
        events[i].cost = Some(
            if key {
                rng.random_range(8_000.0..20_000.0f64)
            } else {
                rng.random_range(300.0..2_500.0f64)
            }
            .round(),
        );
        events[i].category = Some(["ads", "events", "referral", "outbound"][rng.random_range(0..4)].to_string());
        // Activity: a Poisson process at the account's cadence; churners fade over 20 days.
        let mut day = p.start_day;
        loop {
            let mut gap = exp_sample(&mut rng, p.gap_days);
            if p.info.account_id == QUIET_ACCOUNT {
                gap = rng.random_range(0.8..1.2);
            }
            if let Some(c) = p.churn_day
                && day > c - 20.0
            {
                gap *= 1.0 + 4.0 * (day - (c - 20.0)) / 20.0;
            }
            day += gap;
            if day >= last_day {
                break;
            }
            let kind = if key && rng.random_bool(0.08) {
                EventKind::Meeting
            } else {
                EventKind::Activity
            };
            let i = push(&mut events, p, day, kind);
            events[i].user_id = Some(format!("user-{}", rng.random_range(1..6)));
            events[i].category = Some(["dashboard", "api", "reports", "billing"][rng.random_range(0..4)].to_string());
        }
        // Purchases about monthly; key accounts renew once.
        let mut day = p.start_day + rng.random_range(1.0..20.0);
        while day < last_day {
            let i = push(&mut events, p, day, EventKind::Purchase);
            events[i].amount = Some((arr / 12.0 * rng.random_range(0.8..1.2f64)).round());
            events[i].category = Some("subscription".into());
            day += rng.random_range(25.0..35.0);
        }
        if key && p.start_day + 45.0 < last_day {
            let i = push(&mut events, p, p.start_day + 45.0, EventKind::Renewal);
            events[i].amount = Some(arr);
        }
        // Tickets and complaints, each closed a few days later with a handling cost.
        let mut day = p.start_day;
        loop {
            day += exp_sample(&mut rng, 18.0);
            if day >= last_day {
                break;
            }
            let q = ["billing", "technical", "onboarding"][rng.random_range(0..3)];
            let i = push(&mut events, p, day, EventKind::TicketOpened);
            events[i].category = Some(q.into());
            let close = day + rng.random_range(0.5..4.0);
            if close < end {
                let i = push(&mut events, p, close, EventKind::TicketClosed);
                events[i].category = Some(q.into());
                events[i].cost = Some(rng.random_range(20.0..90.0f64).round());
            }
        }
        let mut complaint_days: Vec<f64> = Vec::new();
        let mut day = p.start_day;
        loop {
            day += exp_sample(&mut rng, if p.detractor { 20.0 } else { 60.0 });
            if day >= last_day {
                break;
            }
            complaint_days.push(day);
        }
        if let Some(b) = p.burst_day.filter(|b| *b < last_day) {
            complaint_days.extend((0..4).map(|k| b + k as f64 * 0.2));
        }
        for (n, day) in complaint_days.into_iter().enumerate() {
            let cat = ["outage", "billing error", "slow support", "missing feature"][n % 4];
            let i = push(&mut events, p, day, EventKind::Complaint);
            events[i].category = Some(cat.into());
            events[i].cost = Some(rng.random_range(40.0..150.0f64).round());
            let close = day + rng.random_range(1.0..8.0);
            if close < end && rng.random_bool(0.7) {
                let i = push(&mut events, p, close, EventKind::ComplaintResolved);
                events[i].category = Some(cat.into());
                events[i].cost = Some(rng.random_range(10.0..60.0f64).round());
            }
        }
        // Surveys monthly; detractors answer low.
        let mut day = p.start_day + rng.random_range(5.0..25.0);
        while day < last_day {
            let i = push(&mut events, p, day, EventKind::Survey);
            let score = if p.detractor {
                rng.random_range(1..6)
            } else {
                rng.random_range(6..11)
            };
            events[i].score = Some(score as f64);
            events[i].category = Some("nps".into());
            day += rng.random_range(25.0..40.0);
        }
        if !p.detractor && rng.random_bool(0.15) {
            let d = rng.random_range(p.start_day..last_day.max(p.start_day + 1.0));
            let i = push(&mut events, p, d.min(end - 0.01), EventKind::Referral);
            events[i].amount = Some(rng.random_range(1_000.0..10_000.0f64).round());
        }
        if let Some(c) = p.churn_day {
            if rng.random_bool(0.5) {
                let i = push(&mut events, p, c - 10.0, EventKind::Downgrade);
                events[i].amount = Some((arr * 0.3).round());
                events[i].category = Some("budget".into());
            }
            let i = push(&mut events, p, c, EventKind::Cancellation);
            events[i].amount = Some(arr);
            events[i].category = Some(["price", "competitor", "support", "no usage"][rng.random_range(0..4)].into());
        }
    }
    events.retain(|e| e.ts_ms < start_ms + HISTORY_DAYS * DAY_MS);
    events.sort_by_key(|e| e.ts_ms);
    let invalid = invalid_messages(&mut rng, start_ms);
    DemoData {
        accounts: profiles.into_iter().map(|p| p.info).collect(),
        events,
        invalid,
    }
}

fn invalid_messages(rng: &mut impl Rng, start_ms: i64) -> Vec<(i64, String, Vec<u8>)> {
    let bodies: [&[u8]; 5] = [
        b"{\"event_id\":\"bad-1\",\"account_id\":\"globex-001\",\"ts\":\"last tuesday\",\"kind\":\"activity\"}",
        b"{\"event_id\":\"bad-2\",\"account_id\":\"globex-001\",\"ts\":1,\"kind\":\"teleport\"}",
        b"{\"event_id\":\"bad-3\",\"account_id\":\"hooli-003\",\"ts\":1,\"kind\":\"purchase\",\"amount\":-10}",
        b"{\"event_id\":\"bad-4\",\"account_id\":\"hooli-003\",\"ts\":1,\"kind\":\"survey\",\"score\":42}",
        b"not even json",
    ];
    bodies
        .iter()
        .map(|b| {
            let at = start_ms + rng.random_range(1..HISTORY_DAYS) * DAY_MS;
            (at, "demo-bad".to_string(), b.to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_account_stops_and_world_is_realistic() {
        let d = generate(7, 300, 0);
        assert_eq!(d.accounts.len(), 300);
        let quiet_last = d
            .events
            .iter()
            .filter(|e| {
                e.account_id == QUIET_ACCOUNT
                    && e.kind != EventKind::TicketClosed
                    && e.kind != EventKind::ComplaintResolved
            })
            .map(|e| e.ts_ms)
            .max()
            .expect("acme has events");
        assert!(quiet_last < (QUIET_FROM_DAY * DAY_MS as f64) as i64);
        assert!(
            quiet_last > ((QUIET_FROM_DAY - 3.0) * DAY_MS as f64) as i64,
            "daily cadence up to the quiet day"
        );
        let count = |k: EventKind| d.events.iter().filter(|e| e.kind == k).count();
        for k in EventKind::ALL {
            assert!(count(k) > 0, "no {k} events");
        }
        assert!(
            d.events.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms),
            "sorted by event time"
        );
        assert_eq!(generate(7, 300, 0).events.len(), d.events.len(), "deterministic");
    }
}
