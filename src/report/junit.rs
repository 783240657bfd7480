//! `--format junit`: JUnit XML, the test report format CI systems read (Jenkins' junit step,
//! GitLab's `artifacts:reports:junit`, GitHub actions that publish test results).
//!
//! One `<testsuite>` (the document's root) per command run, one `<testcase>` per member ×
//! provider: `classname` is the member, `name` the provider. A row that is not ready fails its
//! test case, its state saying how:
//! - `needs_auth`, `not_installed` → `<failure type="STATE" message="…">` — the member was
//!   checked and the answer is no;
//! - `unreachable`, `error` → `<error type="STATE" message="…">` — the check itself could not be
//!   made (as a test that throws is an error, not a failure).
//!
//! The message is the row's detail on one line; the element's text is the detail, the source,
//! the version and, when unreachable, the reason. Attributes are those the strictest reader
//! requires (the Ant JUnit schema, which Jenkins' and GitLab's parsers accept): the suite's
//! `name`, `tests`, `failures`, `errors`, `skipped`, `time`, `timestamp` (UTC, ISO 8601 without
//! a zone, as the schema's type says), `hostname` and its `<properties/>`, `<system-out/>`,
//! `<system-err/>` children; each case's `classname`, `name` and `time` (the seconds the member
//! took: its providers are checked together, so each of its cases shows its whole time).
//!
//! Everything a member supplied goes through [`xml_text`]: XML escaping alone is not enough,
//! since XML 1.0 cannot carry most control characters even as references.

use std::time::{Duration, SystemTime};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::{Row, printable};
use crate::row::State;

/// The run a suite reports.
pub struct Suite<'a> {
    /// `fleetauth sweep`, `fleetauth provision`, …
    pub name: &'a str,
    /// The controller's host name.
    pub hostname: &'a str,
    /// When the run started.
    pub timestamp: SystemTime,
    /// How long the run took.
    pub time: Duration,
}

/// What a failing case says.
pub struct Problem<'a> {
    /// `failure` or `error`.
    pub element: &'static str,
    /// The `type` attribute.
    pub kind: &'a str,
    pub message: &'a str,
    pub text: &'a str,
}

/// A test case.
pub struct Case<'a> {
    pub classname: &'a str,
    pub name: &'a str,
    pub time: Option<Duration>,
    pub problem: Option<Problem<'a>>,
    /// Captured output (only `run` has any).
    pub system_out: Option<&'a str>,
    pub system_err: Option<&'a str>,
}

/// `text` as XML 1.0 can carry it: control characters other than tab and newline shown
/// escaped ([`printable`]), and the non-characters U+FFFE and U+FFFF too. The XML writer then
/// escapes markup.
pub fn xml_text(text: &str) -> String {
    printable(text)
        .chars()
        .map(|c| match c {
            '\u{fffe}' | '\u{ffff}' => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// A whole document: one suite holding `cases`.
pub fn document<'a>(suite: &Suite<'_>, cases: impl IntoIterator<Item = Case<'a>>) -> String {
    let cases: Vec<Case<'a>> = cases.into_iter().collect();
    let count = |element: &str| {
        cases
            .iter()
            .filter(|c| c.problem.as_ref().is_some_and(|p| p.element == element))
            .count()
            .to_string()
    };
    let timestamp = chrono::DateTime::<chrono::Utc>::from(suite.timestamp)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let write = |w: &mut Writer<Vec<u8>>, e: Event<'_>| {
        w.write_event(e).expect("writing to memory");
    };
    write(
        &mut w,
        Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)),
    );
    let mut start = BytesStart::new("testsuite");
    let name = xml_text(suite.name);
    let hostname = xml_text(suite.hostname);
    for (k, v) in [
        ("name", name.as_str()),
        ("tests", &cases.len().to_string()),
        ("failures", &count("failure")),
        ("errors", &count("error")),
        ("skipped", "0"),
        ("time", &seconds(suite.time)),
        ("timestamp", &timestamp),
        ("hostname", hostname.as_str()),
    ] {
        start.push_attribute((k, v));
    }
    write(&mut w, Event::Start(start));
    write(&mut w, Event::Empty(BytesStart::new("properties")));
    for case in &cases {
        let mut start = BytesStart::new("testcase");
        let (classname, name) = (xml_text(case.classname), xml_text(case.name));
        let time = seconds(case.time.unwrap_or_default());
        for (k, v) in [
            ("classname", classname.as_str()),
            ("name", name.as_str()),
            ("time", time.as_str()),
        ] {
            start.push_attribute((k, v));
        }
        let empty =
            case.problem.is_none() && case.system_out.is_none() && case.system_err.is_none();
        if empty {
            write(&mut w, Event::Empty(start));
            continue;
        }
        write(&mut w, Event::Start(start));
        if let Some(p) = &case.problem {
            let mut start = BytesStart::new(p.element);
            let (kind, message) = (xml_text(p.kind), super::one_line(&xml_text(p.message)));
            start.push_attribute(("message", message.as_str()));
            start.push_attribute(("type", kind.as_str()));
            write(&mut w, Event::Start(start));
            write(&mut w, Event::Text(BytesText::new(&xml_text(p.text))));
            write(&mut w, Event::End(BytesEnd::new(p.element)));
        }
        for (element, text) in [
            ("system-out", case.system_out),
            ("system-err", case.system_err),
        ] {
            if let Some(text) = text {
                write(&mut w, Event::Start(BytesStart::new(element)));
                write(&mut w, Event::Text(BytesText::new(&xml_text(text))));
                write(&mut w, Event::End(BytesEnd::new(element)));
            }
        }
        write(&mut w, Event::End(BytesEnd::new("testcase")));
    }
    write(&mut w, Event::Empty(BytesStart::new("system-out")));
    write(&mut w, Event::Empty(BytesStart::new("system-err")));
    write(&mut w, Event::End(BytesEnd::new("testsuite")));
    let mut text = String::from_utf8(w.into_inner()).expect("written from strings");
    text.push('\n');
    text
}

/// The JUnit document of `rows`; `member_time` gives each member's time where known.
pub fn to_junit(
    rows: &[Row],
    suite: &Suite<'_>,
    member_time: impl Fn(&str) -> Option<Duration>,
) -> String {
    let texts: Vec<String> = rows.iter().map(case_text).collect();
    document(
        suite,
        rows.iter().zip(&texts).map(|(r, text)| Case {
            classname: &r.member,
            name: &r.provider,
            time: member_time(&r.member),
            problem: problem_element(r.state).map(|element| Problem {
                element,
                kind: r.state.as_str(),
                message: &r.detail,
                text,
            }),
            system_out: None,
            system_err: None,
        }),
    )
}

/// `failure`, `error`, or nothing for a ready row.
fn problem_element(state: State) -> Option<&'static str> {
    match state {
        State::Ready => None,
        State::NeedsAuth | State::NotInstalled => Some("failure"),
        State::Unreachable | State::Error => Some("error"),
    }
}

/// The text of a failing case: the detail, then what else the row says.
fn case_text(r: &Row) -> String {
    let mut text = format!("{}: {}", r.state, r.detail);
    if let Some(action) = r.action {
        text.push_str(&format!("\naction: {action}"));
    }
    if let Some(reason) = r.reason {
        text.push_str(&format!("\nreason: {reason}"));
    }
    if let Some(version) = &r.version {
        text.push_str(&format!("\nversion: {version}"));
    }
    text.push_str(&format!("\nhost: {}", r.host));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

    fn suite() -> Suite<'static> {
        Suite {
            name: "fleetauth sweep",
            hostname: "ops",
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            time: Duration::from_millis(2500),
        }
    }

    #[test]
    fn states_become_failures_and_errors_and_member_text_stays_well_formed() {
        let mut nasty = row("m<&\">", State::NeedsAuth);
        nasty.detail = "]]><x/>\x1b[31m\u{1}\u{ffff} & \"q\"\nline".into();
        let rows = [
            row("a", State::Ready),
            nasty.clone(),
            row("c", State::NotInstalled),
            row("d", State::Unreachable),
            row("e", State::Error),
        ];
        let text = to_junit(&rows, &suite(), |m| {
            (m == "a").then_some(Duration::from_millis(1234))
        });
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{text}"
        );
        assert!(
            text.contains("name=\"fleetauth sweep\" tests=\"5\" failures=\"2\" errors=\"2\" skipped=\"0\" time=\"2.500\" timestamp=\"2027-01-15T08:00:00\" hostname=\"ops\""),
            "{text}"
        );
        assert!(text.contains("<testcase classname=\"a\" name=\"gemini\" time=\"1.234\"/>"));
        assert!(text.contains("<failure message=\"]]&gt;&lt;x/&gt;\\x1b[31m\\x01\\u{ffff} &amp; &quot;q&quot;\\nline\" type=\"needs_auth\">"), "{text}");
        assert!(text.contains("<error message=\"d\" type=\"unreachable\">"));
        assert!(!text.contains('\x1b') && !text.contains('\u{1}') && !text.contains('\u{ffff}'));
        assert_eq!(xml_text("ok\tnew\nline"), "ok\tnew\nline");
    }
}
