//! `fleetauth run -- CMD…`: wiring and printing; the pipeline is [`crate::dispatch`].

use std::io::Read;
use std::time::Duration;

use super::out::{err, errln, out};
use super::{Cli, Failure, FleetArgs, Prepared, prepare};
use crate::dispatch::run_fleet;
use crate::fleet::Progress;

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
    let progress = Progress::new(members.len(), "run");
    let jobs = super::in_flight(fleet);
    let outcomes = run_fleet(transport, members, argv, stdin, timeout, jobs, &progress).await;
    let mut worst = 0;
    let mut t = crate::report::new_table(false);
    t.set_header(["MEMBER", "EXIT", "NOTE"]);
    for o in outcomes {
        out!("{}", prefixed(&o.member, &o.stdout));
        err!("{}", prefixed(&o.member, &o.stderr));
        worst = worst.max(o.status);
        t.add_row([o.member.clone(), o.status.to_string(), o.note.clone()]);
    }
    errln!("{t}");
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_prefixed_by_member() {
        assert_eq!(prefixed("m1", b"a\nb\n"), "m1 | a\nm1 | b\n");
    }
}
