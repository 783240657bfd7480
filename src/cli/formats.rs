//! The fleet commands' output in the format asked for (`--format`): resolving `auto`, and
//! rendering rows — all at the end, or (JSON lines) each member's as it finishes.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::FleetFormat;
use super::out::out;
use crate::fleet::Progress;
use crate::report::{self, Row, jsonl::JsonLines, junit::Suite};

impl FleetFormat {
    /// `auto` decided: a table on a terminal, plain columns anywhere else (a pipe, a file, a CI
    /// log); other formats as given.
    pub fn resolve(self) -> FleetFormat {
        match self {
            FleetFormat::Auto if std::io::stdout().is_terminal() => FleetFormat::Table,
            FleetFormat::Auto => FleetFormat::Plain,
            other => other,
        }
    }
}

/// The controller's host name, for JUnit's `hostname`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match ok {
        true if end > 0 => String::from_utf8_lossy(&buf[..end]).into_owned(),
        _ => "localhost".to_string(),
    }
}

/// Each member's time, as its task reported it.
#[derive(Clone, Default)]
pub struct MemberTimes(Arc<Mutex<BTreeMap<String, Duration>>>);

impl MemberTimes {
    pub fn record(&self, member: &str, took: Duration) {
        let mut times = self.0.lock().expect("not poisoned");
        times.insert(member.to_string(), took);
    }

    pub fn get(&self, member: &str) -> Option<Duration> {
        self.0.lock().expect("not poisoned").get(member).copied()
    }
}

/// What a run of `sweep` or `provision` prints, from start to end.
pub struct RowReport {
    format: FleetFormat,
    color: bool,
    /// `fleetauth sweep`, …: the JUnit suite's name.
    suite: String,
    started: (Instant, SystemTime),
    lines: Arc<JsonLines>,
    times: MemberTimes,
}

impl RowReport {
    /// Start the report of `command` in `format` (resolved here), its clock too.
    pub fn new(format: FleetFormat, color: bool, command: &str) -> RowReport {
        RowReport {
            format: format.resolve(),
            color,
            suite: format!("fleetauth {command}"),
            started: (Instant::now(), SystemTime::now()),
            lines: Arc::new(JsonLines::new()),
            times: MemberTimes::default(),
        }
    }

    /// What to call with a member's rows the moment they are final: records the member's time,
    /// and writes (and flushes) its JSON lines under `jsonl`.
    pub fn member_finished(&self) -> impl Fn(&[Row], Duration) + Send + Sync + 'static {
        let (lines, times) = (self.lines.clone(), self.times.clone());
        let streaming = self.format == FleetFormat::Jsonl;
        move |rows: &[Row], took: Duration| {
            if let Some(r) = rows.first() {
                times.record(&r.member, took);
            }
            if streaming {
                out!("{}", lines.member(rows));
            }
        }
    }

    /// `progress`, telling this report of each member's rows as they finish.
    pub fn listening(&self, progress: Progress) -> Progress {
        let finished = self.member_finished();
        progress.on_finished(move |rows: &Vec<Row>, took| finished(rows, took))
    }

    /// Print the end of the report: the whole of it, or (JSON lines) what was not streamed.
    pub fn finish(&self, rows: &[Row]) {
        let text = match self.format {
            FleetFormat::Auto | FleetFormat::Table => report::to_table(rows, self.color),
            FleetFormat::Plain => report::to_plain(rows),
            FleetFormat::Tsv => report::tsv::to_tsv(rows),
            FleetFormat::Json => report::to_json(rows),
            FleetFormat::Jsonl => self.lines.finish(rows),
            FleetFormat::Junit => {
                let hostname = hostname();
                let suite = Suite {
                    name: &self.suite,
                    hostname: &hostname,
                    timestamp: self.started.1,
                    time: self.started.0.elapsed(),
                };
                report::junit::to_junit(rows, &suite, |m| self.times.get(m))
            }
            FleetFormat::Prometheus => report::prometheus::to_prometheus(rows),
        };
        out!("{text}");
    }
}
