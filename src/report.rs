//! Rendering results: the human table, the JSON document scripts parse, and the exit status.
//!
//! The JSON document is a contract (design §4, documented field by field in README.md): fields
//! may be added, never renamed or dropped. The table is for people and may change freely. This
//! module knows nothing of SSH or probes; it only sees [`Row`]s.

use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::assess::State;

/// What provisioning did to a member × provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    None,
    Pushed,
    Unchanged,
    WouldPush,
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Pushed => "pushed",
            Action::Unchanged => "unchanged",
            Action::WouldPush => "would_push",
            Action::Failed => "failed",
        }
    }
}

/// One member × provider result.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub member: String,
    pub host: String,
    pub provider: String,
    pub state: State,
    /// What makes it ready (`probe`, `oauth_file`, `env_file`, `pushed_key`, …), or null.
    pub source: Option<String>,
    /// Only for `provision`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    pub version: Option<String>,
    pub detail: String,
    /// For `unreachable` rows: refused, timeout, auth, host_key, network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub members: usize,
    pub rows: usize,
    pub ready: usize,
    pub needs_auth: usize,
    pub not_installed: usize,
    pub unreachable: usize,
    pub error: usize,
}

impl Summary {
    pub fn of(rows: &[Row]) -> Summary {
        let mut s = Summary {
            rows: rows.len(),
            ..Default::default()
        };
        let mut members: Vec<&str> = rows.iter().map(|r| r.member.as_str()).collect();
        members.sort_unstable();
        members.dedup();
        s.members = members.len();
        for r in rows {
            match r.state {
                State::Ready => s.ready += 1,
                State::NeedsAuth => s.needs_auth += 1,
                State::NotInstalled => s.not_installed += 1,
                State::Unreachable => s.unreachable += 1,
                State::Error => s.error += 1,
            }
        }
        s
    }
}

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
            Cell::new(&r.member),
            Cell::new(&r.provider),
            state,
            Cell::new(r.source.as_deref().unwrap_or("-")),
        ];
        if with_action {
            cells.push(Cell::new(r.action.map(Action::as_str).unwrap_or("-")));
        }
        cells.push(Cell::new(r.version.as_deref().unwrap_or("-")));
        cells.push(Cell::new(&r.detail));
        t.add_row(cells);
    }
    let s = Summary::of(rows);
    format!(
        "{t}\n{} members, {} rows: {} ready, {} needs_auth, {} not_installed, {} unreachable, {} error\n",
        s.members, s.rows, s.ready, s.needs_auth, s.not_installed, s.unreachable, s.error
    )
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
mod tests {
    use super::*;

    fn row(member: &str, state: State) -> Row {
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
