//! [`LogSink`]: one line per alert on stdout (or any writer, for tests).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::error::ConnectorError;
use crate::outbox::alert::HookAlert;
use crate::webhook::body::{json_body, rfc3339_ms};

/// How a line looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `2026-05-28T20:26:40.000Z ALERT quiet raised acct-7 (key): <message> [id]`
    #[default]
    Text,
    /// The webhook JSON body, one object per line.
    Json,
}

/// `[[hooks]]` with `type = "log"`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSinkConfig {
    #[serde(default)]
    pub format: LogFormat,
}

type Out = Arc<Mutex<Box<dyn Write + Send>>>;

/// Writes alerts as lines.
#[derive(Clone)]
pub struct LogSink {
    name: String,
    format: LogFormat,
    out: Out,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish()
    }
}

impl LogSink {
    /// A sink writing to stdout.
    pub fn stdout(name: &str, config: &LogSinkConfig) -> Self {
        LogSink::to_writer(name, config, Box::new(std::io::stdout()))
    }

    /// A sink writing to `out` (tests, files).
    pub fn to_writer(name: &str, config: &LogSinkConfig, out: Box<dyn Write + Send>) -> Self {
        LogSink {
            name: name.to_string(),
            format: config.format,
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// The line of `alert` (without the newline).
    pub fn line(&self, alert: &HookAlert) -> String {
        match self.format {
            LogFormat::Json => String::from_utf8_lossy(&json_body(alert)).into_owned(),
            LogFormat::Text => format!(
                "{} ALERT {} {}{} {} ({}): {} [{}]",
                rfc3339_ms(alert.at_ms),
                alert.kind.as_str(),
                alert.status.as_str(),
                alert.rule.as_deref().map(|r| format!(" rule={r}")).unwrap_or_default(),
                alert.account_id,
                alert.tier.as_str(),
                alert.message,
                alert.id
            ),
        }
    }

    /// Writes and flushes one line.
    pub fn send(&self, alert: &HookAlert) -> Result<(), ConnectorError> {
        let mut line = self.line(alert);
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|source| ConnectorError::Io {
                path: format!("hook `{}` (stdout)", self.name),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::alert::{HookKind, HookStatus};
    use vigil_engine::scoring::Tier;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buf").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_one_line_per_alert() {
        let alert = HookAlert {
            id: "rule/r/acct-7/1780000000000".into(),
            kind: HookKind::Rule,
            status: HookStatus::Raised,
            rule: Some("r".into()),
            account_id: "acct-7".into(),
            tier: Tier::Standard,
            at_ms: 1_780_000_000_000,
            episode_start_ms: 1_780_000_000_000,
            value: None,
            threshold: None,
            message: "acct-7 matches rule r".into(),
        };
        let buf = Buf::default();
        let text = LogSink::to_writer("t", &LogSinkConfig::default(), Box::new(buf.clone()));
        text.send(&alert).expect("text");
        let json = LogSink::to_writer(
            "j",
            &LogSinkConfig {
                format: LogFormat::Json,
            },
            Box::new(buf.clone()),
        );
        json.send(&alert).expect("json");
        let out = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "2026-05-28T20:26:40.000Z ALERT rule raised rule=r acct-7 (standard): acct-7 matches rule r \
             [rule/r/acct-7/1780000000000]"
        );
        let v: serde_json::Value = serde_json::from_str(lines[1]).expect("json line");
        assert_eq!(v["id"], "rule/r/acct-7/1780000000000");
        assert_eq!(lines.len(), 2);
    }
}
