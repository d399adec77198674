//! Printing for people: aligned tables and key/value blocks.

use comfy_table::{ContentArrangement, Table, presets};

/// An aligned, borderless table with a header row.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled).set_header(headers.to_vec());
    for row in rows {
        t.add_row(row);
    }
    let text = t.to_string();
    let mut out: String = text.lines().map(|l| l.trim_end().trim_start_matches(' ')).collect::<Vec<_>>().join("\n");
    out.push('\n');
    out
}

/// `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{:width$} {v}\n", format!("{k}:"), width = width + 1)).collect()
}

/// Text from the server, safe for a terminal: control characters are written as escapes.
pub fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| if c.is_control() && c != '\n' { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect()
}

/// Standard output was closed by the reader (`openclaw … | head`): the command ends
/// quietly with exit 0, like ripgrep.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct ClosedStdout;

/// Writes to standard output; a closed pipe becomes [`ClosedStdout`].
pub fn write_stdout(args: std::fmt::Arguments, newline: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|_| if newline { out.write_all(b"\n") } else { Ok(()) });
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedStdout.into()),
        other => Ok(other?),
    }
}

/// `println!` that ends the command quietly when stdout is closed (use inside functions
/// returning `anyhow::Result`).
macro_rules! outln {
    () => {
        $crate::cmd::output::write_stdout(format_args!(""), true)?
    };
    ($($arg:tt)*) => {
        $crate::cmd::output::write_stdout(format_args!($($arg)*), true)?
    };
}

/// `print!` with the same rule as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cmd::output::write_stdout(format_args!($($arg)*), false)?
    };
}

pub(crate) use {out, outln};
