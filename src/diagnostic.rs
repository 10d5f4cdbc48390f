//! Diagnostics: every problem found in a bundle, pointing into the source.
//!
//! Checking never stops at the first problem: each stage pushes into a [`Diagnostics`] list and goes on, so
//! an author sees every error of a bundle in one run. A [`Diagnostic`] carries a byte span into one of the
//! bundle's files; [`Diagnostics::render`] turns it into `file:line:col`, the source line with the span
//! underlined, and a help line. The same records serialize as the `--error-format json` output and as the
//! `errors` array of the wire [`ErrorResponse`](crate::wire::ErrorResponse).

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// How bad a diagnostic is. Only errors make a bundle invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The bundle is rejected.
    Error,
    /// Worth fixing; the bundle still builds.
    Warning,
}

/// A byte range in one file of a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Index into the bundle's file list.
    pub file: u32,
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// A span in `file` from `start` to `end` (byte offsets).
    pub fn new(file: u32, start: usize, end: usize) -> Span {
        Span {
            file,
            start: clamp_u32(start),
            end: clamp_u32(end.max(start)),
        }
    }

    /// A sub-span `start..end` relative to this span's start.
    pub fn sub(self, start: usize, end: usize) -> Span {
        let base = self.start as usize;
        Span::new(self.file, base + start, base + end)
    }
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One problem found while loading a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable machine-readable code, e.g. `unknown-path`.
    pub code: String,
    /// One lowercase sentence; user input in backticks.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
    /// File the span points into (as given to the loader), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line, 0 when there is no position.
    pub line: u32,
    /// 1-based column in characters, 0 when there is no position.
    pub column: u32,
    /// How to fix it, including "did you mean" suggestions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Where in a built artifact the problem is (e.g. `placements[0].experiences[2].audience`), when the
    /// bundle was loaded from JSON and has no line numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip)]
    span: Option<Span>,
}

impl Diagnostic {
    /// A new error with `code` and `message`.
    pub fn error(code: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code: code.to_string(),
            message: message.into(),
            severity: Severity::Error,
            file: None,
            line: 0,
            column: 0,
            help: None,
            location: None,
            span: None,
        }
    }

    /// A new warning with `code` and `message`.
    pub fn warning(code: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Attach a source span (resolved to file/line/column by [`Diagnostics::resolve`]).
    pub fn at(mut self, span: Option<Span>) -> Diagnostic {
        self.span = span;
        self
    }

    /// Attach a help line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Attach a help line only if there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Attach a location inside an artifact.
    pub fn location(mut self, location: impl Into<String>) -> Diagnostic {
        self.location = Some(location.into());
        self
    }

    /// The source span, if any.
    pub fn span(&self) -> Option<Span> {
        self.span
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A named source text (one file of a bundle).
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Name shown in diagnostics, e.g. `rules/retail/segments.toml`.
    pub name: String,
    /// Full text.
    pub text: String,
}

/// All diagnostics of one load, plus the files they point into.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Record a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Number of errors (warnings excluded).
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    /// True when at least one error was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// All records in the order found.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Take the records out.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// Fill `file`, `line` and `column` of every record from its span, and sort by position so output is
    /// stable whatever order the checks ran in.
    pub fn resolve(&mut self, files: &[SourceFile]) {
        for d in &mut self.items {
            if let Some(span) = d.span {
                if let Some(f) = files.get(span.file as usize) {
                    let (line, col) = line_col(&f.text, span.start as usize);
                    d.file = Some(f.name.clone());
                    d.line = line;
                    d.column = col;
                }
            }
        }
        self.items.sort_by(|a, b| {
            let ka = (a.span.map(|s| s.file), a.line, a.column);
            let kb = (b.span.map(|s| s.file), b.line, b.column);
            ka.cmp(&kb)
        });
    }

    /// Human-readable report: one block per diagnostic with the underlined source line.
    pub fn render(&self, files: &[SourceFile]) -> String {
        let mut out = String::new();
        for d in &self.items {
            render_one(&mut out, d, files);
        }
        let errors = self.error_count();
        let warnings = self.items.len() - errors;
        if errors > 0 {
            let _ = writeln!(
                out,
                "{} error{}{} found",
                errors,
                plural(errors),
                if warnings > 0 {
                    format!(", {} warning{}", warnings, plural(warnings))
                } else {
                    String::new()
                }
            );
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn render_one(out: &mut String, d: &Diagnostic, files: &[SourceFile]) {
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{kind}[{}]: {}", d.code, d.message);
    let file = d.span.and_then(|s| files.get(s.file as usize));
    match (d.span, file) {
        (Some(span), Some(f)) => {
            let (line_no, col) = line_col(&f.text, span.start as usize);
            let gutter = line_no.to_string().len();
            let pad = " ".repeat(gutter);
            let _ = writeln!(out, "{pad}--> {}:{}:{}", f.name, line_no, col);
            let line_text = f
                .text
                .lines()
                .nth(line_no.saturating_sub(1) as usize)
                .unwrap_or("");
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{line_no} | {line_text}");
            // Underline in characters; a span running past the line end is cut at the line end.
            let line_chars = line_text.chars().count();
            let start_col = (col as usize).saturating_sub(1).min(line_chars);
            let span_text = f
                .text
                .get(span.start as usize..span.end as usize)
                .unwrap_or("");
            let first_line = span_text.lines().next().unwrap_or("");
            let width = first_line
                .chars()
                .count()
                .clamp(1, (line_chars - start_col).max(1));
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(start_col),
                "^".repeat(width)
            );
            if let Some(h) = &d.help {
                let _ = writeln!(out, "{pad} = help: {h}");
            }
        }
        _ => {
            if let Some(f) = &d.file {
                let loc = d
                    .location
                    .as_deref()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default();
                let _ = writeln!(out, " --> {f}{loc}");
            } else if let Some(l) = &d.location {
                let _ = writeln!(out, " --> {l}");
            }
            if let Some(h) = &d.help {
                let _ = writeln!(out, "  = help: {h}");
            }
        }
    }
    out.push('\n');
}

/// 1-based line and character column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (clamp_u32(line), clamp_u32(col))
}

/// The closest candidate to `name` by edit distance, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(name, c);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    // One edit per three characters, at least one: `contry`→`country`, not `city`→`tier`.
    let limit = (name.chars().count() / 3).max(1);
    (d <= limit).then(|| format!("did you mean `{c}`?"))
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        if let Some(c0) = cur.first_mut() {
            *c0 = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = sub.min(del).min(ins);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("x", 0), (1, 1));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("contry", ["country", "city"]).as_deref(),
            Some("did you mean `country`?")
        );
        assert_eq!(did_you_mean("zzz", ["country", "city"]), None);
    }
}
