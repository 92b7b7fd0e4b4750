//! A real HTTP webhook receiver for the tests: axum on 127.0.0.1, verifying every request with
//! the documented [`verify_signature`], answering from a per-key script, and recording
//! everything it saw.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use vigil_connectors::webhook::{ATTEMPT_HEADER, DEFAULT_TOLERANCE, unix_now, verify_signature};

/// How the receiver answers one request for a key.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Answer with this status and an optional `Retry-After` in seconds.
    Status(u16, Option<u64>),
    /// Sleep this long, then answer 503 (the client gave up long before).
    Hang(Duration),
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub key: String,
    pub attempt: u32,
    pub at: Instant,
    /// `accepted`, `rejected` (signature), `scripted`, `hung`.
    pub outcome: &'static str,
    pub signature_error: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct Receiver {
    secret: Vec<u8>,
    scripts: Mutex<HashMap<String, VecDeque<Action>>>,
    seen: Mutex<Vec<Seen>>,
    pub addr: SocketAddr,
}

impl Receiver {
    /// The URL hooks should post to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Queues answers for the next requests carrying `key` (then it accepts).
    pub fn script(&self, key: &str, actions: &[Action]) {
        self.scripts
            .lock()
            .expect("scripts")
            .entry(key.to_string())
            .or_default()
            .extend(actions.iter().copied());
    }

    pub fn clear_scripts(&self) {
        self.scripts.lock().expect("scripts").clear();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    pub fn seen_for(&self, key: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.key == key).collect()
    }

    /// 2xx answers per idempotency key: a correct hook gets exactly one per alert.
    pub fn accepted(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in self.seen().iter().filter(|s| s.outcome == "accepted") {
            *m.entry(s.key.clone()).or_default() += 1;
        }
        m
    }

    /// Requests whose outcome is `outcome`.
    pub fn count(&self, outcome: &str) -> usize {
        self.seen().iter().filter(|s| s.outcome == outcome).count()
    }
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = header(&headers, "idempotency-key");
    let attempt = header(&headers, ATTEMPT_HEADER).parse().unwrap_or(0);
    let mut seen = Seen {
        key: key.clone(),
        attempt,
        at: Instant::now(),
        outcome: "accepted",
        signature_error: None,
        body: body.to_vec(),
    };
    let sig = header(&headers, "vigil-signature");
    if let Err(e) = verify_signature(&r.secret, &sig, &body, unix_now(), DEFAULT_TOLERANCE) {
        seen.outcome = "rejected";
        seen.signature_error = Some(e.to_string());
        r.seen.lock().expect("seen").push(seen);
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let action = r
        .scripts
        .lock()
        .expect("scripts")
        .get_mut(&key)
        .and_then(VecDeque::pop_front);
    match action {
        None => {
            r.seen.lock().expect("seen").push(seen);
            (StatusCode::OK, "ok").into_response()
        }
        Some(Action::Status(code, retry_after)) => {
            seen.outcome = "scripted";
            r.seen.lock().expect("seen").push(seen);
            let mut resp = (StatusCode::from_u16(code).expect("status"), "scripted").into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from_str(&s.to_string()).expect("value"));
            }
            resp
        }
        Some(Action::Hang(d)) => {
            seen.outcome = "hung";
            r.seen.lock().expect("seen").push(seen);
            tokio::time::sleep(d).await;
            (StatusCode::SERVICE_UNAVAILABLE, "too late").into_response()
        }
    }
}

/// Starts a receiver on `addr` (`127.0.0.1:0` for any free port) checking signatures with
/// `secret`.
pub async fn start(secret: &str, addr: &str) -> Arc<Receiver> {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind receiver");
    let r = Arc::new(Receiver {
        secret: secret.as_bytes().to_vec(),
        scripts: Mutex::new(HashMap::new()),
        seen: Mutex::new(Vec::new()),
        addr: listener.local_addr().expect("addr"),
    });
    let app = Router::new().route("/hook", post(hook)).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver serves") });
    r
}

/// A loopback port nothing listens on (yet): connections are refused.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}
