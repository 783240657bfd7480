//! Diagnostics for configuration files (inventories and provider definitions).
//!
//! A configuration mistake is the user's to fix, so the error has to show them where: the file,
//! the 1-based line and column, the offending source line with a caret under the bad key or
//! value, and a help line with what would have been accepted. The rendering follows `just` and
//! `rustc`:
//!
//! ```text
//! error: unknown key `prot` in [members.build-01]
//!  --> inventory.toml:12:1
//!    |
//! 12 | prot = 22
//!    | ^^^^
//!    = help: accepted keys: host, port, user, …
//! ```
//!
//! Errors that have no place in the text (an unreadable file, an inventory without members, a
//! `--limit` selector that matches nothing) carry only the file and render without the snippet.
//! The error owns a copy of the one source line it shows, so it can outlive the text it was
//! built from and be returned from `load` functions freely.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration error, located in its file when the location is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the error is about, as the user named it.
    pub file: PathBuf,
    /// 1-based line of the offending token, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending token, when known.
    pub col: Option<usize>,
    /// What went wrong, one line, naming the offending key or value.
    pub message: String,
    /// What would have been accepted, or what to do next.
    pub help: Option<String>,
    /// The source line the caret points into, and how many characters the caret spans (boxed:
    /// errors travel in `Result`s and should stay small).
    snippet: Option<Box<Snippet>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snippet {
    text: String,
    /// Characters from the start of the line to the caret, as written (tabs kept so that the
    /// caret lines up under a tab-indented line).
    prefix: String,
    width: usize,
}

impl ConfigError {
    /// An error about a file as a whole (no line or column).
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            line: None,
            col: None,
            message: message.into(),
            help: None,
            snippet: None,
        }
    }

    /// An error located at byte range `span` of `text` (the whole content of `file`). An empty
    /// span (end of input, a missing value) still gets a one-character caret.
    pub fn at(
        file: impl Into<PathBuf>,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
        let mut error = ConfigError::new(file, message);
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = text[line_start..line_end].trim_end_matches('\r');
        let prefix = &text[line_start..start];
        let caret_end = end.min(line_start + line_text.len()).max(start);
        let width = text[start..caret_end].chars().count().max(1);
        error.line = Some(text[..line_start].matches('\n').count() + 1);
        error.col = Some(prefix.chars().count() + 1);
        error.snippet = Some(Box::new(Snippet {
            text: line_text.to_string(),
            prefix: prefix
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect(),
            width,
        }));
        error
    }

    /// Adds (or replaces) the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> ConfigError {
        self.help = Some(help.into());
        self
    }

    /// The file, for callers that report several errors.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match (self.line, self.col) {
            (Some(line), Some(col)) => write!(f, " --> {}:{line}:{col}", self.file.display())?,
            (Some(line), None) => write!(f, " --> {}:{line}", self.file.display())?,
            _ => write!(f, " --> {}", self.file.display())?,
        }
        let gutter = self.line.map_or(1, |l| l.to_string().len());
        if let (Some(snippet), Some(line)) = (&self.snippet, self.line) {
            let pad = " ".repeat(gutter);
            write!(f, "\n{pad} |")?;
            write!(f, "\n{line} | {}", snippet.text)?;
            write!(
                f,
                "\n{pad} | {}{}",
                snippet.prefix,
                "^".repeat(snippet.width)
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{} = help: {help}", " ".repeat(gutter))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Test helper shared by the inventory and provider tests: the error is in `file` at `line`:`col`
/// (1-based), and its message and help contain the given fragments.
#[cfg(test)]
pub(crate) fn assert_error_at(
    e: &ConfigError,
    file: &str,
    line: usize,
    col: usize,
    message: &str,
    help: &str,
) {
    assert_eq!(e.file, std::path::Path::new(file));
    assert_eq!(
        (e.line, e.col),
        (Some(line), Some(col)),
        "location of:\n{e}"
    );
    assert!(
        e.message.contains(message),
        "message {:?} lacks {message:?}",
        e.message
    );
    let actual = e.help.as_deref().unwrap_or("");
    assert!(actual.contains(help), "help {actual:?} lacks {help:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_just_with_caret_under_the_key() {
        let text = "[members.build-01]\nhost = \"h\"\nprot = 22\n";
        let start = text.find("prot").unwrap();
        let error = ConfigError::at(
            "inventory.toml",
            text,
            start..start + 4,
            "unknown key `prot` in [members.build-01]",
        )
        .with_help("accepted keys: host, port");
        assert_eq!((error.line, error.col), (Some(3), Some(1)));
        assert_eq!(
            error.to_string(),
            "error: unknown key `prot` in [members.build-01]\n --> inventory.toml:3:1\n  |\n3 | prot = 22\n  | ^^^^\n  = help: accepted keys: host, port"
        );
    }

    #[test]
    fn gutter_grows_with_the_line_number() {
        let text = format!("{}port = \"x\"\n", "\n".repeat(11));
        let start = text.find("\"x\"").unwrap();
        let error = ConfigError::at("inv.toml", &text, start..start + 3, "bad").with_help("h");
        assert_eq!(
            error.to_string(),
            "error: bad\n --> inv.toml:12:8\n   |\n12 | port = \"x\"\n   |        ^^^\n   = help: h"
        );
    }

    #[test]
    fn column_counts_characters_and_caret_stops_at_line_end() {
        let text = "name = \"é\" x = [1,\n2]";
        let start = text.find('x').unwrap();
        let error = ConfigError::at("p.toml", text, start..text.len(), "bad");
        assert_eq!((error.line, error.col), (Some(1), Some(12)));
        let rendered = error.to_string();
        assert!(
            rendered.ends_with(&format!("  | {}{}", " ".repeat(11), "^".repeat(7))),
            "caret must cover `x = [1,` only:\n{rendered}"
        );
    }

    #[test]
    fn empty_span_at_end_of_input_gets_one_caret() {
        let text = "a = ";
        let error = ConfigError::at("p.toml", text, 4..4, "missing value");
        assert_eq!((error.line, error.col), (Some(1), Some(5)));
        assert!(error.to_string().ends_with("  |     ^"));
    }

    #[test]
    fn fileonly_error_has_no_snippet() {
        let error = ConfigError::new("inv.toml", "no members").with_help("add one");
        assert_eq!(error.line, None);
        assert_eq!(
            error.to_string(),
            "error: no members\n --> inv.toml\n  = help: add one"
        );
    }
}
