//! A deterministic stream of contract-v1 events that covers every kind and every optional field
//! in turn: the shared input of the Kafka tests and the end-to-end benchmark.

use vigil_engine::{Event, EventKind};

/// Event `i` of the stream over `accounts` accounts, at `ts_ms`: kind `i mod 13` (every kind in
/// turn), account `(i × 7919) mod accounts` (spread over the accounts), the amount, cost or
/// score the kind carries, a category on every third event, a user on every fourth and attrs on
/// every tenth.
pub fn contract_event(i: usize, accounts: usize, ts_ms: i64) -> Event {
    let kind = EventKind::ALL[i % EventKind::COUNT];
    let mut e = Event::new(
        format!("ev-{i:09}"),
        format!("acct-{:07}", (i * 7919) % accounts),
        ts_ms,
        kind,
    );
    match kind {
        EventKind::Purchase | EventKind::Renewal | EventKind::Downgrade | EventKind::Referral => {
            e.amount = Some((i % 1000) as f64 + 0.25);
        }
        EventKind::Signup | EventKind::Complaint | EventKind::TicketClosed => e.cost = Some((i % 50) as f64 * 1.5),
        EventKind::Survey => e.score = Some((i % 11) as f64),
        _ => {}
    }
    if i.is_multiple_of(3) {
        e.category = Some(format!("cat-{}", i % 5));
    }
    if i.is_multiple_of(4) {
        e.user_id = Some(format!("u{}", i % 97));
    }
    if i.is_multiple_of(10) {
        e.attrs = Some(format!(r#"{{"n":{i}}}"#));
    }
    e
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn covers_every_kind_and_field_and_validates() {
        let events: Vec<Event> = (0..130).map(|i| contract_event(i, 10, 1_780_000_000_000)).collect();
        let kinds: BTreeSet<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.len(), EventKind::COUNT);
        assert!(events.iter().any(|e| e.amount.is_some()));
        assert!(events.iter().any(|e| e.cost.is_some()));
        assert!(events.iter().any(|e| e.score.is_some()));
        assert!(events.iter().any(|e| e.attrs.is_some()));
        let accounts: BTreeSet<&str> = events.iter().map(|e| e.account_id.as_str()).collect();
        assert_eq!(accounts.len(), 10);
        for e in &events {
            vigil_engine::decode(e.to_json().as_bytes(), &Default::default(), 1_780_000_000_000)
                .unwrap_or_else(|r| panic!("{e:?}: {r:?}"));
        }
    }
}
