//! `--format tsv`: one header line, then one line per row, fields separated by tabs.
//!
//! Every field of the JSON document's rows, in a fixed order ([`COLUMNS`], the JSON names), so
//! `cut -f` and `awk -F'\t'` find a column by its place whatever the command. A value that is
//! null or absent is empty. A field never holds a tab or a line break: tab, newline, carriage
//! return and backslash are written `\t`, `\n`, `\r`, `\\` (the convention of PostgreSQL's and
//! MySQL's text formats), and other control characters as [`printable`](super::printable) does.
//! No summary line: every line but the first is a row.

use super::{Row, printable};

/// The columns, in order: the JSON document's row fields.
pub const COLUMNS: [&str; 10] = [
    "member",
    "host",
    "provider",
    "state",
    "source",
    "action",
    "version",
    "detail",
    "reason",
    "expires_in",
];

/// `text` as one TSV field.
pub fn field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    // Backslashes are doubled first, so printable's own `\x1b` cannot be read back as one.
    printable(&out).into_owned()
}

/// The header line and one line per row.
pub fn to_tsv(rows: &[Row]) -> String {
    let mut out = COLUMNS.join("\t") + "\n";
    for r in rows {
        let fields = [
            field(&r.member),
            field(&r.host),
            field(&r.provider),
            r.state.as_str().to_string(),
            r.source.map(|s| s.as_str()).unwrap_or("").to_string(),
            r.action.map(|a| a.as_str()).unwrap_or("").to_string(),
            field(r.version.as_deref().unwrap_or("")),
            field(&r.detail),
            r.reason.map(|x| x.as_str()).unwrap_or("").to_string(),
            r.expires_in.map(|s| s.to_string()).unwrap_or_default(),
        ];
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;
    use crate::row::{Action, Reason, State};

    #[test]
    fn one_line_per_row_and_every_column_in_place() {
        let mut a = row("a", State::NeedsAuth);
        a.detail = "tab\there\nnext line\\n \x1b[31m".into();
        a.action = Some(Action::WouldPush);
        a.expires_in = Some(-120);
        let mut b = row("b", State::Unreachable);
        b.reason = Some(Reason::Refused);
        b.version = None;
        let text = to_tsv(&[a, b]);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], COLUMNS);
        assert!(lines.iter().all(|l| l.len() == COLUMNS.len()), "{text}");
        assert_eq!(
            lines[1],
            [
                "a",
                "127.0.0.1",
                "gemini",
                "needs_auth",
                "",
                "would_push",
                "0.61.0",
                "tab\\there\\nnext line\\\\n \\x1b[31m",
                "",
                "-120"
            ]
        );
        assert_eq!(lines[2][3], "unreachable");
        assert_eq!(lines[2][6], "");
        assert_eq!(lines[2][8], "refused");
    }
}
