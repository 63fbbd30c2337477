//! The log subscriber of the `sipcti` binary: stderr, filtered by
//! `SIPCTI_LOG`, as text (ANSI colours only when stderr is a terminal) or,
//! with `SIPCTI_LOG_FORMAT=json`, as one JSON object per line.

use std::io::IsTerminal;

use tracing_subscriber::fmt::format::{Format, Json, JsonFields};
use tracing_subscriber::fmt::{MakeWriter, SubscriberBuilder};
use tracing_subscriber::EnvFilter;

/// Environment variable holding the filter (`info`, `warn,sipcti=debug`, ...).
pub const LOG_ENV: &str = "SIPCTI_LOG";

/// Environment variable choosing the format: `text` (default) or `json`.
pub const LOG_FORMAT_ENV: &str = "SIPCTI_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default format).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`
    /// and the event's fields at the top level.
    Json,
}

impl LogFormat {
    /// The format named by `value` (the `SIPCTI_LOG_FORMAT` value; unset or
    /// empty: text). Errors: any other value than `text` or `json`.
    pub fn parse(value: Option<&str>) -> Result<LogFormat, String> {
        match value.map(str::trim) {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!(
                "{LOG_FORMAT_ENV}={other:?}: must be \"text\" or \"json\""
            )),
        }
    }
}

/// The filter from `SIPCTI_LOG`, else `default` (e.g. `"info"`).
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(default))
}

/// The JSON subscriber writing to `writer`: one object per line, the
/// event's fields flattened next to `timestamp`, `level` and `target`, no
/// span lists, never ANSI.
pub fn json_subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> SubscriberBuilder<JsonFields, Format<Json>, EnvFilter, W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(writer)
}

/// Install the global subscriber: stderr, filtered by `SIPCTI_LOG`
/// (default `default`), in the format `SIPCTI_LOG_FORMAT` names. Text has
/// ANSI colours only when stderr is a terminal (a pipe, a file or journald
/// gets plain text).
///
/// Errors: `SIPCTI_LOG_FORMAT` has another value than `text` or `json`.
pub fn init(default: &str) -> Result<(), String> {
    let format = LogFormat::parse(std::env::var(LOG_FORMAT_ENV).ok().as_deref())?;
    // a second init (tests) keeps the first subscriber
    let _ = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter(default))
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => json_subscriber(filter(default), std::io::stderr).try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn format_values() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
        let e = LogFormat::parse(Some("JSON")).unwrap_err();
        assert!(
            e.contains("SIPCTI_LOG_FORMAT") && e.contains("\"json\""),
            "{e}"
        );
    }

    #[test]
    fn json_format_is_one_object_per_line_with_flat_fields() {
        let buf = Buf::default();
        let sub = json_subscriber(EnvFilter::new("info"), buf.clone()).finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(listen = "127.0.0.1:5060", count = 3u64, "sipcti listening");
            tracing::debug!("filtered out");
            tracing::warn!(error = "line\nbreak \"quoted\"", "send failed");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let a: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(a["level"], "INFO");
        assert_eq!(a["message"], "sipcti listening");
        assert_eq!(a["listen"], "127.0.0.1:5060");
        assert_eq!(a["count"], 3);
        assert!(a["timestamp"].is_string() && a["target"].is_string(), "{a}");
        let b: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(b["level"], "WARN");
        assert_eq!(b["error"], "line\nbreak \"quoted\"");
        assert!(!text.contains('\x1b'), "no ANSI in JSON: {text:?}");
    }
}
