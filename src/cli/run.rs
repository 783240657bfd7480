//! `fleetauth run -- CMD…`: dispatch a command to every member with its env file sourced.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use super::{Cli, Failure, FleetArgs, Prepared, prepare};
use crate::fleet::{Progress, map_members};
use crate::shell::join;
use crate::ssh::Input;

/// Exit status reported for a member the command never ran on (as `ssh` does).
const UNREACHABLE_STATUS: i32 = 255;

/// The remote command: source the env file (exporting its variables), then exec `argv`.
pub fn remote_command(env_file: &str, argv: &[String]) -> String {
    format!(
        "{}; cd \"$HOME\" 2>/dev/null; exec {}",
        crate::envfile::source_command(env_file),
        join(argv)
    )
}

struct Outcome {
    member: String,
    status: i32,
    note: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

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
    let stdin: Arc<Vec<u8>> = Arc::new(if with_stdin {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure {
                code: 1,
                message: format!("error: reading stdin: {e}"),
            })?;
        buf
    } else {
        Vec::new()
    });
    let argv: Arc<Vec<String>> = Arc::new(argv.to_vec());
    let progress = Progress::new(members.len(), "run");
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let outcomes = map_members(members, super::in_flight(fleet), &progress, move |m| {
        let (t, argv, stdin) = (transport.clone(), argv.clone(), stdin.clone());
        async move {
            let deadline = timeout.unwrap_or(m.command_timeout);
            let mut o = Outcome {
                member: m.name.clone(),
                status: UNREACHABLE_STATUS,
                note: String::new(),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            let session = match t.connect(&m).await {
                Ok(s) => s,
                Err(e) => {
                    o.note = format!("unreachable: {e}");
                    return o;
                }
            };
            let input = if stdin.is_empty() {
                Input::None
            } else {
                Input::Plain(&stdin)
            };
            match session
                .exec(&remote_command(&m.env_file, &argv), input, deadline)
                .await
            {
                Ok(out) => {
                    o.status = out.exit.map(|c| c as i32).unwrap_or(UNREACHABLE_STATUS - 1);
                    if let Some(sig) = out.signal {
                        o.note = format!("killed by signal {sig}");
                    }
                    o.stdout = out.stdout;
                    o.stderr = out.stderr;
                }
                Err(e) => {
                    o.status = UNREACHABLE_STATUS - 1;
                    o.note = e.to_string();
                }
            }
            session.close().await;
            o
        }
    })
    .await;
    let mut worst = 0;
    let mut t = crate::report::new_table(false);
    t.set_header(["MEMBER", "EXIT", "NOTE"]);
    for (o, name) in outcomes.into_iter().zip(names) {
        let o = o.unwrap_or(Outcome {
            member: name,
            status: UNREACHABLE_STATUS - 1,
            note: "internal error".into(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        });
        print!("{}", prefixed(&o.member, &o.stdout));
        eprint!("{}", prefixed(&o.member, &o.stderr));
        worst = worst.max(o.status);
        t.add_row([o.member.clone(), o.status.to_string(), o.note.clone()]);
    }
    eprintln!("{t}");
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_command_quotes_every_word() {
        let cmd = remote_command(
            "~/.config/fleetauth/env",
            &["echo".into(), "a b".into(), "$(x)".into()],
        );
        assert!(cmd.ends_with("exec echo 'a b' '$(x)'"), "{cmd}");
        assert!(
            cmd.starts_with("f=\"$HOME\"/.config/fleetauth/env;"),
            "{cmd}"
        );
    }

    #[test]
    fn output_is_prefixed_by_member() {
        assert_eq!(prefixed("m1", b"a\nb\n"), "m1 | a\nm1 | b\n");
    }
}
