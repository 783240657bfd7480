//! fleetauth on members whose login shell is not sh-like bash (issue 8, "any login shell").
//!
//! sshd runs every command line through the user's login shell (`$SHELL -c LINE`), after that
//! shell's start-up files. Each test here builds one fleet: a `plain` member (the harness's
//! usual `/bin/sh` member, quiet) and, in the same provider states, members whose login shell
//! is bash, dash, zsh, fish, tcsh and busybox sh, each with start-up files that print to stdout
//! and stderr (`MemberBuilder::login_shell`, `MemberBuilder::noisy_rc`). Whatever fleetauth
//! reports or runs must be the same on every one of them as on `plain`, and nothing a start-up
//! file printed may show up. Each test checks every shell and lists every member that differs,
//! so one failure shows which shells break.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use support::{Lab, Member, MemberBuilder, Output, RC_NOISE, State, fake};

/// The login shells under test: member name = shell (see `MemberBuilder::login_shell`).
const SHELLS: [&str; 6] = ["bash", "dash", "zsh", "fish", "tcsh", "busybox"];

/// The reference member: the harness's usual `/bin/sh` member, quiet start-up.
const PLAIN: &str = "plain";

const PASS: &str = support::STORE_PASSPHRASE;

/// One test's fleet: `plain` and one member per login shell.
struct Fleet {
    lab: Lab,
    inv: PathBuf,
    members: Vec<Member>,
}

impl Fleet {
    fn member(&self, name: &str) -> &Member {
        self.members.iter().find(|m| m.name() == name).unwrap()
    }
    fn inv(&self) -> &str {
        self.inv.to_str().unwrap()
    }
}

/// A lab holding `plain` and one noisy member per login shell, all configured by `configure`
/// (providers, states, env lines), started in parallel, and its inventory.
fn fleet(configure: impl for<'a> Fn(MemberBuilder<'a>) -> MemberBuilder<'a> + Sync) -> Fleet {
    let lab = Lab::new();
    let members: Vec<Member> = std::thread::scope(|s| {
        let plain = s.spawn(|| configure(lab.member(PLAIN)).start());
        let shells: Vec<_> = SHELLS
            .iter()
            .map(|shell| {
                let (lab, configure) = (&lab, &configure);
                s.spawn(move || configure(lab.member(shell).login_shell(shell).noisy_rc()).start())
            })
            .collect();
        std::iter::once(plain)
            .chain(shells)
            .map(|h| h.join().expect("start a member"))
            .collect()
    });
    let inv = lab.inventory("probe_timeout = \"10s\"\ncommand_timeout = \"30s\"");
    Fleet { lab, inv, members }
}

fn all_members() -> impl Iterator<Item = &'static str> {
    std::iter::once(PLAIN).chain(SHELLS)
}

/// The lines fleetauth printed for `member` on `stream` (`MEMBER | line`), prefix removed.
fn lines_of(stream: &str, member: &str) -> Vec<String> {
    let prefix = format!("{member} | ");
    stream
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// The `run` summary table on stderr: member → (EXIT, NOTE). Tolerant of the table's borders.
fn run_statuses(out: &Output) -> BTreeMap<String, (String, String)> {
    let mut map = BTreeMap::new();
    for line in out.stderr.lines() {
        let cells: Vec<&str> = line
            .split(['│', '┆', '|'])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if let [member, exit, rest @ ..] = cells.as_slice()
            && all_members().any(|m| m == *member)
            && exit.parse::<i32>().is_ok()
        {
            let note = rest.first().copied().unwrap_or("").to_string();
            map.insert(member.to_string(), (exit.to_string(), note));
        }
    }
    map
}

/// Members whose `run` exit status is not `want`, as `member: exit N (note)` lines.
fn wrong_statuses(out: &Output, want: i32) -> Vec<String> {
    let statuses = run_statuses(out);
    all_members()
        .filter_map(|m| match statuses.get(m) {
            Some((exit, _)) if *exit == want.to_string() => None,
            Some((exit, note)) => Some(format!("{m}: exit {exit}, want {want} ({note})")),
            None => Some(format!("{m}: no row in the run table")),
        })
        .collect()
}

/// Every line of either stream that a start-up file printed.
fn rc_noise(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.contains(RC_NOISE))
        .map(str::to_string)
        .collect()
}

/// For every login-shell member, each row whose `fields` differ from `plain`'s row for the same
/// provider (or that has no counterpart).
fn rows_unlike_plain(out: &Output, fields: &[&str]) -> Vec<String> {
    let by_provider = |member: &str| -> BTreeMap<String, serde_json::Value> {
        out.rows_for(member)
            .into_iter()
            .map(|r| (r["provider"].as_str().unwrap_or("?").to_string(), r))
            .collect()
    };
    let plain = by_provider(PLAIN);
    assert!(!plain.is_empty(), "no rows for {PLAIN}\n{out}");
    let mut wrong = Vec::new();
    for shell in SHELLS {
        let rows = by_provider(shell);
        for (provider, want) in &plain {
            let Some(got) = rows.get(provider) else {
                wrong.push(format!("{shell} × {provider}: no row"));
                continue;
            };
            for field in fields {
                if got[field] != want[field] {
                    wrong.push(format!(
                        "{shell} × {provider}: {field} {} — {PLAIN} has {}",
                        got[field], want[field]
                    ));
                }
            }
        }
        for provider in rows.keys().filter(|p| !plain.contains_key(*p)) {
            wrong.push(format!("{shell} × {provider}: a row {PLAIN} does not have"));
        }
    }
    wrong
}

/// Providers in states that exercise the env file (sourced key, rejected key), a credential
/// file and a missing CLI.
fn sweep_states(m: MemberBuilder<'_>) -> MemberBuilder<'_> {
    m.provider("gemini", State::EnvKey)
        .provider("claude", State::OauthExpiring)
        .provider("codex", State::NotInstalled)
        .provider("copilot", State::RejectedKey)
}

#[test]
fn harness_runs_each_login_shell_with_its_start_up_files() {
    // Not fleetauth: checks that the fixture is what the other tests assume, through OpenSSH.
    let f = fleet(|m| m.provider("gemini", State::NoAuth));
    let mut wrong = Vec::new();
    for shell in SHELLS {
        let m = f.member(shell);
        // `; true`: bash and zsh exec a lone last command, and $$ would be readlink itself.
        let pid = if shell == "fish" { "$fish_pid" } else { "$$" };
        let out = f
            .lab
            .ssh(m, &format!("readlink /proc/{pid}/exe; id -un; true"));
        let exe = std::fs::canonicalize(m.login_shell().unwrap()).unwrap();
        let want = format!("{}\n{}", exe.display(), m.user());
        let got: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| !l.contains(RC_NOISE))
            .collect();
        if got.join("\n") != want || out.code != Some(0) {
            wrong.push(format!("{shell}: want {want:?}, got\n{out}"));
        }
        // Which start-up files a `-c` shell run by sshd reads (sh, dash, busybox: none).
        let file = match shell {
            "bash" => Some(".bashrc"),
            "zsh" => Some(".zshenv"),
            "fish" => Some("config.fish"),
            "tcsh" => Some(".tcshrc"),
            _ => None,
        };
        if let Some(file) = file {
            for stream in ["stdout", "stderr"] {
                let line = format!("{RC_NOISE} {file} {stream}");
                let text = if stream == "stdout" {
                    &out.stdout
                } else {
                    &out.stderr
                };
                if !text.contains(&line) {
                    wrong.push(format!("{shell}: {line:?} missing\n{out}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `sweep` with `extra` args over the fleet in [`sweep_states`]: the plain member's rows are the
/// `expected` states (or "the same" proves nothing), and every other member's rows equal them.
fn assert_sweep_rows_match_plain(extra: &[&str], expected: [(&str, &str); 4]) {
    let f = fleet(sweep_states);
    let mut args = vec!["sweep", "-i", f.inv(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = f.lab.fleetauth(&args);
    assert!(
        matches!(out.code, Some(0 | 1)),
        "sweep {extra:?} must end 0 or 1\n{out}"
    );
    for (provider, want) in expected {
        assert_eq!(out.row(PLAIN, provider)["state"], want, "{provider}\n{out}");
    }
    let wrong = rows_unlike_plain(&out, &["state", "source", "version", "detail"]);
    assert!(
        wrong.is_empty(),
        "sweep {extra:?} rows differ from {PLAIN}'s:\n{}\n\n{out}",
        wrong.join("\n")
    );
}

#[test]
fn sweep_rows_are_the_same_under_every_login_shell() {
    assert_sweep_rows_match_plain(
        &[],
        [
            ("gemini", "ready"),
            ("claude", "ready"),
            ("codex", "not_installed"),
            ("copilot", "ready"),
        ],
    );
}

#[test]
fn deep_sweep_rows_are_the_same_under_every_login_shell() {
    assert_sweep_rows_match_plain(
        &["--deep"],
        [
            ("gemini", "ready"),
            ("claude", "ready"),
            ("codex", "not_installed"),
            ("copilot", "needs_auth"),
        ],
    );
}

#[test]
fn provision_pushes_the_operator_key_under_every_login_shell() {
    let f = fleet(|m| m.provider("gemini", State::NoAuth));
    let key = fake::gemini_key();
    let out = f
        .lab
        .run(&["provision", "-i", f.inv(), "--format", "json", "--no-input"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .env("GEMINI_API_KEY", &key)
        .output();
    out.assert_no_secret(&key);
    let mut wrong = Vec::new();
    for name in all_members() {
        let m = f.member(name);
        let row = out.row(name, "gemini");
        let got = (row["state"].as_str(), row["action"].as_str());
        if got != (Some("ready"), Some("pushed")) {
            wrong.push(format!(
                "{name}: {} / {} ({}), want ready / pushed",
                row["state"], row["action"], row["detail"]
            ));
        }
        if !m.env_file_contents().contains(&key) {
            wrong.push(format!(
                "{name}: the key is not in {}",
                m.env_file().display()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "provision (key masked in the output below):\n{}\n\n{}",
        wrong.join("\n"),
        out.to_string().replace(&key, "<KEY>")
    );
    out.assert_exit(0);
}

#[test]
fn run_false_exits_1_under_every_login_shell() {
    let f = fleet(|m| m.provider("gemini", State::NoAuth));
    let out = f.lab.fleetauth(&["run", "-i", f.inv(), "--", "false"]);
    let wrong = wrong_statuses(&out, 1);
    assert!(
        wrong.is_empty(),
        "run -- false:\n{}\n\n{out}",
        wrong.join("\n")
    );
    out.assert_exit(1);
}

#[test]
fn run_exit_status_3_under_every_login_shell() {
    let f = fleet(|m| m.provider("gemini", State::NoAuth));
    let out = f
        .lab
        .fleetauth(&["run", "-i", f.inv(), "--", "sh", "-c", "exit 3"]);
    let wrong = wrong_statuses(&out, 3);
    assert!(
        wrong.is_empty(),
        "run -- sh -c 'exit 3':\n{}\n\n{out}",
        wrong.join("\n")
    );
    out.assert_exit(3);
}

#[test]
fn run_passes_every_argument_intact_and_no_start_up_output() {
    let f = fleet(|m| m.provider("gemini", State::NoAuth));
    let args = ["a b", "", "it's", "$HOME", "*", "back\\slash", "ünï"];
    let mut argv = vec!["run", "-i", f.inv(), "--", "printf", "%s|"];
    argv.extend(args);
    let out = f.lab.fleetauth(&argv);
    let want = format!("{}|", args.join("|"));
    let mut wrong = wrong_statuses(&out, 0);
    for m in all_members() {
        let got = lines_of(&out.stdout, m);
        if got != [want.clone()] {
            wrong.push(format!("{m}: printed {got:?}, want [{want:?}]"));
        }
    }
    wrong.extend(
        rc_noise(&out)
            .into_iter()
            .map(|l| format!("start-up output: {l}")),
    );
    assert!(
        wrong.is_empty(),
        "run -- printf '%s|' {args:?}:\n{}\n\n{out}",
        wrong.join("\n")
    );
    out.assert_exit(0);
}

#[test]
fn run_stdin_reaches_the_command_under_every_login_shell() {
    let f = fleet(|m| m.provider("gemini", State::NoAuth));
    let input = "first line\n  'quoted' \"double\" $HOME `tick` \\ ünï\n\nlast line\n";
    let out = f
        .lab
        .run(&["run", "-i", f.inv(), "--stdin", "--", "cat"])
        .stdin(input.as_bytes())
        .output();
    let want: Vec<String> = input.lines().map(str::to_string).collect();
    let mut wrong = wrong_statuses(&out, 0);
    for m in all_members() {
        let got = lines_of(&out.stdout, m);
        if got != want {
            wrong.push(format!("{m}: printed {got:?}, want {want:?}"));
        }
    }
    wrong.extend(
        rc_noise(&out)
            .into_iter()
            .map(|l| format!("start-up output: {l}")),
    );
    assert!(
        wrong.is_empty(),
        "run --stdin -- cat:\n{}\n\n{out}",
        wrong.join("\n")
    );
    out.assert_exit(0);
}
