//! `fleetauth run`'s pipeline: one command on every member, with its env file sourced
//! (`src/remote/run.sh`), and what each member's run came to.
//!
//! Whatever the member's login shell, the command line is one fixed bootstrap; the arguments
//! travel with the script on stdin and the user's stdin follows the script. The script prints a
//! framed start marker on stdout and stderr right before it `exec`s the command, so what a login
//! shell's start-up printed is dropped, and a member where the marker never came is a member
//! where the command never ran — never a silent exit 0.

use std::sync::Arc;
use std::time::Duration;

use crate::fleet::{Progress, map_members};
use crate::inventory::Member;
use crate::remote::{self, Nonce};
use crate::ssh::{ExecOutput, Input, Transport};

/// Exit status reported for a member the command never ran on (as `ssh` does).
pub const UNREACHABLE_STATUS: i32 = 255;

/// The user's command's own output: what follows the script's start marker. `None` when the
/// marker is missing, i.e. the command never started.
fn after_marker<'a>(output: &'a [u8], nonce: &Nonce) -> Option<&'a [u8]> {
    let marker = format!("@@FA{}\t-\tstart\t1\n", nonce.as_str());
    let at = output
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())?;
    Some(&output[at + marker.len()..])
}

/// What the command came to on one member.
pub struct Outcome {
    pub member: String,
    /// The exit status on the member (saturated at 255); 255 when the command never ran, 254
    /// when it did not finish.
    pub status: i32,
    pub note: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why the command did not start on a member whose script ran (or did not).
fn not_started(out: &ExecOutput, nonce: &Nonce) -> String {
    let unsafe_env = remote::records(&out.stdout, nonce)
        .into_iter()
        .find(|r| r.field == "env_unsafe")
        .map(|r| r.text());
    match unsafe_env {
        Some(why) => format!("not run: env file not sourced: {why}"),
        None => format!(
            "not run: the member's login shell did not start fleetauth's command (exit {:?}): {}",
            out.exit,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
        ),
    }
}

/// The status a member's exit code stands for: saturated at 255 (an exit status above 255 from
/// a server is a failure, never `as u8`-wrapped into success); a command killed by a signal
/// counts as not finished (254).
fn member_status(exit: Option<u32>) -> i32 {
    exit.map(|c| c.min(255) as i32)
        .unwrap_or(UNREACHABLE_STATUS - 1)
}

/// Run `argv` on `m` with `stdin`, within `timeout` (default: the member's command_timeout).
pub async fn run_on_member(
    t: Arc<dyn Transport>,
    m: Member,
    argv: Arc<Vec<String>>,
    stdin: Arc<Vec<u8>>,
    timeout: Option<Duration>,
) -> Outcome {
    let deadline = timeout.unwrap_or(m.command_timeout);
    let mut o = Outcome {
        member: m.name.clone(),
        status: UNREACHABLE_STATUS,
        note: String::new(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let session = match t.connect(&m.target()).await {
        Ok(s) => s,
        Err(e) => {
            o.note = format!("unreachable: {e}");
            return o;
        }
    };
    let script = remote::run_script(&m.env_file, &argv);
    let mut bytes = script.text().as_bytes().to_vec();
    bytes.extend_from_slice(&stdin);
    match session
        .exec(
            &script.command(remote::Role::Run),
            Input::Plain(&bytes),
            deadline,
        )
        .await
    {
        Ok(out) => {
            let nonce = script.nonce();
            match (
                after_marker(&out.stdout, nonce),
                after_marker(&out.stderr, nonce),
            ) {
                (Some(stdout), Some(stderr)) => {
                    o.status = member_status(out.exit);
                    if let Some(sig) = out.signal {
                        o.note = format!("killed by signal {sig}");
                    }
                    o.stdout = stdout.to_vec();
                    o.stderr = stderr.to_vec();
                }
                _ => o.note = not_started(&out, nonce),
            }
        }
        Err(e) => {
            o.status = UNREACHABLE_STATUS - 1;
            o.note = e.to_string();
        }
    }
    session.close().await;
    o
}

/// Run `argv` on every member, at most `jobs` at once; one outcome per member, in order.
pub async fn run_fleet(
    transport: Arc<dyn Transport>,
    members: Vec<Member>,
    argv: &[String],
    stdin: Vec<u8>,
    timeout: Option<Duration>,
    jobs: usize,
    progress: &Progress,
) -> Vec<Outcome> {
    let (argv, stdin) = (Arc::new(argv.to_vec()), Arc::new(stdin));
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    map_members(members, jobs, progress, move |m| {
        run_on_member(transport.clone(), m, argv.clone(), stdin.clone(), timeout)
    })
    .await
    .into_iter()
    .zip(names)
    .map(|(o, member)| {
        o.unwrap_or(Outcome {
            member,
            status: UNREACHABLE_STATUS - 1,
            note: "internal error: this member's task failed (a fleetauth bug)".into(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_before_the_marker_is_dropped() {
        let nonce = Nonce::new();
        let out = format!("motd\n@@FA{}\t-\tstart\t1\nreal\n", nonce.as_str());
        assert_eq!(after_marker(out.as_bytes(), &nonce), Some(&b"real\n"[..]));
        assert_eq!(after_marker(b"@@FA\t-\tstart\t1\nforged\n", &nonce), None);
    }

    #[test]
    fn statuses_saturate_instead_of_wrapping() {
        assert_eq!(member_status(Some(0)), 0);
        assert_eq!(member_status(Some(3)), 3);
        assert_eq!(member_status(Some(256)), 255);
        assert_eq!(member_status(Some(u32::MAX)), 255);
        assert_eq!(member_status(None), 254);
    }

    #[test]
    fn the_command_line_carries_no_argument() {
        let argv: Vec<String> = vec!["echo".into(), "a b".into(), "$(x)".into()];
        let script = remote::run_script("~/.config/fleetauth/env", &argv);
        let cmd = script.command(remote::Role::Run);
        assert!(!cmd.contains("echo") && !cmd.contains("$(x)"), "{cmd}");
        let words = crate::shell::quote(&crate::shell::join(&argv));
        assert!(script.text().contains(&format!("FA_ARGV={words}\n")));
    }
}
