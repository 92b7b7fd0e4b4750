//! Helpers shared by the CLI tests of the `vigil` binary.

use std::process::{Command, Output};

/// Runs the `vigil` binary built for these tests with `args` (without the `VIGIL_CONFIG` and
/// `VIGIL_DATA_DIR` of the caller's shell) and returns its output; panics with both streams
/// when it fails.
pub fn vigil(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env_remove("VIGIL_CONFIG")
        .env_remove("VIGIL_DATA_DIR")
        .output()
        .expect("runs vigil");
    assert!(
        out.status.success(),
        "vigil {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}
