//! Webhook hooks: every alert as a signed HTTP POST, retried with backoff, never dropped.
//!
//! # Webhook delivery: body, headers and signature
//!
//! ## Request
//!
//! `POST <url>` with these headers:
//!
//! | header | value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | `User-Agent` | `vigil/<version>` |
//! | `Idempotency-Key` | the alert id, e.g. `quiet/acct-7/1780000000000`. The same alert always has the same id, on every retry and after a restart: **receivers must de-duplicate on it** (delivery is at least once). |
//! | `Vigil-Signature` | `t=<unix seconds>,v1=<hex HMAC-SHA256>` (below). Absent only for an unsigned `slack` hook. |
//! | `Vigil-Alert-Kind` | `quiet`, `recovered`, `churn_risk`, `complaint_spike` or `rule` |
//! | `Vigil-Delivery-Attempt` | `1` for the first request of a delivery, then `2`, `3`, … |
//! | any `headers = { … }` from the hook's config | |
//!
//! ## JSON body (`format = "json"`, the default)
//!
//! ```json
//! {
//!   "type": "vigil.alert",
//!   "version": 1,
//!   "id": "quiet/acct-7/1779999000000",
//!   "kind": "quiet",
//!   "status": "raised",
//!   "rule": null,
//!   "account_id": "acct-7",
//!   "tier": "key",
//!   "at": "2026-05-28T20:26:40.000Z",
//!   "at_ms": 1780000000000,
//!   "episode_start": "2026-05-28T20:10:00.000Z",
//!   "episode_start_ms": 1779999000000,
//!   "value": 12.0,
//!   "threshold": 9.0,
//!   "message": "acct-7 silent 12.0 days (threshold 9.0 days)"
//! }
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `type`, `version` | always `"vigil.alert"`, `1`; fields may be added within a version |
//! | `id` | the deterministic alert id (= `Idempotency-Key`) |
//! | `kind` | `quiet` (a key account went silent), `recovered` (it came back), `churn_risk` (risk crossed the threshold), `complaint_spike`, `rule` (a `[[rules]]` SQL rule matched) |
//! | `status` | `raised`, or `resolved` for `recovered` and for a rule's account that stopped matching |
//! | `rule` | the rule's name for `kind = "rule"`, else `null` |
//! | `account_id`, `tier` | the account; `tier` is `key` or `standard` |
//! | `at`, `at_ms` | engine time the condition was met (RFC 3339 UTC, and ms since the epoch) |
//! | `episode_start`, `episode_start_ms` | start of the episode the alert belongs to |
//! | `value`, `threshold` | the measured value and its threshold (days silent / `k`×gap, risk / threshold, complaints / count); `null` for rules |
//! | `message` | one readable line |
//!
//! ## Slack body (`format = "slack"`)
//!
//! `{"text": ":warning: Key account *acct-7* went quiet — acct-7 silent 12.0 days (threshold
//! 9.0 days). <https://vigil.example.com/accounts/acct-7|Open in vigil>"}` — one sentence with a
//! link built from `link_template` (`{account_id}`, `{alert_id}` are replaced, URL-encoded).
//! Signed too when a secret is configured.
//!
//! ## Signature
//!
//! `Vigil-Signature: t=<t>,v1=<sig>` where `t` is the Unix time (seconds) the request was
//! signed and `sig = hex(HMAC-SHA256(secret, "<t>." + raw body bytes))` (lowercase hex). Each
//! attempt is signed afresh. To verify, a receiver:
//!
//! 1. reads the **raw** body bytes (before parsing JSON);
//! 2. parses `t` and every `v1` from the header (comma-separated `key=value`; unknown keys are
//!    ignored; several `v1` may appear during a secret rotation);
//! 3. rejects the request when `|now - t|` exceeds its tolerance (5 minutes recommended,
//!    [`signature::DEFAULT_TOLERANCE`]) — this stops replays of captured requests;
//! 4. computes the HMAC over `"<t>." + body` with its copy of the secret and compares it with
//!    each `v1` **in constant time**; accepts if one matches;
//! 5. de-duplicates on `Idempotency-Key`, and answers 2xx quickly (work can happen later).
//!
//! [`verify_signature`] does steps 2–4 for Rust receivers (vigil's tests use it as the
//! receiver). In a shell: `printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret"`.
//!
//! ## Responses, retries, parking
//!
//! - `2xx`: delivered; the outbox records it and never sends that alert to this hook again.
//! - connection errors, timeouts (`connect_timeout_ms`, `request_timeout_ms`), `5xx` and `429`:
//!   retried with exponential backoff and jitter (`retry.backoff_min_ms`, doubling, capped at
//!   `retry.backoff_max_ms`, plus up to the same again at random), up to `retry.max_attempts`
//!   attempts; a `Retry-After` (seconds or HTTP date) replaces the backoff, capped at
//!   `retry.max_retry_after_ms`.
//! - any other status (`3xx` — redirects are not followed — and `4xx` but `429`): not retried.
//! - when the attempts are used up (or a non-retryable status came back) the alert is
//!   **parked as failed** in the outbox: listed by `vigil alerts failed`, counted in the hook's
//!   metrics, and sent again after `vigil alerts retry` ([`crate::outbox::request_retry`]).
//!   Nothing is dropped.

pub mod body;
pub mod config;
pub mod signature;
pub mod sink;

pub use config::{BodyFormat, WebhookConfig};
pub use signature::{DEFAULT_TOLERANCE, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign, unix_now, verify_signature};
pub use sink::{ATTEMPT_HEADER, KIND_HEADER, WebhookSink};
