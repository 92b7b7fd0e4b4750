//! Fuzzing `decode` with proptest: arbitrary bytes, and valid events with bytes flipped, cut,
//! inserted or fields replaced by arbitrary JSON. No input panics; every one is either a valid
//! event (that keeps the contract: ids within their lengths, money finite and ≥ 0, score within
//! 0..=10, `ts` within the accepted range) or refused with one of the contract's reason codes.
//! Bounded by the case count, so it runs in every `cargo test` (CI included).

use proptest::prelude::*;
use vigil_engine::{DecodeLimits, InvalidReason, decode};

const NOW: i64 = 1_780_000_000_000;

const VALID: &str = r#"{"event_id":"e-1","account_id":"acme","ts":"2026-05-01T10:00:00+02:00","kind":"purchase","user_id":"u","amount":12.5,"cost":1,"score":7,"category":"web","attrs":{"a":[1,{"b":null}]}}"#;

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let limits = DecodeLimits {
        max_message_bytes: 4096,
        ..DecodeLimits::default()
    };
    match decode(bytes, &limits, NOW) {
        Ok(e) => {
            prop_assert!(!e.event_id.is_empty() && e.event_id.len() <= 128);
            prop_assert!(!e.account_id.is_empty() && e.account_id.len() <= 128);
            prop_assert!(e.ts_ms >= limits.min_ts_ms && e.ts_ms <= NOW + limits.max_future_skew_ms);
            for m in [e.amount, e.cost].into_iter().flatten() {
                prop_assert!(m.is_finite() && m >= 0.0, "money {m}");
            }
            if let Some(s) = e.score {
                prop_assert!((0.0..=10.0).contains(&s), "score {s}");
            }
        }
        Err(reason) => {
            prop_assert!(InvalidReason::CODES.contains(&reason.code()));
            prop_assert!(!reason.to_string().is_empty());
        }
    }
    Ok(())
}

/// Arbitrary JSON values (as text) to put where a field's value goes.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        "\\PC{0,40}".prop_map(|s| serde_json::Value::String(s).to_string()),
        Just("1e999".to_string()),
        Just("-0".to_string()),
        Just("\"0001-01-01T00:00:00Z\"".to_string()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| {
                let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_events_never_panic(
        at in 0usize..VALID.len(),
        byte in any::<u8>(),
        op in 0u8..3,
    ) {
        let mut b = VALID.as_bytes().to_vec();
        match op {
            0 => b[at] = byte,
            1 => b.truncate(at),
            _ => b.insert(at, byte),
        }
        check(&b)?;
    }

    #[test]
    fn any_json_in_any_field_is_valid_or_refused(
        field in prop::sample::select(vec![
            "event_id", "account_id", "ts", "kind", "user_id", "amount", "cost", "score",
            "category", "attrs", "extra",
        ]),
        value in json_value(),
    ) {
        let mut v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(VALID).expect("valid json");
        v.remove(field);
        let body = serde_json::Value::Object(v).to_string();
        let text = format!("{},\"{field}\":{value}}}", &body[..body.len() - 1]);
        check(text.as_bytes())?;
    }
}
