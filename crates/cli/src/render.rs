//! Plain-text tables and messages. Styling goes through anstream, which
//! drops it when the output is not a terminal (or NO_COLOR is set).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

const BOLD: Style = Style::new().bold();
const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default();

/// Prints an error on stderr: one line, and with `--debug` its detail.
pub fn error(e: &crate::error::CliError) {
    anstream::eprintln!("{RED}error:{RED:#} {}", e.message);
    if crate::error::debug()
        && let Some(detail) = &e.detail
    {
        anstream::eprintln!("debug: {detail}");
    }
}

/// Prints a note on stderr.
pub fn note(message: &str) {
    anstream::eprintln!("{message}");
}

/// Prints a warning on stderr.
pub fn warn(message: &str) {
    anstream::eprintln!("{YELLOW}warning:{YELLOW:#} {message}");
}

/// A heading line, bold on a terminal.
pub fn heading(text: &str) -> String {
    format!("{BOLD}{text}{BOLD:#}")
}

/// A table with left-aligned text columns and right-aligned number columns.
pub struct Table {
    headers: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table; `numeric[i]` right-aligns column `i`.
    pub fn new(headers: &[(&'static str, bool)]) -> Self {
        Self {
            headers: headers.iter().map(|(h, _)| *h).collect(),
            numeric: headers.iter().map(|(_, n)| *n).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as headers).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The rendered table, header in bold, columns two spaces apart.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let pad = " ".repeat(widths[i].saturating_sub(width(cell)));
                let sep = if i + 1 == cells.len() { "" } else { "  " };
                if self.numeric[i] {
                    let _ = write!(out, "{pad}{cell}{sep}");
                } else if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    let _ = write!(out, "{cell}{pad}{sep}");
                }
            }
            out.trim_end().to_string()
        };
        let mut text = heading(&line(self.headers.clone()));
        text.push('\n');
        for row in &self.rows {
            text.push_str(&line(row.iter().map(String::as_str).collect()));
            text.push('\n');
        }
        text
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// US dollars with enough digits for small amounts.
pub fn usd(amount: f64) -> String {
    if amount >= 1.0 {
        format!("${amount:.2}")
    } else {
        format!("${amount:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let mut t = Table::new(&[("name", false), ("n", true), ("why", false)]);
        t.row(vec!["a".into(), "1234".into(), "x".into()]);
        t.row(vec!["long-name".into(), "5".into(), String::new()]);
        let text = anstream::adapter::strip_str(&t.render()).to_string();
        assert_eq!(text, "name          n  why\na          1234  x\nlong-name     5\n");
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
