//! The log hook (`type = "log"`): alerts written to stdout, one line each, for the demo and
//! for piping into a log collector.

pub mod sink;

pub use sink::{LogFormat, LogSink, LogSinkConfig};
