//! `fleetauth run`: dispatch with the env file sourced, output prefixed by member, worst status.

mod support;

use support::{Lab, State};

#[test]
fn runs_with_env_file_sourced_and_prefixes_output() {
    let lab = Lab::new();
    lab.member("a")
        .provider("gemini", State::NoAuth)
        .env_line("GREETING='hello a'")
        .start();
    lab.member("b")
        .provider("gemini", State::NoAuth)
        .env_line("GREETING='hello b'")
        .start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo \"$GREETING\"; cat; echo done",
    ]);
    out.assert_exit(0);
    out.assert_stdout_contains("a | hello a");
    out.assert_stdout_contains("b | hello b");
    // stdin is closed: `cat` ends at once.
    out.assert_stdout_contains("a | done");
}

#[test]
fn arguments_are_quoted_not_interpreted() {
    let lab = Lab::new();
    lab.member("a").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--",
        "echo",
        "$HOME",
        "a;b",
        "`x`",
    ]);
    out.assert_exit(0);
    out.assert_stdout_contains("a | $HOME a;b `x`");
}

#[test]
fn exit_status_is_the_worst_and_stdin_is_sent_when_asked() {
    let lab = Lab::new();
    lab.member("ok").provider("gemini", State::NoAuth).start();
    lab.member("fails")
        .provider("gemini", State::NoAuth)
        .env_line("CODE=3")
        .start();
    let inv = lab.inventory("");
    let out = lab
        .run(&[
            "run",
            "-i",
            inv.to_str().unwrap(),
            "--stdin",
            "--",
            "sh",
            "-c",
            "read line; echo \"got $line\"; exit ${CODE:-0}",
        ])
        .stdin(b"ping\n")
        .output();
    out.assert_exit(3);
    out.assert_stdout_contains("ok | got ping");
    out.assert_stderr_contains("fails");
    lab.down_member("dead");
    let inv = lab.inventory("");
    lab.fleetauth(&["run", "-i", inv.to_str().unwrap(), "--", "true"])
        .assert_exit(255);
}

#[test]
fn a_timeout_longer_than_a_day_is_refused_before_any_member_is_contacted() {
    let lab = Lab::new();
    let m = lab.member("a").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--timeout",
        "300000000000y",
        "--",
        "true",
    ]);
    out.assert_exit(2);
    out.assert_stderr_contains("--timeout");
    out.assert_stderr_contains("must be at most 24h");
    assert!(m.commands_log().is_empty(), "a member was contacted\n{out}");
}

#[test]
fn closed_stdout_ends_quietly_with_the_worst_status() {
    let lab = Lab::new();
    lab.member("ok").provider("gemini", State::NoAuth).start();
    lab.member("fails")
        .provider("gemini", State::NoAuth)
        .env_line("CODE=3")
        .start();
    let inv = lab.inventory("");
    let out = lab
        .run(&[
            "run",
            "-i",
            inv.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "seq 1 1000; echo oops >&2; exit ${CODE:-0}",
        ])
        .output_with_stdout_closed();
    out.assert_exit(3);
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("Broken pipe"),
        "{out}"
    );
    // stderr still works: the members' stderr and the summary table.
    out.assert_stderr_contains("fails | oops");
    out.assert_stderr_contains("EXIT");
}
