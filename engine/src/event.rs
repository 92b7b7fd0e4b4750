//! The event model of contract v1: the kinds as an enum and an owned event (for generators,
//! tests and reading batches back).

use serde::Serialize;

/// What happened, one of the contract's kinds. The discriminant is the kind's code in the
/// Arrow dictionary column `kind` (see [`crate::schema`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EventKind {
    Signup = 0,
    Activity = 1,
    Purchase = 2,
    Renewal = 3,
    Downgrade = 4,
    Cancellation = 5,
    TicketOpened = 6,
    TicketClosed = 7,
    Complaint = 8,
    ComplaintResolved = 9,
    Survey = 10,
    Meeting = 11,
    Referral = 12,
}

impl EventKind {
    /// Every kind, in code order.
    pub const ALL: [EventKind; 13] = [
        EventKind::Signup,
        EventKind::Activity,
        EventKind::Purchase,
        EventKind::Renewal,
        EventKind::Downgrade,
        EventKind::Cancellation,
        EventKind::TicketOpened,
        EventKind::TicketClosed,
        EventKind::Complaint,
        EventKind::ComplaintResolved,
        EventKind::Survey,
        EventKind::Meeting,
        EventKind::Referral,
    ];

    /// Number of kinds.
    pub const COUNT: usize = 13;

    /// The kind's name in the contract.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Signup => "signup",
            EventKind::Activity => "activity",
            EventKind::Purchase => "purchase",
            EventKind::Renewal => "renewal",
            EventKind::Downgrade => "downgrade",
            EventKind::Cancellation => "cancellation",
            EventKind::TicketOpened => "ticket_opened",
            EventKind::TicketClosed => "ticket_closed",
            EventKind::Complaint => "complaint",
            EventKind::ComplaintResolved => "complaint_resolved",
            EventKind::Survey => "survey",
            EventKind::Meeting => "meeting",
            EventKind::Referral => "referral",
        }
    }

    /// Parses a contract kind name; `None` for an unknown kind.
    pub fn parse(s: &str) -> Option<EventKind> {
        Some(match s {
            "signup" => EventKind::Signup,
            "activity" => EventKind::Activity,
            "purchase" => EventKind::Purchase,
            "renewal" => EventKind::Renewal,
            "downgrade" => EventKind::Downgrade,
            "cancellation" => EventKind::Cancellation,
            "ticket_opened" => EventKind::TicketOpened,
            "ticket_closed" => EventKind::TicketClosed,
            "complaint" => EventKind::Complaint,
            "complaint_resolved" => EventKind::ComplaintResolved,
            "survey" => EventKind::Survey,
            "meeting" => EventKind::Meeting,
            "referral" => EventKind::Referral,
            _ => return None,
        })
    }

    /// The kind with this code, if any.
    pub fn from_code(code: u8) -> Option<EventKind> {
        Self::ALL.get(code as usize).copied()
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One valid contract-v1 event, owned. `ts_ms` is event time in epoch milliseconds (UTC).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event_id: String,
    pub account_id: String,
    #[serde(rename = "ts")]
    pub ts_ms: i64,
    pub kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `attrs` as JSON text (an object), never interpreted.
    #[serde(skip)]
    pub attrs: Option<String>,
}

impl Event {
    /// A minimal event of `kind` with no optional fields.
    pub fn new(event_id: impl Into<String>, account_id: impl Into<String>, ts_ms: i64, kind: EventKind) -> Self {
        Event {
            event_id: event_id.into(),
            account_id: account_id.into(),
            ts_ms,
            kind,
            user_id: None,
            amount: None,
            cost: None,
            score: None,
            category: None,
            attrs: None,
        }
    }

    /// The event as a contract-v1 JSON message (`ts` as epoch milliseconds).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("an event always serializes");
        if let (Some(attrs), Some(obj)) = (&self.attrs, value.as_object_mut()) {
            let parsed: serde_json::Value =
                serde_json::from_str(attrs).unwrap_or_else(|_| serde_json::Value::String(attrs.clone()));
            obj.insert("attrs".into(), parsed);
        }
        value.to_string()
    }
}
