//! The durable outbox and the hook dispatcher: every alert is on disk before any delivery
//! attempt, and stays there until each hook it is routed to confirmed it.
//!
//! - [`alert`]: [`HookAlert`], the delivery payload (engine alerts and SQL rule alerts).
//! - [`store`]: [`Outbox`], the append-only, `fsync`ed log with per-hook states `pending`,
//!   `delivered`, `failed` (parked); [`request_retry`] and [`read_failed`] for
//!   `vigil alerts retry` / `vigil alerts failed`.
//! - [`dispatch`]: [`HookDispatcher`], routing into the outbox and one delivery worker per hook
//!   with bounded retries.
//!
//! Guarantees: an alert accepted by `submit` survives a crash (SIGKILL included) and is
//! delivered after the restart; a delivery recorded as done is never repeated; a delivery is
//! never dropped — after its attempts it is parked, listed and counted until retried. Delivery
//! is at least once: a crash between a hook's confirmation and its record re-sends that alert
//! with the same id, which receivers de-duplicate (`Idempotency-Key`).

pub mod alert;
pub mod dispatch;
pub mod store;

pub use alert::{HookAlert, HookKind, HookStatus};
pub use dispatch::{FlushReport, HookDispatcher, HookStats, Sink, is_retryable};
pub use store::{
    DeliveryState, FailedDelivery, Outbox, OutboxOptions, RetryFilter, RetryOutcome, read_failed, request_retry,
};
