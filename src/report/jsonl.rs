//! `--format jsonl`: the JSON document's rows as JSON lines, each member's rows written the
//! moment that member finishes, then one summary line.
//!
//! A CI job reading a sweep of a large fleet (or a person watching `jq`) sees each member as it
//! is done instead of one document at the end. Every line is one JSON object: a row, with
//! exactly the fields of a row of the JSON document, or — last — `{"summary": {…}}` with exactly
//! the fields of the document's summary. Rows come in the order members finish; a consumer that
//! wants inventory order sorts them. The contract is in README.md ("JSON lines").

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::Serialize;

use super::{Row, Summary};

/// The last line's object.
#[derive(Serialize)]
struct SummaryLine {
    summary: Summary,
}

/// One JSON line (with its newline) per row.
pub fn lines(rows: &[Row]) -> String {
    rows.iter()
        .map(|r| serde_json::to_string(r).expect("rows serialise") + "\n")
        .collect()
}

/// The summary line over `rows`: `{"summary": {…}}` and a newline.
pub fn summary_line(rows: &[Row]) -> String {
    let line = SummaryLine {
        summary: Summary::of(rows),
    };
    serde_json::to_string(&line).expect("summary serialises") + "\n"
}

/// The JSON lines of one run, written as members finish: remembers which members' rows were
/// written, so that [`JsonLines::finish`] writes the rows no finished member gave (a member
/// whose task died gets its rows from the ordered result) and no row twice.
#[derive(Default)]
pub struct JsonLines {
    written: Mutex<BTreeSet<String>>,
}

impl JsonLines {
    pub fn new() -> JsonLines {
        JsonLines::default()
    }

    /// The lines for the rows of a member that just finished (empty if its rows were written
    /// already).
    pub fn member(&self, rows: &[Row]) -> String {
        let mut written = self.written.lock().expect("not poisoned");
        let fresh: Vec<Row> = rows
            .iter()
            .filter(|r| !written.contains(&r.member))
            .cloned()
            .collect();
        written.extend(fresh.iter().map(|r| r.member.clone()));
        lines(&fresh)
    }

    /// The rows of `all` (the run's whole result) not written yet, then the summary line over
    /// `all`.
    pub fn finish(&self, all: &[Row]) -> String {
        let written = self.written.lock().expect("not poisoned");
        let rest: Vec<Row> = all
            .iter()
            .filter(|r| !written.contains(&r.member))
            .cloned()
            .collect();
        lines(&rest) + &summary_line(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;
    use crate::row::State;

    #[test]
    fn each_row_is_one_object_with_the_document_fields_then_the_summary() {
        let out = JsonLines::new();
        let a = vec![row("a", State::Ready), row("a", State::NeedsAuth)];
        let mut b = row("b", State::Ready);
        b.detail = "two\nlines \"quoted\"".into();
        let mut text = out.member(&a);
        text += &out.member(std::slice::from_ref(&b));
        // The same member finishing again (it cannot, but) writes nothing twice.
        assert_eq!(out.member(&a), "");
        let all = vec![
            a[0].clone(),
            a[1].clone(),
            b.clone(),
            row("c", State::Error),
        ];
        text += &out.finish(&all);
        let objects: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(objects.len(), 5, "{text}");
        let document: serde_json::Value =
            serde_json::from_str(&crate::report::to_json(&all)).unwrap();
        // Rows as members finished, the dead member's row last, each equal to its document row.
        for (line, i) in objects[..4].iter().zip([0, 1, 2, 3]) {
            assert_eq!(line, &document["results"][i]);
        }
        assert_eq!(objects[2]["detail"], b.detail);
        assert_eq!(
            objects[4],
            serde_json::json!({ "summary": document["summary"] })
        );
    }
}
