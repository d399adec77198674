//! Logging: tracing to stdout as JSON lines (default) or text, and optionally to
//! daily-rotated files.
//!
//! A JSON line has the top-level keys `timestamp` (RFC 3339 UTC), `level` (ERROR, WARN,
//! INFO, DEBUG, TRACE), `message` and `module`, then the event's own fields, so the seed's
//! `grep '"level":"ERROR"'`, `grep '"module":"coordinator"'` and
//! `jq '{timestamp, level, message}'` work. `module` is the part of the code that logged:
//! `coordinator`, `worker`, `store`, ... (the first segment of the tracing target below
//! `openclaw::`). `RUST_LOG`, when set, replaces `log.level`.

use std::io;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Keeps the background file writer alive; drop it last (it flushes).
pub struct LogGuard {
    _file: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// RFC 3339 UTC timestamps with milliseconds.
struct UtcMillis;

impl FormatTime for UtcMillis {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&crate::util::rfc3339(crate::util::now_ms()))
    }
}

/// The `module` of a tracing target: `openclaw::coordinator::registry` → `coordinator`.
pub fn module_of(target: &str) -> &str {
    let target = target.strip_prefix("openclaw::").unwrap_or(target);
    target.split("::").next().unwrap_or(target)
}

fn json_layer<S, W>(writer: W) -> json_subscriber::JsonLayer<S, W>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    let mut layer = json_subscriber::JsonLayer::new(writer);
    layer.with_timer("timestamp", UtcMillis);
    layer.with_level("level");
    layer.add_dynamic_field("module", |event, _| {
        // Lines bridged from the `log` crate carry their real target in the normalized metadata.
        let normalized = tracing_log::NormalizeEvent::normalized_metadata(event);
        let target = normalized.as_ref().map(|m| m.target()).unwrap_or_else(|| event.metadata().target());
        Some(module_of(target).to_string())
    });
    layer.with_flattened_event();
    layer
}

/// The filter for `log.level`: our own lines at that level, the libraries' at WARN (ERROR
/// when the level is ERROR). Libraries narrate at INFO/DEBUG what our own lines already
/// say: rmcp every `/mcp` request ("Service initialized", "serve finished"), async-nats
/// every connection attempt, rusqlite_migration each schema step (with its source path).
/// `RUST_LOG` (e.g. `RUST_LOG=info,rmcp=debug`) shows them.
fn configured_filter(level: crate::config::LogLevel) -> String {
    let quiet = if level == crate::config::LogLevel::Error { "error" } else { "warn" };
    format!("{quiet},openclaw={}", level.as_filter())
}

/// Installs the global subscriber. Call once, after the config is loaded.
pub fn init(config: &LogConfig) -> io::Result<LogGuard> {
    // Lines from crates that log through `log` (r2d2, rusqlite_migration) come out here too.
    let _ = tracing_log::LogTracer::init();
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(config.level.as_filter()))
        }
        _ => EnvFilter::new(configured_filter(config.level)),
    };

    let (file_writer, guard) = match &config.dir {
        Some(dir) => {
            let named = |e: io::Error| io::Error::new(e.kind(), format!("cannot use log.dir {}: {e}", dir.display()));
            std::fs::create_dir_all(dir).map_err(named)?;
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("openclaw")
                .filename_suffix("log")
                .max_log_files(config.max_files)
                .build(dir)
                .map_err(|e| named(io::Error::other(e)))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (Some(writer), Some(guard))
        }
        None => (None, None),
    };

    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Json => registry.with(json_layer(io::stdout)).with(file_writer.map(json_layer)).try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_timer(UtcMillis)
                    .with_ansi(std::io::IsTerminal::is_terminal(&io::stdout()))
                    .with_writer(io::stdout),
            )
            .with(
                file_writer
                    .map(|w| tracing_subscriber::fmt::layer().with_timer(UtcMillis).with_ansi(false).with_writer(w)),
            )
            .try_init(),
    };
    // A second init (tests running several servers in one process) keeps the first one.
    let _ = result;
    install_panic_hook();
    Ok(LogGuard { _file: guard })
}

/// Whether what the log writes (stdout) reaches the same place as stderr: the same
/// terminal, pipe or file. A fatal error that was logged is then not printed again.
pub fn stderr_is_the_log() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let identity = |fd: i32| {
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: fstat writes a stat for a descriptor we own for the process's life.
            (unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0).then(|| {
                // SAFETY: fstat succeeded, so it filled the struct.
                let st = unsafe { st.assume_init() };
                (st.st_dev, st.st_ino)
            })
        };
        match (identity(io::stdout().as_raw_fd()), identity(io::stderr().as_raw_fd())) {
            (Some(out), Some(err)) => out == err,
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        use std::io::IsTerminal;
        io::stdout().is_terminal() && io::stderr().is_terminal()
    }
}

/// A panic is a bug: log it where operators look (the JSON log, log files), then abort, so
/// that a half-dead server does not linger (release builds abort on panic anyway).
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(target: "openclaw::panic", panic = %info, "a bug stopped the process; please report it with this line");
        default(info);
        std::process::abort();
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn libraries_are_quiet_below_warn() {
        use crate::config::LogLevel;
        assert_eq!(super::configured_filter(LogLevel::Debug), "warn,openclaw=debug");
        assert_eq!(super::configured_filter(LogLevel::Error), "error,openclaw=error");
    }

    #[test]
    fn module_is_the_first_segment_below_the_crate() {
        assert_eq!(super::module_of("openclaw::coordinator::registry"), "coordinator");
        assert_eq!(super::module_of("openclaw::worker"), "worker");
        assert_eq!(super::module_of("r2d2"), "r2d2");
        assert_eq!(super::module_of("hyper_util::server"), "hyper_util");
    }
}
