//! Rendering results: the human table (boxed on a terminal, plain columns otherwise), the JSON
//! document scripts parse, and the formats CI systems read — JSON lines streamed as members
//! finish ([`jsonl`]), JUnit XML ([`junit`]), tab-separated values ([`tsv`]), the Prometheus text
//! exposition ([`prometheus`]) — and the exit status; `run`'s per-member results in [`run`].
//!
//! The JSON document is a contract (design §4, documented field by field in README.md): fields
//! may be added, never renamed or dropped; the JSON lines carry the same objects, and the other
//! machine formats are documented in README.md too. The table is for people and may change
//! freely. This module knows nothing of SSH or probes; it only sees [`Row`]s.

use comfy_table::{
    Cell, Color, ContentArrangement, Table,
    presets::{NOTHING, UTF8_FULL_CONDENSED},
};
use serde::Serialize;

pub mod jsonl;
pub mod junit;
pub mod prometheus;
pub mod run;
pub mod tsv;

pub use crate::row::{Action, Row, Summary};
use crate::row::{Source, State};

#[derive(Serialize)]
struct Document<'a> {
    results: &'a [Row],
    summary: Summary,
}

/// The JSON document (design §4), pretty-printed, with a trailing newline.
pub fn to_json(rows: &[Row]) -> String {
    let doc = Document {
        results: rows,
        summary: Summary::of(rows),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("rows serialise");
    s.push('\n');
    s
}

/// A table in fleetauth's house style; `color` forces styling on or off.
pub fn new_table(color: bool) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t
}

fn state_color(state: State) -> Color {
    match state {
        State::Ready => Color::Green,
        State::NeedsAuth => Color::Yellow,
        State::NotInstalled => Color::Magenta,
        State::Unreachable | State::Error => Color::Red,
    }
}

/// A table of plain aligned columns: no borders, no colour, no wrapping, two spaces between
/// columns, nothing trailing — for a pipe, a file or a CI log, where box-drawing characters
/// are noise and a row must stay on one line for `grep`. Cells must be one line
/// ([`one_line`]).
pub fn new_plain_table() -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty();
    t
}

/// Render a table made by [`new_plain_table`]: its columns padded (0, 2), trailing spaces cut.
pub fn plain_table_text(t: &mut Table) -> String {
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut s = t.trim_fmt();
    s.push('\n');
    s
}

/// `text` on one line and safe for a terminal ([`printable`]), with tab, newline and backslash
/// escaped (`\t`, `\n`, `\\`) so that a row of plain columns or TSV is one line whatever a
/// member said.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in printable(text).chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The summary line under a table.
fn summary_line(rows: &[Row]) -> String {
    let s = Summary::of(rows);
    format!(
        "{} members, {} rows: {} ready, {} needs_auth, {} not_installed, {} unreachable, {} error\n",
        s.members, s.rows, s.ready, s.needs_auth, s.not_installed, s.unreachable, s.error
    )
}

/// The rows as plain aligned columns ([`new_plain_table`]) plus the summary line: what a
/// table becomes when stdout is not a terminal.
pub fn to_plain(rows: &[Row]) -> String {
    let with_action = rows.iter().any(|r| r.action.is_some());
    let mut t = new_plain_table();
    let mut header = vec!["MEMBER", "PROVIDER", "STATE", "SOURCE"];
    if with_action {
        header.push("ACTION");
    }
    header.extend(["VERSION", "DETAIL"]);
    t.set_header(header);
    for r in rows {
        let mut cells = vec![
            one_line(&r.member),
            one_line(&r.provider),
            r.state.as_str().to_string(),
            r.source.map(Source::as_str).unwrap_or("-").to_string(),
        ];
        if with_action {
            cells.push(r.action.map(Action::as_str).unwrap_or("-").to_string());
        }
        cells.push(one_line(r.version.as_deref().unwrap_or("-")));
        cells.push(one_line(&r.detail));
        t.add_row(cells);
    }
    format!("{}{}", plain_table_text(&mut t), summary_line(rows))
}

/// The human table plus a one-line summary.
pub fn to_table(rows: &[Row], color: bool) -> String {
    let with_action = rows.iter().any(|r| r.action.is_some());
    let mut t = new_table(color);
    let mut header = vec!["MEMBER", "PROVIDER", "STATE", "SOURCE"];
    if with_action {
        header.push("ACTION");
    }
    header.extend(["VERSION", "DETAIL"]);
    t.set_header(header);
    for r in rows {
        let mut state = Cell::new(r.state.as_str());
        if color {
            state = state.fg(state_color(r.state));
        }
        let mut cells = vec![
            Cell::new(printable(&r.member)),
            Cell::new(printable(&r.provider)),
            state,
            Cell::new(r.source.map(Source::as_str).unwrap_or("-")),
        ];
        if with_action {
            cells.push(Cell::new(r.action.map(Action::as_str).unwrap_or("-")));
        }
        cells.push(Cell::new(printable(r.version.as_deref().unwrap_or("-"))));
        cells.push(Cell::new(printable(&r.detail)));
        t.add_row(cells);
    }
    format!("{t}\n{}", summary_line(rows))
}

/// `text` safe for a terminal: control characters (C0 but tab and newline, DEL, C1 — so every
/// escape sequence, and the carriage return that would draw over a line) shown escaped, as
/// `\x1b`, `\r`, `\u{9b}`. Member-supplied text (a settings value, a path, a CLI's message)
/// reaches the table only through here; JSON keeps it exact (JSON escapes it itself).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The rows of one earlier run's output, a JSON document (`{"results": [...], "summary": {...}}`)
/// or JSON lines (rows, then `{"summary": {...}}`), whose summary must agree with its rows: a
/// document cut short (JSON lines without their summary line: the job died) or edited by hand is
/// refused, not merged. Errors say what is wrong and where, never echoing the text.
pub fn read_results(text: &str) -> Result<Vec<Row>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        results: Vec<Row>,
        summary: Summary,
    }
    #[derive(serde::Deserialize)]
    struct SummaryLine {
        summary: Summary,
    }
    let (rows, summary) = match serde_json::from_str::<Document>(text) {
        Ok(doc) => (doc.results, doc.summary),
        Err(_) if text.trim().is_empty() => {
            return Err("empty: not a fleetauth JSON document or JSON lines".into());
        }
        Err(_) => {
            let mut rows = Vec::new();
            let mut summary = None;
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let bad = |e: serde_json::Error| {
                    format!(
                        "line {}: not a fleetauth JSON document or JSON line: {e}",
                        i + 1
                    )
                };
                if summary.is_some() {
                    return Err(format!("line {}: a line after the summary line", i + 1));
                }
                let value: serde_json::Value = serde_json::from_str(line).map_err(bad)?;
                if value.get("summary").is_some() {
                    summary = Some(
                        serde_json::from_value::<SummaryLine>(value)
                            .map_err(bad)?
                            .summary,
                    );
                } else {
                    rows.push(serde_json::from_value::<Row>(value).map_err(bad)?);
                }
            }
            let summary = summary.ok_or_else(|| {
                "JSON lines without their summary line: the run did not finish".to_string()
            })?;
            (rows, summary)
        }
    };
    let counted = Summary::of(&rows);
    if counted != summary {
        return Err(format!(
            "its summary ({} rows, {} ready) does not match its {} results ({} ready): cut short or edited?",
            summary.rows, summary.ready, counted.rows, counted.ready
        ));
    }
    Ok(rows)
}

/// 0 when every row is ready, else 1. (2 is for bad input, decided before any row exists.)
pub fn exit_code(rows: &[Row]) -> i32 {
    if rows.iter().all(|r| r.state == State::Ready) {
        0
    } else {
        1
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row of gemini on `member` in `state`, for the format modules' tests too.
    pub(crate) fn row(member: &str, state: State) -> Row {
        Row {
            member: member.into(),
            host: "127.0.0.1".into(),
            provider: "gemini".into(),
            state,
            source: None,
            action: None,
            version: Some("0.61.0".into()),
            detail: "d".into(),
            reason: None,
            expires_in: None,
        }
    }

    #[test]
    fn summary_counts_each_state_and_distinct_members() {
        let rows = vec![
            row("a", State::Ready),
            row("a", State::NeedsAuth),
            row("b", State::Unreachable),
            row("c", State::Error),
            row("d", State::NotInstalled),
        ];
        let s = Summary::of(&rows);
        assert_eq!(
            s,
            Summary {
                members: 4,
                rows: 5,
                ready: 1,
                needs_auth: 1,
                not_installed: 1,
                unreachable: 1,
                error: 1
            }
        );
    }

    #[test]
    fn member_text_cannot_drive_the_terminal_or_forge_a_row() {
        let mut r = row("a", State::NeedsAuth);
        r.detail = "selectedType=\x1b]0;pwned\x07\x1b[2J\r\nFAKE ROW ready\u{9b}31m\x7f".into();
        let table = to_table(&[r.clone()], false);
        assert!(!table.contains('\x1b') && !table.contains('\r') && !table.contains('\u{9b}'));
        assert!(!table.contains('\x07') && !table.contains('\x7f'));
        assert!(table.contains("\\x1b]0;pwned\\x07\\x1b[2J\\r"), "{table}");
        // JSON keeps the text exact.
        let v: serde_json::Value = serde_json::from_str(&to_json(&[r.clone()])).unwrap();
        assert_eq!(v["results"][0]["detail"], r.detail);
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
    }

    /// The JSON contract, byte for byte: a document holding every state, source, action and
    /// reason value. A change here is a change of the contract: README's table must follow.
    #[test]
    fn golden_contract_document() {
        use crate::row::{Reason, Source};
        let mut rows = Vec::new();
        for (i, state) in State::ALL.iter().enumerate() {
            let mut r = row(&format!("m{i}"), *state);
            r.reason = (*state == State::Unreachable).then_some(Reason::Timeout);
            rows.push(r);
        }
        for source in Source::ALL {
            let mut r = row("sources", State::Ready);
            r.source = Some(*source);
            // The one row that knows its credential's expiry.
            r.expires_in = (*source == Source::OauthFile).then_some(3540);
            rows.push(r);
        }
        for action in Action::ALL {
            let mut r = row("actions", State::Ready);
            r.action = Some(*action);
            rows.push(r);
        }
        for reason in Reason::ALL {
            let mut r = row("reasons", State::Unreachable);
            r.reason = Some(*reason);
            r.version = None;
            rows.push(r);
        }
        let golden = include_str!("../../tests/fixtures/contract.json");
        assert_eq!(to_json(&rows), golden, "the JSON contract changed");
    }

    #[test]
    fn exit_code_is_zero_only_when_all_ready() {
        assert_eq!(exit_code(&[row("a", State::Ready)]), 0);
        assert_eq!(
            exit_code(&[row("a", State::Ready), row("b", State::Error)]),
            1
        );
    }

    #[test]
    fn json_has_contract_fields() {
        let mut r = row("a", State::NeedsAuth);
        r.action = Some(Action::WouldPush);
        let v: serde_json::Value = serde_json::from_str(&to_json(&[r])).unwrap();
        let first = &v["results"][0];
        for key in [
            "member", "host", "provider", "state", "source", "action", "version", "detail",
        ] {
            assert!(first.get(key).is_some(), "missing {key}");
        }
        assert_eq!(first["state"], "needs_auth");
        assert_eq!(first["action"], "would_push");
        assert_eq!(v["summary"]["needs_auth"], 1);
    }

    #[test]
    fn table_shows_action_column_only_for_provision() {
        let plain = to_table(&[row("a", State::Ready)], false);
        assert!(!plain.contains("ACTION"));
        let mut r = row("a", State::Ready);
        r.action = Some(Action::Pushed);
        assert!(to_table(&[r], false).contains("pushed"));
    }
}
