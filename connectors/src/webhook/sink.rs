//! [`WebhookSink`]: one signed HTTP POST per attempt, the response classified for retries.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Client, StatusCode, Url};

use super::body::{json_body, slack_body};
use super::config::{BodyFormat, WebhookConfig};
use super::signature::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, unix_now};
use crate::error::ConnectorError;
use crate::outbox::alert::HookAlert;

/// Header with the alert's kind (`quiet`, …, `rule`).
pub const KIND_HEADER: &str = "Vigil-Alert-Kind";
/// Header with the attempt number of this request (1 for the first).
pub const ATTEMPT_HEADER: &str = "Vigil-Delivery-Attempt";
/// How much of an error response's body is kept in the error message.
const ERROR_BODY_BYTES: usize = 512;

/// A webhook hook.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    name: String,
    url: Url,
    client: Client,
    secret: Option<Vec<u8>>,
    format: BodyFormat,
    link_template: String,
    headers: HeaderMap,
}

impl WebhookSink {
    /// A sink for hook `name`: validates the config, resolves the secret and builds the client
    /// (connect and whole-request timeouts, no redirects followed, no cookies).
    pub fn new(name: &str, config: &WebhookConfig) -> Result<Self, ConnectorError> {
        config.validate()?;
        let secret = config.resolve_secret()?.map(String::into_bytes);
        if config.format == BodyFormat::Json && secret.is_none() {
            return Err(ConnectorError::HookConfig(format!(
                "hook `{name}`: a `json` webhook needs a secret"
            )));
        }
        let url = Url::parse(&config.url).map_err(|e| ConnectorError::HookConfig(format!("hook `{name}`: {e}")))?;
        let client = Client::builder()
            .connect_timeout(config.connect_timeout())
            .timeout(config.request_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| ConnectorError::Http {
                sink: name.to_string(),
                source,
            })?;
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let k = HeaderName::from_bytes(k.as_bytes()).map_err(|e| ConnectorError::HookConfig(e.to_string()))?;
            let v = HeaderValue::from_str(v).map_err(|e| ConnectorError::HookConfig(e.to_string()))?;
            headers.insert(k, v);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("vigil/", env!("CARGO_PKG_VERSION"))),
        );
        Ok(WebhookSink {
            name: name.to_string(),
            url,
            client,
            secret,
            format: config.format,
            link_template: config.link_template.clone(),
            headers,
        })
    }

    /// The hook's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The body sent for `alert` (the same bytes on every attempt).
    pub fn body(&self, alert: &HookAlert) -> Vec<u8> {
        match self.format {
            BodyFormat::Json => json_body(alert),
            BodyFormat::Slack => slack_body(alert, &self.link_template),
        }
    }

    /// One attempt: POST the body, signed now. `Ok` on 2xx. Errors: [`ConnectorError::Http`]
    /// (connect, timeout, transport), [`ConnectorError::HttpStatus`] (any other status, with
    /// the server's `Retry-After`).
    pub async fn send(&self, alert: &HookAlert, attempt: u32) -> Result<(), ConnectorError> {
        let body = self.body(alert);
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(IDEMPOTENCY_HEADER, header_value(&alert.id))
            .header(KIND_HEADER, alert.kind.as_str())
            .header(ATTEMPT_HEADER, attempt.to_string());
        if let Some(secret) = &self.secret {
            // Signed per attempt: a retry after a long backoff carries a fresh timestamp.
            req = req.header(SIGNATURE_HEADER, sign(secret, unix_now(), &body));
        }
        let resp = req.body(body).send().await.map_err(|source| ConnectorError::Http {
            sink: self.name.clone(),
            source,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(parse_retry_after);
        let detail = error_detail(status, resp).await;
        Err(ConnectorError::HttpStatus {
            sink: self.name.clone(),
            status: status.as_u16(),
            retry_after,
            detail,
        })
    }
}

/// Alert ids are ASCII in practice; anything else is percent-encoded so the header is valid.
fn header_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).unwrap_or_else(|_| {
        HeaderValue::from_str(&super::body::url_encode(id)).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    })
}

/// The start of the response body, for the error message.
async fn error_detail(status: StatusCode, mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body.truncate(ERROR_BODY_BYTES);
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    let reason = status.canonical_reason().unwrap_or("");
    if text.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {text}")
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past is 0.
pub fn parse_retry_after(v: &HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(s).ok()?;
    let now = chrono::Utc::now();
    let ms = (when.with_timezone(&chrono::Utc) - now).num_milliseconds().max(0);
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retry_after_both_forms() {
        let secs = HeaderValue::from_static("7");
        assert_eq!(parse_retry_after(&secs), Some(Duration::from_secs(7)));
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let d = parse_retry_after(&HeaderValue::from_str(&future).expect("header")).expect("date");
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn refuses_a_json_webhook_without_a_secret() {
        let mut cfg = WebhookConfig::new("http://127.0.0.1:9/hook", "");
        assert!(WebhookSink::new("h", &cfg).is_err());
        cfg.format = BodyFormat::Slack;
        let sink = WebhookSink::new("h", &cfg).expect("slack may be unsigned");
        assert_eq!(sink.name(), "h");
        cfg.url = "ftp://x/".into();
        assert!(WebhookSink::new("h", &cfg).is_err());
    }
}
