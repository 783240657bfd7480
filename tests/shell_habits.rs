//! What an operator's shell and habits expect of the binary: completions that load in bash,
//! zsh and fish and complete fleetauth's commands, a man page per command, and
//! `FLEETAUTH_INVENTORY` standing in for `-i`.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::{Lab, State};

/// Run `shell -c script` with the completion script's path as its first argument (`$1` in bash
/// and zsh, `$argv[1]` in fish), returning stdout (asserting success).
fn shell(shell: &str, script: &str, completions: &Path) -> String {
    let mut cmd = Command::new(shell);
    cmd.arg("-c").arg(script);
    if shell != "fish" {
        cmd.arg(shell); // $0
    }
    let out = cmd
        .arg(completions)
        .env("HOME", completions.parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("{shell} (scripts/install-test-deps installs it): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shell}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn completions(lab: &Lab, name: &str) -> std::path::PathBuf {
    let out = lab.fleetauth(&["completions", name]);
    out.assert_exit(0);
    let path = lab.dir().join(format!("fleetauth.{name}"));
    fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn completions_load_and_complete_in_bash_zsh_and_fish() {
    let lab = Lab::new();
    // bash: the completion function answers `fleetauth sw<TAB>` and `fleetauth sweep --de<TAB>`.
    let bash = completions(&lab, "bash");
    let words = shell(
        "bash",
        r#"source "$1"
complete -p fleetauth >/dev/null || exit 3
COMP_WORDS=(fleetauth sw); COMP_CWORD=1; COMP_LINE="fleetauth sw"; COMP_POINT=${#COMP_LINE}
_fleetauth fleetauth sw fleetauth; echo "${COMPREPLY[*]}"
COMP_WORDS=(fleetauth sweep --de); COMP_CWORD=2; COMP_LINE="fleetauth sweep --de"; COMP_POINT=${#COMP_LINE}
_fleetauth fleetauth --de sweep; echo "${COMPREPLY[*]}""#,
        &bash,
    );
    let lines: Vec<&str> = words.lines().collect();
    assert_eq!(lines.first().copied(), Some("sweep"), "{words}");
    assert!(
        lines.get(1).is_some_and(|l| l.contains("--deep")),
        "{words}"
    );

    // zsh: the script defines the completion function and registers it with compinit.
    let zsh = completions(&lab, "zsh");
    let out = shell(
        "zsh",
        r#"autoload -U compinit && compinit -u -D
source "$1"
whence -w _fleetauth
print -r -- ${_comps[fleetauth]}"#,
        &zsh,
    );
    assert!(out.contains("_fleetauth: function"), "{out}");
    assert!(out.lines().any(|l| l == "_fleetauth"), "{out}");

    // fish: `complete -C` asks for the completions of a command line.
    let fish = completions(&lab, "fish");
    let out = shell(
        "fish",
        r#"source $argv[1]; complete -C 'fleetauth sw'; complete -C 'fleetauth provision --ch'"#,
        &fish,
    );
    assert!(out.lines().any(|l| l.starts_with("sweep")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("--check")), "{out}");
}

#[test]
fn man_pages_for_every_command() {
    let lab = Lab::new();
    let page = lab.fleetauth(&["man"]);
    page.assert_exit(0);
    assert!(page.stdout.contains(".TH fleetauth 1"), "{page}");
    let dir = lab.dir().join("man");
    fs::create_dir(&dir).unwrap();
    lab.fleetauth(&["man", "--dir", dir.to_str().unwrap()])
        .assert_exit(0);
    for name in ["fleetauth.1", "fleetauth-sweep.1", "fleetauth-auth-set.1"] {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".SH OPTIONS"), "{name}: {text}");
    }
    // man(1) renders it without complaint.
    let out = Command::new("man")
        .args(["-l", "--warnings", "-E", "UTF-8"])
        .arg(dir.join("fleetauth-sweep.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output();
    if let Ok(out) = out {
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("FLEETAUTH_INVENTORY"), "{text}");
    }
}

#[test]
fn fleetauth_inventory_stands_in_for_dash_i() {
    let lab = Lab::new();
    lab.member("m").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    // Without -i and without the variable: a usage error that names the variable.
    let none = lab.fleetauth(&["inventory", "check"]);
    none.assert_exit(2);
    none.assert_stderr_contains("--inventory");
    // With the variable: it is the inventory; an explicit -i still wins.
    let out = lab
        .run(&["sweep", "--format", "json"])
        .env("FLEETAUTH_INVENTORY", inv.to_str().unwrap())
        .output();
    out.assert_exit(1);
    assert_eq!(out.row("m", "gemini")["state"], "needs_auth", "{out}");
    let missing = lab
        .run(&["inventory", "check", "-i", "/nonexistent/inv.toml"])
        .env("FLEETAUTH_INVENTORY", inv.to_str().unwrap())
        .output();
    missing.assert_exit(2);
    missing.assert_stderr_contains("/nonexistent/inv.toml");
}
