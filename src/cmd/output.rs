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
