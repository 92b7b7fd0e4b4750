//! Request bodies: the documented JSON alert ([`json_body`]) and the Slack text
//! ([`slack_body`]). Both are a pure function of the alert, so every retry sends the same bytes.

use serde::Serialize;

use crate::outbox::alert::{HookAlert, HookKind, HookStatus};

/// Version of the JSON body; bumped only for incompatible changes (fields may be added).
pub const BODY_VERSION: u32 = 1;

/// The JSON body (see the field table in [`crate::webhook`]).
#[derive(Debug, Serialize)]
pub struct JsonBody<'a> {
    #[serde(rename = "type")]
    pub kind_of_body: &'static str,
    pub version: u32,
    pub id: &'a str,
    pub kind: &'static str,
    pub status: &'static str,
    pub rule: Option<&'a str>,
    pub account_id: &'a str,
    pub tier: &'static str,
    pub at: String,
    pub at_ms: i64,
    pub episode_start: String,
    pub episode_start_ms: i64,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub message: &'a str,
}

/// RFC 3339 UTC with milliseconds (`2026-05-28T10:00:00.000Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// The JSON body of `alert`.
pub fn json_body(alert: &HookAlert) -> Vec<u8> {
    let body = JsonBody {
        kind_of_body: "vigil.alert",
        version: BODY_VERSION,
        id: &alert.id,
        kind: alert.kind.as_str(),
        status: alert.status.as_str(),
        rule: alert.rule.as_deref(),
        account_id: &alert.account_id,
        tier: alert.tier.as_str(),
        at: rfc3339_ms(alert.at_ms),
        at_ms: alert.at_ms,
        episode_start: rfc3339_ms(alert.episode_start_ms),
        episode_start_ms: alert.episode_start_ms,
        value: alert.value.filter(|v| v.is_finite()),
        threshold: alert.threshold.filter(|v| v.is_finite()),
        message: &alert.message,
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| unreachable!("the body has only strings and numbers"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Slack escapes `&`, `<` and `>` in text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The link of an alert: `template` with `{account_id}` and `{alert_id}` replaced.
pub fn link(template: &str, alert: &HookAlert) -> String {
    template
        .replace("{account_id}", &url_encode(&alert.account_id))
        .replace("{alert_id}", &url_encode(&alert.id))
}

/// The readable sentence of `alert`, e.g. ":warning: Key account *acct-7* went quiet — acct-7
/// silent 12.0 days (threshold 9.0). <https://…/accounts/acct-7|Open in vigil>".
pub fn slack_text(alert: &HookAlert, link_template: &str) -> String {
    let who = match alert.tier {
        vigil_engine::scoring::Tier::Key => format!("Key account *{}*", slack_escape(&alert.account_id)),
        vigil_engine::scoring::Tier::Standard => format!("Account *{}*", slack_escape(&alert.account_id)),
    };
    let what = match (alert.kind, alert.status) {
        (HookKind::Quiet, _) => ":warning: {who} went quiet".to_string(),
        (HookKind::Recovered, _) => ":white_check_mark: {who} is active again".to_string(),
        (HookKind::ChurnRisk, _) => ":chart_with_downwards_trend: {who} reached the churn-risk threshold".to_string(),
        (HookKind::ComplaintSpike, _) => ":rotating_light: {who} has a complaint spike".to_string(),
        (HookKind::Rule, HookStatus::Raised) => ":bell: {who} matches rule `{rule}`".to_string(),
        (HookKind::Rule, HookStatus::Resolved) => {
            ":white_check_mark: {who} no longer matches rule `{rule}`".to_string()
        }
    }
    .replace("{who}", &who)
    .replace("{rule}", &slack_escape(alert.rule.as_deref().unwrap_or("?")));
    format!(
        "{what} — {}. <{}|Open in vigil>",
        slack_escape(alert.message.trim_end_matches('.')),
        link(link_template, alert)
    )
}

/// `{"text": ...}` for Slack incoming webhooks.
pub fn slack_body(alert: &HookAlert, link_template: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "text": slack_text(alert, link_template) }))
        .unwrap_or_else(|_| unreachable!("a string always serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_engine::scoring::Tier;

    fn alert() -> HookAlert {
        HookAlert {
            id: "quiet/acct 7/1780000000000".into(),
            kind: HookKind::Quiet,
            status: HookStatus::Raised,
            rule: None,
            account_id: "acct 7".into(),
            tier: Tier::Key,
            at_ms: 1_780_000_000_000,
            episode_start_ms: 1_779_000_000_000,
            value: Some(12.0),
            threshold: Some(f64::NAN),
            message: "silent 12.0 days (threshold 9.0 days) <x>.".into(),
        }
    }

    #[test]
    fn json_body_has_every_documented_field() {
        let v: serde_json::Value = serde_json::from_slice(&json_body(&alert())).expect("json");
        let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        let mut expected = vec![
            "type",
            "version",
            "id",
            "kind",
            "status",
            "rule",
            "account_id",
            "tier",
            "at",
            "at_ms",
            "episode_start",
            "episode_start_ms",
            "value",
            "threshold",
            "message",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(v["type"], "vigil.alert");
        assert_eq!(v["at"], "2026-05-28T20:26:40.000Z");
        assert_eq!(v["tier"], "key");
        assert_eq!(v["value"], 12.0);
        assert!(v["threshold"].is_null(), "non-finite numbers become null");
        assert!(v["rule"].is_null());
    }

    #[test]
    fn slack_text_is_a_sentence_with_an_escaped_link() {
        let text = slack_text(&alert(), "https://vigil.example.com/a/{account_id}?id={alert_id}");
        assert_eq!(
            text,
            ":warning: Key account *acct 7* went quiet — silent 12.0 days (threshold 9.0 days) &lt;x&gt;. \
             <https://vigil.example.com/a/acct%207?id=quiet%2Facct%207%2F1780000000000|Open in vigil>"
        );
        let v: serde_json::Value = serde_json::from_slice(&slack_body(&alert(), "u")).expect("json");
        assert_eq!(v.as_object().expect("object").len(), 1);
        assert!(v["text"].as_str().expect("text").starts_with(":warning:"));
    }
}
