//! Printing results: a two-column table on stdout, and optionally the full result as JSON.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// Prints `rows` as a markdown table (it reads well in a terminal and pastes into RESULTS.md).
pub fn table(title: &str, rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let vwidth = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0).max(5);
    println!("\n### {title}\n");
    println!("| {:width$} | {:>vwidth$} |", "metric", "value");
    println!("|{}|{}:|", "-".repeat(width + 2), "-".repeat(vwidth + 1));
    for (k, v) in rows {
        println!("| {k:width$} | {v:>vwidth$} |");
    }
}

/// Writes `value` as pretty JSON to `path`, if one was given.
pub fn json(path: Option<&Path>, value: &impl Serialize) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// `x` with `digits` decimals.
pub fn f(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}
