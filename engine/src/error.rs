//! Errors of the engine crate, and the typed reasons an input message is invalid.

use std::fmt;

/// A field of the event contract v1, named in invalid-input reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    EventId,
    AccountId,
    Ts,
    Kind,
    UserId,
    Amount,
    Cost,
    Score,
    Category,
    Attrs,
}

impl Field {
    /// The field's name in the JSON contract.
    pub fn name(self) -> &'static str {
        match self {
            Field::EventId => "event_id",
            Field::AccountId => "account_id",
            Field::Ts => "ts",
            Field::Kind => "kind",
            Field::UserId => "user_id",
            Field::Amount => "amount",
            Field::Cost => "cost",
            Field::Score => "score",
            Field::Category => "category",
            Field::Attrs => "attrs",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a message is not a valid contract-v1 event. Every way the contract names is one variant;
/// [`InvalidReason::code`] is the machine-readable reason written to the dead-letter header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidReason {
    #[error("message is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("message is not valid UTF-8 (invalid byte at position {position})")]
    NotUtf8 { position: usize },
    #[error("message is not JSON: {detail}")]
    NotJson { detail: String },
    #[error("message is JSON but not an object (found {found})")]
    NotObject { found: &'static str },
    #[error("required field `{0}` is missing or null")]
    MissingField(Field),
    #[error("field `{field}` has the wrong type: expected {expected}, found {found}")]
    WrongType {
        field: Field,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `{field}` is {len} bytes; allowed {min}..={max}")]
    BadLength {
        field: Field,
        len: usize,
        min: usize,
        max: usize,
    },
    #[error("field `{field}` is negative ({value}); money must be >= 0")]
    NegativeMoney { field: Field, value: f64 },
    #[error("field `{field}` is not a finite number ({text})")]
    NonFiniteMoney { field: Field, text: String },
    #[error("field `score` is {value}; a survey score must be within 0..=10")]
    ScoreOutOfRange { value: f64 },
    #[error("field `ts` is not an RFC 3339 timestamp with offset nor integer epoch milliseconds: {text}")]
    UnparseableTs { text: String },
    #[error("field `ts` ({ts_ms} ms) is more than {skew_ms} ms ahead of the engine clock ({now_ms} ms)")]
    FutureTs { ts_ms: i64, now_ms: i64, skew_ms: i64 },
    #[error("field `kind` names an unknown kind `{kind}`")]
    UnknownKind { kind: String },
    #[error("field `ts` ({ts_ms} ms) is before the earliest time accepted ({min_ms} ms since 1970)")]
    TsOutOfRange { ts_ms: i64, min_ms: i64 },
    #[error("key `{key}` appears more than once in the object: which value is meant?")]
    DuplicateKey { key: String },
}

impl InvalidReason {
    /// All reason codes, in a fixed order (for counters and docs).
    pub const CODES: [&'static str; 15] = [
        "too_large",
        "not_utf8",
        "not_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "bad_length",
        "negative_money",
        "non_finite_money",
        "score_out_of_range",
        "unparseable_ts",
        "future_ts",
        "unknown_kind",
        "ts_out_of_range",
        "duplicate_key",
    ];

    /// Index of this reason's code in [`InvalidReason::CODES`].
    pub fn index(&self) -> usize {
        match self {
            InvalidReason::TooLarge { .. } => 0,
            InvalidReason::NotUtf8 { .. } => 1,
            InvalidReason::NotJson { .. } => 2,
            InvalidReason::NotObject { .. } => 3,
            InvalidReason::MissingField(_) => 4,
            InvalidReason::WrongType { .. } => 5,
            InvalidReason::BadLength { .. } => 6,
            InvalidReason::NegativeMoney { .. } => 7,
            InvalidReason::NonFiniteMoney { .. } => 8,
            InvalidReason::ScoreOutOfRange { .. } => 9,
            InvalidReason::UnparseableTs { .. } => 10,
            InvalidReason::FutureTs { .. } => 11,
            InvalidReason::UnknownKind { .. } => 12,
            InvalidReason::TsOutOfRange { .. } => 13,
            InvalidReason::DuplicateKey { .. } => 14,
        }
    }

    /// The machine-readable reason code (the dead-letter `reason` header).
    pub fn code(&self) -> &'static str {
        Self::CODES[self.index()]
    }

    /// The field the reason is about, if any.
    pub fn field(&self) -> Option<Field> {
        match self {
            InvalidReason::MissingField(f) => Some(*f),
            InvalidReason::WrongType { field, .. }
            | InvalidReason::BadLength { field, .. }
            | InvalidReason::NegativeMoney { field, .. }
            | InvalidReason::NonFiniteMoney { field, .. } => Some(*field),
            InvalidReason::ScoreOutOfRange { .. } => Some(Field::Score),
            InvalidReason::UnparseableTs { .. }
            | InvalidReason::FutureTs { .. }
            | InvalidReason::TsOutOfRange { .. } => Some(Field::Ts),
            InvalidReason::UnknownKind { .. } => Some(Field::Kind),
            _ => None,
        }
    }
}

/// Errors of the engine crate's operations (not of input messages: those are [`InvalidReason`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("record batch does not follow the event schema: {0}")]
    Schema(String),
    #[error("model fit failed: {0}")]
    FitFailed(String),
    #[error("invalid scoring configuration: {0}")]
    Config(String),
    #[error("snapshot cannot be read: {0}")]
    Snapshot(String),
}
