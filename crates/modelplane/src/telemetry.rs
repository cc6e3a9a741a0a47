use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Human-readable logs by default, JSON lines with `--log-format json`.
/// `RUST_LOG` overrides the configured level.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(directives(level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The configured level, with rmcp held to warnings unless the level names
/// it: rmcp logs every `/mcp` request's start and end at info, which the
/// request span already covers.
fn directives(level: &str) -> String {
    if level.contains("rmcp") {
        level.to_owned()
    } else {
        format!("{level},rmcp=warn")
    }
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn rmcp_is_quiet_unless_the_level_names_it() {
        assert_eq!(directives("info"), "info,rmcp=warn");
        assert_eq!(directives("debug,sqlx=warn"), "debug,sqlx=warn,rmcp=warn");
        assert_eq!(directives("info,rmcp=debug"), "info,rmcp=debug");
    }
}
