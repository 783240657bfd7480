//! `fleetauth run -- CMD…`: wiring and printing; the pipeline is [`crate::dispatch`].

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use super::formats::{MemberTimes, hostname};
use super::out::{err, errln, out};
use super::{Cli, Failure, FleetArgs, FleetFormat, Prepared, prepare};
use crate::dispatch::{Outcome, run_fleet};
use crate::fleet::Progress;
use crate::report::junit::Suite;
use crate::report::run::{self as report_run, RunResult};

fn prefixed(member: &str, bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| format!("{member} | {l}\n"))
        .collect()
}

pub async fn run(
    cli: &Cli,
    fleet: &FleetArgs,
    argv: &[String],
    with_stdin: bool,
    timeout: Option<Duration>,
) -> Result<i32, Failure> {
    if argv.is_empty() {
        return Err(Failure::usage(
            "error: nothing to run: give the command after `--`",
        ));
    }
    let format = fleet.format.resolve();
    if matches!(format, FleetFormat::Tsv | FleetFormat::Prometheus) {
        return Err(Failure::usage(format!(
            "error: `run --format {}` is not available: run gives table, plain, json, jsonl or junit",
            if format == FleetFormat::Tsv {
                "tsv"
            } else {
                "prometheus"
            }
        )));
    }
    let Prepared {
        members, transport, ..
    } = prepare(cli, fleet)?;
    let stdin: Vec<u8> = if with_stdin {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::failed(format!("error: reading stdin: {e}")))?;
        buf
    } else {
        Vec::new()
    };
    let started = (Instant::now(), SystemTime::now());
    let times = MemberTimes::default();
    let streaming = format == FleetFormat::Jsonl;
    let progress = Progress::new(members.len(), "run").on_finished({
        let times = times.clone();
        move |o: &Outcome, took| {
            times.record(&o.member, took);
            if streaming {
                out!("{}", report_run::line(&result_of(o)));
            }
        }
    });
    let jobs = super::in_flight(fleet);
    let outcomes = run_fleet(transport, members, argv, stdin, timeout, jobs, &progress).await;
    let worst = outcomes.iter().map(|o| o.status).max().unwrap_or(0);
    let results: Vec<RunResult> = outcomes.iter().map(result_of).collect();
    match format {
        FleetFormat::Json => out!("{}", report_run::to_json(&results)),
        FleetFormat::Jsonl => out!("{}", report_run::summary_line(&results)),
        FleetFormat::Junit => {
            let hostname = hostname();
            let suite = Suite {
                name: "fleetauth run",
                hostname: &hostname,
                timestamp: started.1,
                time: started.0.elapsed(),
            };
            let command = crate::shell::join(argv);
            out!(
                "{}",
                report_run::to_junit(&results, &command, &suite, |m| times.get(m))
            );
        }
        _ => {
            for o in &outcomes {
                out!("{}", prefixed(&o.member, &o.stdout));
                err!("{}", prefixed(&o.member, &o.stderr));
            }
        }
    }
    let mut t = crate::report::new_table(false);
    t.set_header(["MEMBER", "EXIT", "NOTE"]);
    for o in &outcomes {
        // The note may quote the member's shell: never raw to a terminal.
        let note = crate::report::printable(&o.note).into_owned();
        t.add_row([o.member.clone(), o.status.to_string(), note]);
    }
    errln!("{t}");
    Ok(worst)
}

/// What a member's run came to, as the machine formats report it.
fn result_of(o: &Outcome) -> RunResult {
    RunResult::new(&o.member, o.status, &o.note, &o.stdout, &o.stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_prefixed_by_member() {
        assert_eq!(prefixed("m1", b"a\nb\n"), "m1 | a\nm1 | b\n");
    }
}
