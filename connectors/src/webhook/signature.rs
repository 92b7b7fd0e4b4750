//! The `Vigil-Signature` header: HMAC-SHA256 over `"{t}.{body}"`, and its verification for
//! receivers ([`verify_signature`]). The scheme is described in [`crate::webhook`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::ConnectorError;

/// The header carrying the timestamp and signature.
pub const SIGNATURE_HEADER: &str = "Vigil-Signature";
/// The header carrying the alert id.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Default tolerance receivers should use for the timestamp (5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The `Vigil-Signature` value for `body` sent at `t` (Unix seconds): `t=<t>,v1=<hex>`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let code = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex(&code))
}

/// Verifies a `Vigil-Signature` header for `body` the way a receiver should:
///
/// 1. parse `t=<unix secs>` and one or more `v1=<hex>` (comma separated, any order; unknown
///    schemes are ignored, so several secrets can be active during a rotation);
/// 2. refuse when `|now - t| > tolerance` (replays of old requests; clocks far ahead);
/// 3. compute HMAC-SHA256(secret, `"{t}.{body}"`) and compare it with each `v1` in constant
///    time; accept when one matches.
///
/// `body` must be the raw request bytes, before any JSON parsing.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix_secs: i64,
    tolerance: Duration,
) -> Result<(), ConnectorError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(ConnectorError::SignatureMalformed("expected key=value pairs"))?;
        match k {
            "t" => {
                t = Some(
                    v.parse::<i64>()
                        .map_err(|_| ConnectorError::SignatureMalformed("t is not an integer"))?,
                )
            }
            "v1" => sigs.push(unhex(v).ok_or(ConnectorError::SignatureMalformed("v1 is not hex"))?),
            _ => {}
        }
    }
    let t = t.ok_or(ConnectorError::SignatureMalformed("no t="))?;
    if sigs.is_empty() {
        return Err(ConnectorError::SignatureMalformed("no v1="));
    }
    let tolerance_secs = tolerance.as_secs();
    let age = now_unix_secs.saturating_sub(t);
    if age.unsigned_abs() > tolerance_secs {
        return Err(ConnectorError::SignatureStale {
            age_secs: age,
            tolerance_secs,
        });
    }
    let expected = mac(secret, t, body);
    if sigs.iter().any(|s| expected.clone().verify_slice(s).is_ok()) {
        Ok(())
    } else {
        Err(ConnectorError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_and_round_trip() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently (Python hmac module).
        let h = sign(b"key", 1_700_000_000, b"{}");
        assert_eq!(
            h,
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        let tol = Duration::from_secs(300);
        verify_signature(b"key", &h, b"{}", 1_700_000_100, tol).expect("valid");
        assert!(matches!(
            verify_signature(b"other", &h, b"{}", 1_700_000_100, tol),
            Err(ConnectorError::SignatureMismatch)
        ));
        assert!(matches!(
            verify_signature(b"key", &h, b"{ }", 1_700_000_100, tol),
            Err(ConnectorError::SignatureMismatch)
        ));
        assert!(matches!(
            verify_signature(b"key", &h, b"{}", 1_700_000_301, tol),
            Err(ConnectorError::SignatureStale { age_secs: 301, .. })
        ));
        assert!(matches!(
            verify_signature(b"key", &h, b"{}", 1_699_999_000, tol),
            Err(ConnectorError::SignatureStale { age_secs: -1000, .. })
        ));
    }

    #[test]
    fn accepts_any_of_several_signatures_and_rejects_malformed() {
        let good = sign(b"new", 10, b"x");
        let v1 = good.split_once("v1=").expect("v1").1;
        let rotated = format!("t=10,v1={},v0=zz,v1={v1}", "00".repeat(32));
        let tol = Duration::from_secs(5);
        verify_signature(b"new", &rotated, b"x", 12, tol).expect("second v1 matches");
        for bad in ["", "t=10", "v1=00", "t=x,v1=00", "t=10,v1=0g", "t=10;v1=00"] {
            assert!(
                matches!(
                    verify_signature(b"new", bad, b"x", 10, tol),
                    Err(ConnectorError::SignatureMalformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
