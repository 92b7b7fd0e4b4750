//! JSON message → validated [`EventRef`] → rows of an event [`RecordBatch`].
//!
//! Validation follows contract v1 exactly; every way a message can be invalid is an
//! [`InvalidReason`]. A message is validated completely before any column is appended, so an
//! invalid message never leaves a partial row behind.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Float64Builder, Int32Builder, Int64Builder, StringArray, StringBuilder,
    TimestampMillisecondBuilder, UInt8Builder,
};
use arrow::datatypes::UInt8Type;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{EngineError, Field, InvalidReason};
use crate::event::{Event, EventKind};
use crate::schema;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    /// Messages larger than this are invalid (`too_large`). Default 1 MiB.
    pub max_message_bytes: usize,
    /// `ts` more than this far ahead of the engine clock is invalid (`future_ts`). Default 1 day.
    pub max_future_skew_ms: i64,
    /// `ts` before this (epoch ms) is invalid (`ts_out_of_range`). Default 0, 1970-01-01: Go's
    /// zero time (`0001-01-01T00:00:00Z`) and other producer bugs stay out, and every accepted
    /// time fits every timestamp type a query may cast it to.
    pub min_ts_ms: i64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_bytes: 1 << 20,
            max_future_skew_ms: 86_400_000,
            min_ts_ms: 0,
        }
    }
}

/// Where a message came from: the metadata columns of the batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceMeta<'a> {
    pub topic: Option<&'a str>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub timestamp_ms: Option<i64>,
}

/// [`SourceMeta`] read back from a batch, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowMeta {
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub timestamp_ms: Option<i64>,
}

/// A validated event borrowing from the message bytes where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRef<'a> {
    pub event_id: Cow<'a, str>,
    pub account_id: Cow<'a, str>,
    pub ts_ms: i64,
    pub kind: EventKind,
    pub user_id: Option<Cow<'a, str>>,
    pub amount: Option<f64>,
    pub cost: Option<f64>,
    pub score: Option<f64>,
    pub category: Option<Cow<'a, str>>,
    pub attrs: Option<&'a str>,
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_owned_event(&self) -> Event {
        Event {
            event_id: self.event_id.to_string(),
            account_id: self.account_id.to_string(),
            ts_ms: self.ts_ms,
            kind: self.kind,
            user_id: self.user_id.as_ref().map(|s| s.to_string()),
            amount: self.amount,
            cost: self.cost,
            score: self.score,
            category: self.category.as_ref().map(|s| s.to_string()),
            attrs: self.attrs.map(str::to_string),
        }
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    account_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cost: Option<&'a RawValue>,
    #[serde(borrow, default)]
    score: Option<&'a RawValue>,
    #[serde(borrow, default)]
    category: Option<&'a RawValue>,
    #[serde(borrow, default)]
    attrs: Option<&'a RawValue>,
}

fn json_type(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't') | Some(b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

fn string_field<'a>(raw: &'a RawValue, field: Field, min: usize, max: usize) -> Result<Cow<'a, str>, InvalidReason> {
    let text = raw.get();
    if !text.starts_with('"') {
        return Err(InvalidReason::WrongType {
            field,
            expected: "string",
            found: json_type(text),
        });
    }
    let value: Cow<'a, str> = if text.contains('\\') {
        Cow::Owned(serde_json::from_str::<String>(text).map_err(|e| InvalidReason::NotJson { detail: e.to_string() })?)
    } else {
        Cow::Borrowed(&text[1..text.len() - 1])
    };
    let len = value.len();
    if len < min || len > max {
        return Err(InvalidReason::BadLength { field, len, min, max });
    }
    Ok(value)
}

fn number_field(raw: &RawValue, field: Field) -> Result<(f64, &str), InvalidReason> {
    let text = raw.get();
    if json_type(text) != "number" {
        return Err(InvalidReason::WrongType {
            field,
            expected: "number",
            found: json_type(text),
        });
    }
    // JSON number syntax is a subset of Rust's float syntax; an exponent out of range gives ±inf.
    let value = text.parse::<f64>().map_err(|_| InvalidReason::NotJson {
        detail: format!("bad number {text}"),
    })?;
    Ok((value, text))
}

fn money_field(raw: &RawValue, field: Field) -> Result<f64, InvalidReason> {
    let (value, text) = number_field(raw, field)?;
    if !value.is_finite() {
        return Err(InvalidReason::NonFiniteMoney {
            field,
            text: text.to_string(),
        });
    }
    if value < 0.0 {
        return Err(InvalidReason::NegativeMoney { field, value });
    }
    Ok(value)
}

fn ts_field(raw: &RawValue) -> Result<i64, InvalidReason> {
    let text = raw.get();
    match json_type(text) {
        "string" => {
            let s = string_field(raw, Field::Ts, 0, usize::MAX)?;
            chrono::DateTime::parse_from_rfc3339(&s)
                .map(|dt| dt.timestamp_millis())
                .map_err(|_| InvalidReason::UnparseableTs { text: s.into_owned() })
        }
        "number" => text
            .parse::<i64>()
            .map_err(|_| InvalidReason::UnparseableTs { text: text.to_string() }),
        found => Err(InvalidReason::WrongType {
            field: Field::Ts,
            expected: "RFC 3339 string or integer epoch milliseconds",
            found,
        }),
    }
}

const ID_MAX: usize = 128;

/// Validates one message against contract v1. `now_ms` is the engine clock, for the future-skew
/// rule. The result borrows from `bytes`.
pub fn decode<'a>(bytes: &'a [u8], limits: &DecodeLimits, now_ms: i64) -> Result<EventRef<'a>, InvalidReason> {
    if bytes.len() > limits.max_message_bytes {
        return Err(InvalidReason::TooLarge {
            size: bytes.len(),
            limit: limits.max_message_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| InvalidReason::NotUtf8 {
        position: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
    if !trimmed.starts_with('{') {
        return Err(match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) => InvalidReason::NotObject {
                found: json_type(raw.get()),
            },
            Err(e) => InvalidReason::NotJson { detail: e.to_string() },
        });
    }
    let raw: RawEvent<'a> = serde_json::from_str(text).map_err(|e| {
        let detail = e.to_string();
        // Valid JSON, but which of two values would be the event's? (serde's wording.)
        match detail
            .strip_prefix("duplicate field `")
            .and_then(|r| r.split('`').next())
        {
            Some(field) if e.is_data() => InvalidReason::DuplicateKey { key: field.to_string() },
            _ => InvalidReason::NotJson { detail },
        }
    })?;

    let required = |v: Option<&'a RawValue>, f: Field| v.ok_or(InvalidReason::MissingField(f));
    let event_id = string_field(required(raw.event_id, Field::EventId)?, Field::EventId, 1, ID_MAX)?;
    let account_id = string_field(required(raw.account_id, Field::AccountId)?, Field::AccountId, 1, ID_MAX)?;
    let ts_ms = ts_field(required(raw.ts, Field::Ts)?)?;
    let kind_raw = required(raw.kind, Field::Kind)?;
    let kind_name = string_field(kind_raw, Field::Kind, 0, usize::MAX)?;
    let kind = EventKind::parse(&kind_name).ok_or_else(|| InvalidReason::UnknownKind {
        kind: kind_name.chars().take(64).collect(),
    })?;
    let user_id = raw
        .user_id
        .map(|r| string_field(r, Field::UserId, 0, ID_MAX))
        .transpose()?;
    let amount = raw.amount.map(|r| money_field(r, Field::Amount)).transpose()?;
    let cost = raw.cost.map(|r| money_field(r, Field::Cost)).transpose()?;
    let score = raw
        .score
        .map(|r| {
            let (value, _) = number_field(r, Field::Score)?;
            if (0.0..=10.0).contains(&value) {
                Ok(value)
            } else {
                Err(InvalidReason::ScoreOutOfRange { value })
            }
        })
        .transpose()?;
    let category = raw
        .category
        .map(|r| string_field(r, Field::Category, 0, ID_MAX))
        .transpose()?;
    let attrs = raw
        .attrs
        .map(|r| {
            let t = r.get();
            if t.starts_with('{') {
                Ok(t)
            } else {
                Err(InvalidReason::WrongType {
                    field: Field::Attrs,
                    expected: "object",
                    found: json_type(t),
                })
            }
        })
        .transpose()?;
    if ts_ms < limits.min_ts_ms {
        return Err(InvalidReason::TsOutOfRange {
            ts_ms,
            min_ms: limits.min_ts_ms,
        });
    }
    if ts_ms > now_ms.saturating_add(limits.max_future_skew_ms) {
        return Err(InvalidReason::FutureTs {
            ts_ms,
            now_ms,
            skew_ms: limits.max_future_skew_ms,
        });
    }
    Ok(EventRef {
        event_id,
        account_id,
        ts_ms,
        kind,
        user_id,
        amount,
        cost,
        score,
        category,
        attrs,
    })
}

/// Builds an event [`RecordBatch`] (schema [`schema::event_schema`]) row by row.
#[derive(Debug)]
pub struct EventBatchBuilder {
    event_id: StringBuilder,
    account_id: StringBuilder,
    ts: TimestampMillisecondBuilder,
    kind: UInt8Builder,
    user_id: StringBuilder,
    amount: Float64Builder,
    cost: Float64Builder,
    score: Float64Builder,
    category: StringBuilder,
    attrs: StringBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    kafka_ts: TimestampMillisecondBuilder,
    rows: usize,
}

impl Default for EventBatchBuilder {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl EventBatchBuilder {
    /// A builder with room for `rows` rows of typical size.
    pub fn with_capacity(rows: usize) -> Self {
        EventBatchBuilder {
            event_id: StringBuilder::with_capacity(rows, rows * 24),
            account_id: StringBuilder::with_capacity(rows, rows * 16),
            ts: TimestampMillisecondBuilder::with_capacity(rows),
            kind: UInt8Builder::with_capacity(rows),
            user_id: StringBuilder::with_capacity(rows, rows * 8),
            amount: Float64Builder::with_capacity(rows),
            cost: Float64Builder::with_capacity(rows),
            score: Float64Builder::with_capacity(rows),
            category: StringBuilder::with_capacity(rows, rows * 8),
            attrs: StringBuilder::with_capacity(rows, rows * 8),
            topic: StringBuilder::with_capacity(rows, rows * 16),
            partition: Int32Builder::with_capacity(rows),
            offset: Int64Builder::with_capacity(rows),
            kafka_ts: TimestampMillisecondBuilder::with_capacity(rows),
            rows: 0,
        }
    }

    /// Rows appended since the last [`EventBatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last finish.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one validated event and its source metadata.
    pub fn append(&mut self, e: &EventRef<'_>, meta: &SourceMeta<'_>) {
        self.event_id.append_value(&e.event_id);
        self.account_id.append_value(&e.account_id);
        self.ts.append_value(e.ts_ms);
        self.kind.append_value(e.kind as u8);
        self.user_id.append_option(e.user_id.as_deref());
        self.amount.append_option(e.amount);
        self.cost.append_option(e.cost);
        self.score.append_option(e.score);
        self.category.append_option(e.category.as_deref());
        self.attrs.append_option(e.attrs);
        self.topic.append_option(meta.topic);
        self.partition.append_option(meta.partition);
        self.offset.append_option(meta.offset);
        self.kafka_ts.append_option(meta.timestamp_ms);
        self.rows += 1;
    }

    /// Validates `bytes` and appends it as a row; on an invalid message nothing is appended.
    pub fn decode_append(
        &mut self,
        bytes: &[u8],
        meta: &SourceMeta<'_>,
        limits: &DecodeLimits,
        now_ms: i64,
    ) -> Result<(), InvalidReason> {
        let e = decode(bytes, limits, now_ms)?;
        self.append(&e, meta);
        Ok(())
    }

    /// Finishes the batch and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        let kind_values: ArrayRef = Arc::new(StringArray::from_iter_values(EventKind::ALL.iter().map(|k| k.as_str())));
        let kind = DictionaryArray::<UInt8Type>::try_new(self.kind.finish(), kind_values)
            .expect("kind codes are always in the fixed dictionary");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(kind),
            Arc::new(self.user_id.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.cost.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.attrs.finish()),
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.kafka_ts.finish().with_timezone("UTC")),
        ];
        self.rows = 0;
        RecordBatch::try_new(schema::event_schema(), columns).expect("columns follow the event schema")
    }
}

/// Reads events and their source metadata back out of an event batch (tests, tools).
pub fn events_from_batch(batch: &RecordBatch) -> Result<Vec<(Event, RowMeta)>, EngineError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
    if batch.schema().fields() != schema::event_schema().fields() {
        return Err(EngineError::Schema(format!("got {:?}", batch.schema())));
    }
    let c = |i: usize| batch.column(i);
    let s = |i: usize| c(i).as_string::<i32>();
    let f = |i: usize| c(i).as_primitive::<Float64Type>();
    let opt_s = |i: usize, row: usize| (!s(i).is_null(row)).then(|| s(i).value(row).to_string());
    let opt_f = |i: usize, row: usize| (!f(i).is_null(row)).then(|| f(i).value(row));
    let kind = c(schema::KIND).as_dictionary::<UInt8Type>();
    let kind_names = kind.values().as_string::<i32>();
    let ts = c(schema::TS).as_primitive::<TimestampMillisecondType>();
    let part = c(schema::KAFKA_PARTITION).as_primitive::<Int32Type>();
    let off = c(schema::KAFKA_OFFSET).as_primitive::<Int64Type>();
    let kts = c(schema::KAFKA_TIMESTAMP).as_primitive::<TimestampMillisecondType>();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let name = kind_names.value(kind.keys().value(row) as usize);
        let kind = EventKind::parse(name).ok_or_else(|| EngineError::Schema(format!("unknown kind {name}")))?;
        let event = Event {
            event_id: s(schema::EVENT_ID).value(row).to_string(),
            account_id: s(schema::ACCOUNT_ID).value(row).to_string(),
            ts_ms: ts.value(row),
            kind,
            user_id: opt_s(schema::USER_ID, row),
            amount: opt_f(schema::AMOUNT, row),
            cost: opt_f(schema::COST, row),
            score: opt_f(schema::SCORE, row),
            category: opt_s(schema::CATEGORY, row),
            attrs: opt_s(schema::ATTRS, row),
        };
        let meta = RowMeta {
            topic: opt_s(schema::KAFKA_TOPIC, row),
            partition: (!part.is_null(row)).then(|| part.value(row)),
            offset: (!off.is_null(row)).then(|| off.value(row)),
            timestamp_ms: (!kts.is_null(row)).then(|| kts.value(row)),
        };
        out.push((event, meta));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn base(extra: &str) -> String {
        format!(r#"{{"event_id":"e1","account_id":"acme","ts":1779000000000,"kind":"purchase"{extra}}}"#)
    }

    #[test]
    fn valid_messages_decode_to_exact_values() {
        // (message, check)
        let m = base(r#","amount":12.5,"user_id":"u","category":"books","attrs":{"a":[1]}"#);
        let e = decode(m.as_bytes(), &DecodeLimits::default(), NOW).expect("valid");
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.account_id, "acme");
        assert_eq!(e.ts_ms, 1_779_000_000_000);
        assert_eq!(e.kind, EventKind::Purchase);
        assert_eq!(e.amount, Some(12.5));
        assert_eq!(e.user_id.as_deref(), Some("u"));
        assert_eq!(e.category.as_deref(), Some("books"));
        assert_eq!(e.attrs, Some(r#"{"a":[1]}"#));

        // RFC 3339 with an offset: 13:00+01:00 is 12:00Z. 2026-11-01T12:00:00Z = 1793534400 s.
        let m = r#"{"event_id":"e","account_id":"a","ts":"2026-11-01T13:00:00+01:00","kind":"survey","score":10}"#;
        let e = decode(m.as_bytes(), &DecodeLimits::default(), 1_793_534_400_000).expect("valid");
        assert_eq!(e.ts_ms, 1_793_534_400_000);
        assert_eq!(e.score, Some(10.0));

        // Escapes are unescaped; unknown fields ignored; null optional fields are absent.
        let m =
            r#"{"event_id":"e\"2","account_id":"caf\u00e9","ts":0,"kind":"activity","extra":{"x":1},"amount":null}"#;
        let e = decode(m.as_bytes(), &DecodeLimits::default(), NOW).expect("valid");
        assert_eq!(e.event_id, "e\"2");
        assert_eq!(e.account_id, "café");
        assert_eq!(e.amount, None);

        // Money fields on kinds that don't use them are still checked, and kept.
        let m = base(r#","cost":0"#);
        let e = decode(m.as_bytes(), &DecodeLimits::default(), NOW).expect("valid");
        assert_eq!(e.cost, Some(0.0));
    }

    #[test]
    fn every_invalid_reason_with_its_field() {
        let big = base(&format!(r#","attrs":{{"p":"{}"}}"#, "x".repeat(500)));
        let limits = DecodeLimits {
            max_message_bytes: 400,
            ..DecodeLimits::default()
        };
        let far_future = format!(
            r#"{{"event_id":"e","account_id":"a","ts":{},"kind":"activity"}}"#,
            NOW + 86_400_001
        );
        let just_inside = format!(
            r#"{{"event_id":"e","account_id":"a","ts":{},"kind":"activity"}}"#,
            NOW + 86_400_000
        );
        assert!(
            decode(just_inside.as_bytes(), &limits, NOW).is_ok(),
            "exactly the allowed skew is fine"
        );
        let cases: Vec<(Vec<u8>, &str, Option<Field>)> = vec![
            (big.into_bytes(), "too_large", None),
            (b"{\"event_id\":\"\xc3\x28\"}".to_vec(), "not_utf8", None),
            (b"{\"event_id\":".to_vec(), "not_json", None),
            (b"   ".to_vec(), "not_json", None),
            (b"[]".to_vec(), "not_object", None),
            (b"42".to_vec(), "not_object", None),
            (
                base("").replace(r#""event_id":"e1","#, "").into_bytes(),
                "missing_field",
                Some(Field::EventId),
            ),
            (
                base("").replace(r#""account_id":"acme","#, "").into_bytes(),
                "missing_field",
                Some(Field::AccountId),
            ),
            (
                base("").replace(r#""ts":1779000000000,"#, "").into_bytes(),
                "missing_field",
                Some(Field::Ts),
            ),
            (
                base("").replace(r#","kind":"purchase""#, "").into_bytes(),
                "missing_field",
                Some(Field::Kind),
            ),
            (
                base("").replace(r#""e1""#, "1").into_bytes(),
                "wrong_type",
                Some(Field::EventId),
            ),
            (
                base("").replace(r#""acme""#, "[]").into_bytes(),
                "wrong_type",
                Some(Field::AccountId),
            ),
            (
                base("").replace("1779000000000", "true").into_bytes(),
                "wrong_type",
                Some(Field::Ts),
            ),
            (
                base("").replace(r#""purchase""#, "{}").into_bytes(),
                "wrong_type",
                Some(Field::Kind),
            ),
            (base(r#","user_id":1"#).into_bytes(), "wrong_type", Some(Field::UserId)),
            (base(r#","amount":"1""#).into_bytes(), "wrong_type", Some(Field::Amount)),
            (base(r#","cost":true"#).into_bytes(), "wrong_type", Some(Field::Cost)),
            (base(r#","score":[5]"#).into_bytes(), "wrong_type", Some(Field::Score)),
            (
                base(r#","category":2"#).into_bytes(),
                "wrong_type",
                Some(Field::Category),
            ),
            (base(r#","attrs":[1]"#).into_bytes(), "wrong_type", Some(Field::Attrs)),
            (
                base("").replace(r#""e1""#, r#""""#).into_bytes(),
                "bad_length",
                Some(Field::EventId),
            ),
            (
                base("")
                    .replace(r#""acme""#, &format!("\"{}\"", "a".repeat(129)))
                    .into_bytes(),
                "bad_length",
                Some(Field::AccountId),
            ),
            (
                base(&format!(r#","user_id":"{}""#, "u".repeat(129))).into_bytes(),
                "bad_length",
                Some(Field::UserId),
            ),
            (
                base(&format!(r#","category":"{}""#, "c".repeat(129))).into_bytes(),
                "bad_length",
                Some(Field::Category),
            ),
            (
                base(r#","amount":-0.01"#).into_bytes(),
                "negative_money",
                Some(Field::Amount),
            ),
            (base(r#","cost":-3"#).into_bytes(), "negative_money", Some(Field::Cost)),
            (
                base(r#","amount":2e308"#).into_bytes(),
                "non_finite_money",
                Some(Field::Amount),
            ),
            (
                base(r#","cost":-1e309"#).into_bytes(),
                "non_finite_money",
                Some(Field::Cost),
            ),
            (
                base(r#","score":10.5"#).into_bytes(),
                "score_out_of_range",
                Some(Field::Score),
            ),
            (
                base(r#","score":-1"#).into_bytes(),
                "score_out_of_range",
                Some(Field::Score),
            ),
            (
                base("")
                    .replace("1779000000000", r#""2026-11-01T12:00:00""#)
                    .into_bytes(),
                "unparseable_ts",
                Some(Field::Ts),
            ),
            (
                base("")
                    .replace("1779000000000", r#""2026-02-30T12:00:00Z""#)
                    .into_bytes(),
                "unparseable_ts",
                Some(Field::Ts),
            ),
            (
                base("").replace("1779000000000", "1.5").into_bytes(),
                "unparseable_ts",
                Some(Field::Ts),
            ),
            (
                base("").replace("1779000000000", "99999999999999999999").into_bytes(),
                "unparseable_ts",
                Some(Field::Ts),
            ),
            (far_future.into_bytes(), "future_ts", Some(Field::Ts)),
            (
                base("")
                    .replace("1779000000000", "\"0001-01-01T00:00:00Z\"")
                    .into_bytes(),
                "ts_out_of_range",
                Some(Field::Ts),
            ),
            (
                base("").replace("1779000000000", "-1").into_bytes(),
                "ts_out_of_range",
                Some(Field::Ts),
            ),
            (
                br#"{"event_id":"e","account_id":"a","account_id":"b","ts":1,"kind":"activity"}"#.to_vec(),
                "duplicate_key",
                None,
            ),
            (
                base("").replace("purchase", "Purchase").into_bytes(),
                "unknown_kind",
                Some(Field::Kind),
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (msg, code, field) in cases {
            let err = decode(&msg, &limits, NOW).expect_err(&String::from_utf8_lossy(&msg));
            assert_eq!(err.code(), code, "{} -> {err}", String::from_utf8_lossy(&msg));
            if field.is_some() {
                assert_eq!(err.field(), field, "{err}");
            }
            assert!(!err.to_string().is_empty());
            seen.insert(code);
        }
        assert_eq!(seen.len(), InvalidReason::CODES.len(), "every reason has a case");
    }

    #[test]
    fn invalid_message_appends_nothing_and_batch_round_trips() {
        let mut b = EventBatchBuilder::with_capacity(4);
        let meta = SourceMeta {
            topic: Some("t"),
            partition: Some(3),
            offset: Some(9),
            timestamp_ms: Some(5),
        };
        // Invalid in the last field checked: nothing may be half-appended.
        assert!(
            b.decode_append(base(r#","attrs":1"#).as_bytes(), &meta, &DecodeLimits::default(), NOW)
                .is_err()
        );
        assert_eq!(b.len(), 0);
        b.decode_append(base(r#","amount":3"#).as_bytes(), &meta, &DecodeLimits::default(), NOW)
            .expect("valid");
        let batch = b.finish();
        assert_eq!(batch.schema(), schema::event_schema());
        let rows = events_from_batch(&batch).expect("schema");
        assert_eq!(rows.len(), 1);
        let (e, m) = &rows[0];
        assert_eq!(e.kind, EventKind::Purchase);
        assert_eq!(e.amount, Some(3.0));
        assert_eq!(m.topic.as_deref(), Some("t"));
        assert_eq!((m.partition, m.offset, m.timestamp_ms), (Some(3), Some(9), Some(5)));
        assert!(b.is_empty());
    }

    #[test]
    fn owned_event_json_round_trips_through_decode() {
        for kind in EventKind::ALL {
            let mut e = Event::new("id", "acct", 1_000, kind);
            e.amount = Some(1.5);
            e.score = Some(7.0);
            e.attrs = Some(r#"{"k":"v"}"#.into());
            let json = e.to_json();
            let back = decode(json.as_bytes(), &DecodeLimits::default(), NOW).expect("valid");
            assert_eq!(back.to_owned_event(), e);
        }
    }
}
