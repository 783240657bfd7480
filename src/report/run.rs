//! `run --format json|jsonl|junit`: what a command did on each member — its exit status, its
//! note (why it did not run or finish) and its stdout and stderr.
//!
//! A member's output is bytes, and need not be UTF-8. `stdout` and `stderr` are always strings
//! (invalid UTF-8 replaced by U+FFFD), so a script can read them directly; when the bytes were
//! not valid UTF-8, `stdout_base64` / `stderr_base64` hold them exactly (standard base64, with
//! padding) and the string is only an approximation. Contract in README.md (`run`).

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use super::junit::{Case, Problem, Suite, document};

/// Exit status of a member the command never ran on.
const NEVER_RAN: i32 = 255;
/// Exit status of a member where the command did not finish.
const NOT_FINISHED: i32 = 254;

/// One member's run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunResult {
    pub member: String,
    /// The command's exit status on the member; 255: it never ran; 254: it did not finish.
    pub status: i32,
    /// Why it did not run or finish, or a signal; empty otherwise.
    pub note: String,
    pub stdout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    pub stderr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
}

/// A stream as text, and its exact bytes in base64 when they are not UTF-8.
fn text_and_bytes(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

impl RunResult {
    pub fn new(member: &str, status: i32, note: &str, stdout: &[u8], stderr: &[u8]) -> RunResult {
        let (stdout, stdout_base64) = text_and_bytes(stdout);
        let (stderr, stderr_base64) = text_and_bytes(stderr);
        RunResult {
            member: member.to_string(),
            status,
            note: note.to_string(),
            stdout,
            stdout_base64,
            stderr,
            stderr_base64,
        }
    }
}

/// Counts over a run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RunSummary {
    pub members: usize,
    /// Members where the command exited 0.
    pub succeeded: usize,
    /// Members where it exited otherwise, or never ran.
    pub failed: usize,
    /// fleetauth's own exit status: the worst member's.
    pub status: i32,
}

impl RunSummary {
    pub fn of(results: &[RunResult]) -> RunSummary {
        let succeeded = results.iter().filter(|r| r.status == 0).count();
        RunSummary {
            members: results.len(),
            succeeded,
            failed: results.len() - succeeded,
            status: results.iter().map(|r| r.status).max().unwrap_or(0),
        }
    }
}

#[derive(Serialize)]
struct Document<'a> {
    results: &'a [RunResult],
    summary: RunSummary,
}

#[derive(Serialize)]
struct SummaryLine {
    summary: RunSummary,
}

/// `{"results": […], "summary": {…}}`, pretty-printed, with a trailing newline.
pub fn to_json(results: &[RunResult]) -> String {
    let doc = Document {
        results,
        summary: RunSummary::of(results),
    };
    serde_json::to_string_pretty(&doc).expect("results serialise") + "\n"
}

/// One JSON line for a member that just finished.
pub fn line(result: &RunResult) -> String {
    serde_json::to_string(result).expect("results serialise") + "\n"
}

/// The last JSON line: `{"summary": {…}}`.
pub fn summary_line(results: &[RunResult]) -> String {
    let line = SummaryLine {
        summary: RunSummary::of(results),
    };
    serde_json::to_string(&line).expect("summary serialises") + "\n"
}

/// JUnit: one case per member (classname the member, name the command), a failure when the
/// command exited non-zero, an error when it never ran (255) or did not finish (254); its output
/// in the case's `system-out` / `system-err`.
pub fn to_junit(
    results: &[RunResult],
    command: &str,
    suite: &Suite<'_>,
    member_time: impl Fn(&str) -> Option<Duration>,
) -> String {
    let messages: Vec<String> = results
        .iter()
        .map(|r| match (r.status, r.note.is_empty()) {
            (status, true) => format!("exit status {status}"),
            (status, false) => format!("exit status {status}: {}", r.note),
        })
        .collect();
    document(
        suite,
        results.iter().zip(&messages).map(|(r, message)| Case {
            classname: &r.member,
            name: command,
            time: member_time(&r.member),
            problem: (r.status != 0).then(|| Problem {
                element: if r.status == NEVER_RAN || r.status == NOT_FINISHED {
                    "error"
                } else {
                    "failure"
                },
                kind: "exit_status",
                message,
                text: message,
            }),
            system_out: Some(&r.stdout),
            system_err: Some(&r.stderr),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_that_is_not_utf8_keeps_its_bytes() {
        let r = RunResult::new("m", 3, "", b"ok\n", b"\xff\xfebad\n");
        let v: serde_json::Value = serde_json::from_str(&line(&r)).unwrap();
        assert_eq!(v["stdout"], "ok\n");
        assert!(v.get("stdout_base64").is_none());
        assert_eq!(v["stderr"], "\u{fffd}\u{fffd}bad\n");
        let exact = base64::engine::general_purpose::STANDARD
            .decode(v["stderr_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(exact, b"\xff\xfebad\n");
        assert_eq!(v["status"], 3);
    }

    #[test]
    fn summary_counts_and_takes_the_worst_status() {
        let results = [
            RunResult::new("a", 0, "", b"", b""),
            RunResult::new("b", 255, "unreachable: refused", b"", b""),
            RunResult::new("c", 1, "", b"", b""),
        ];
        let v: serde_json::Value = serde_json::from_str(&to_json(&results)).unwrap();
        assert_eq!(
            v["summary"],
            serde_json::json!({"members": 3, "succeeded": 1, "failed": 2, "status": 255})
        );
        assert_eq!(v["results"][1]["note"], "unreachable: refused");
        let last: serde_json::Value = serde_json::from_str(&summary_line(&results)).unwrap();
        assert_eq!(last["summary"], v["summary"]);
    }
}
