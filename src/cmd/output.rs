//! Printing for people: aligned tables and key/value blocks.
//!
//! Invariant: text that came from elsewhere (the coordinator, a worker, a skill's stderr,
//! a skill file) reaches the terminal only through [`clean`] (or [`clean_lines`]): control
//! characters — ESC above all, which starts terminal escape sequences that can rewrite the
//! screen, the window title or the clipboard — and Unicode's bidirectional overrides are
//! printed as visible escapes (`\x1b`, `\u{202e}`). [`table`] and [`fields`] apply it to
//! every cell and value.

use std::borrow::Cow;
use std::fmt::Write;

use comfy_table::{ContentArrangement, Table, presets};

/// An aligned, borderless table with a header row.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled).set_header(headers.to_vec());
    for row in rows {
        t.add_row(row.iter().map(|cell| clean(cell).into_owned()).collect::<Vec<_>>());
    }
    let text = t.to_string();
    let mut out: String = text.lines().map(|l| l.trim_end().trim_start_matches(' ')).collect::<Vec<_>>().join("\n");
    out.push('\n');
    out
}

/// `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{:width$} {}\n", format!("{k}:"), clean(v), width = width + 1)).collect()
}

/// `text` safe for a terminal, on one line: every control character escaped.
pub fn clean(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` safe for a terminal, keeping its line breaks (for multi-line messages).
pub fn clean_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn unsafe_char(c: char, keep_newlines: bool) -> bool {
    (c.is_control() && !(keep_newlines && c == '\n'))
        // Bidirectional embeddings, overrides and isolates: they reorder what follows.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| unsafe_char(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c, keep_newlines) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_untouched() {
        assert!(matches!(clean("mac-mini.local ✓"), Cow::Borrowed(_)));
        assert_eq!(clean("a\u{1b}[31mred\u{7}"), "a\\x1b[31mred\\x07");
        assert_eq!(clean("two\nlines\r\ttab"), "two\\nlines\\r\\ttab");
        assert_eq!(clean("\u{9b}2J \u{202e}txt.exe"), "\\x9b2J \\u{202e}txt.exe");
        assert_eq!(clean_lines("first\nsecond\u{1b}]0;title\u{7}"), "first\nsecond\\x1b]0;title\\x07");
    }

    #[test]
    fn tables_and_fields_escape_every_cell() {
        let t = table(&["NODE", "HOST"], vec![vec!["n1".into(), "\u{1b}[2Jevil".into()]]);
        assert!(!t.contains('\u{1b}') && t.contains("\\x1b[2Jevil"), "{t}");
        let f = fields(&[("host", "\u{1b}]52;c;cGF5bG9hZA==\u{7}".into()), ("tags", "a, b\u{1b}".into())]);
        assert!(!f.contains('\u{1b}') && !f.contains('\u{7}') && f.contains("tags:"), "{f}");
    }
}
