//! `vigil run` against an address where no broker listens: it exits non-zero after
//! `[source] startup_timeout_ms`, saying so in one line, instead of waiting forever.

use std::process::Command;

#[test]
fn run_against_an_unreachable_broker_exits_with_the_reason() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let data = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("run")
        .env("VIGIL_SOURCE__BROKERS", format!("127.0.0.1:{port}"))
        .env("VIGIL_SOURCE__STARTUP_TIMEOUT_MS", "2000")
        .env("VIGIL_DATA_DIR", data.path())
        .env("VIGIL_HTTP__LISTEN", "")
        .env("RUST_LOG", "off")
        .output()
        .expect("vigil run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {:?}: {err}", out.status);
    let line = err
        .lines()
        .find(|l| l.contains("no Kafka broker of"))
        .unwrap_or_else(|| panic!("no reason in: {err}"));
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("2000 ms"),
        "{line}"
    );
}
