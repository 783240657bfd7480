//! The member-side scripts run for real, locally: under each `/bin/sh` a member may have (dash,
//! bash, busybox ash), with their command lines parsed by each login shell a member may have
//! (sh, bash, zsh, fish, tcsh, busybox). A shell or awk missing here is skipped with a note, and
//! fails the test when `CI` is set (`scripts/install-test-deps` installs them).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::probe::{ProbeRequest, build_script, parse_output};
use crate::provider::{Provider, Registry};
use crate::provision::transaction::{self, Ending, Install, Installed};

/// The `/bin/sh` implementations scripts must run under: (label, program and leading args).
const SHELLS: &[(&str, &[&str])] = &[
    ("dash", &["dash"]),
    ("bash", &["bash"]),
    ("busybox", &["busybox", "sh"]),
];

/// Login shells that parse fleetauth's command lines: (label, program and args before `-c`).
const LOGIN_SHELLS: &[(&str, &[&str])] = &[
    ("sh", &["sh"]),
    ("bash", &["bash"]),
    ("zsh", &["zsh", "-f"]),
    ("fish", &["fish", "--no-config"]),
    ("tcsh", &["tcsh", "-f"]),
    ("busybox", &["busybox", "sh"]),
];

fn which(tool: &str) -> Option<PathBuf> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// Whether `program` is here; panics under CI when it is not.
pub(super) fn available(program: &str) -> bool {
    if which(program).is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is not installed: run scripts/install-test-deps"
    );
    eprintln!(
        "note: {program} is not installed; its cases are skipped (scripts/install-test-deps)"
    );
    false
}

fn gemini() -> Provider {
    Registry::builtin().unwrap().get("gemini").unwrap().clone()
}

/// A member's `$HOME` on this machine, with a `bin/sh` that is the shell under test.
struct Home {
    dir: tempfile::TempDir,
    shell: &'static [&'static str],
}

impl Home {
    fn new(shell: &'static [&'static str]) -> Home {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let bin = dir.path().join("shbin");
        fs::create_dir(&bin).unwrap();
        let program = which(shell[0]).unwrap();
        if shell.len() == 1 {
            std::os::unix::fs::symlink(&program, bin.join("sh")).unwrap();
        } else {
            // busybox picks its applet from argv[0].
            std::os::unix::fs::symlink(&program, bin.join(shell[1])).unwrap();
        }
        fs::create_dir(dir.path().join("tmp")).unwrap();
        Home { dir, shell }
    }

    /// A member with the gemini stub and an env file holding `env` with `mode`.
    fn gemini(shell: &'static [&'static str], env: &[u8], mode: u32) -> Home {
        let home = Home::new(shell);
        home.gemini_stub();
        write_mode(&home.env_file(), env, mode);
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn env_file(&self) -> PathBuf {
        self.path().join(".config/fleetauth/env")
    }

    fn path_var(&self) -> String {
        format!(
            "{}:{}:/usr/bin:/bin",
            self.path().join("shbin").display(),
            self.path().join(".local/bin").display()
        )
    }

    /// The gemini stub: answers when GEMINI_API_KEY is `AIza-good…`, hangs for `AIza-hang…`.
    fn gemini_stub(&self) {
        write_exec(
            &self.path().join(".local/bin/gemini"),
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo 0.61.0; exit 0; }\n\
             case ${GEMINI_API_KEY:-} in\n\
             AIza-good*) echo '{\"response\":\"OK\"}'; exit 0 ;;\n\
             AIza-hang*) exec sleep 60 ;;\n\
             esac\necho 'API key not valid' >&2; exit 41\n",
        );
    }

    /// Start `command` as sshd would: `LOGIN -c COMMAND` from $HOME, stdin piped.
    fn spawn(&self, login: &[&str], command: &str) -> Child {
        self.spawn_env(login, command, &[])
    }

    /// [`Home::spawn`] with `env` in the member's own environment too.
    fn spawn_env(&self, login: &[&str], command: &str, env: &[(&str, &str)]) -> Child {
        Command::new(login[0])
            .args(&login[1..])
            .arg("-c")
            .arg(command)
            .current_dir(self.path())
            .env_clear()
            .envs(env.iter().copied())
            .env("HOME", self.path())
            .env("PATH", self.path_var())
            .env("TMPDIR", self.path().join("tmp"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn sh(&self) -> &'static [&'static str] {
        self.shell
    }

    /// The files in the env file's directory.
    fn env_dir_listing(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.env_file().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn tmp_listing(&self) -> Vec<String> {
        fs::read_dir(self.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    }
}

fn write_exec(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The test's side of a transaction's question: the verdict, or None to close stdin unanswered.
type Judge<'a> = dyn Fn(&[u8]) -> Option<Vec<u8>> + 'a;

/// A way to make a member unsafe, and the status the push must refuse it with.
type Hostile = (&'static str, fn(&Home), ExitStatus);

/// What a script printed and how it ended.
struct Ran {
    stdout: Vec<u8>,
    stderr: String,
    code: Option<i32>,
}

/// Feed `stdin` without closing it; when stdout shows `ask`, write `answer(stdout)` and close
/// stdin (or close it at once when `answer` is None). Returns at exit.
fn converse(mut child: Child, stdin: &[u8], ask: Option<(&[u8], &Judge<'_>)>) -> Ran {
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    let mut input = Some(input);
    if ask.is_none() {
        input = None;
    }
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = child.stdout.take().unwrap();
    let mut stdout = Vec::new();
    let mut buf = [0u8; 4096];
    let mut asked = false;
    let mut silent = None;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        stdout.extend_from_slice(&buf[..n]);
        if let Some((q, answer)) = ask
            && !asked
            && stdout.windows(q.len()).any(|w| w == q)
        {
            asked = true;
            match (input.take(), answer(&stdout)) {
                (Some(mut i), Some(reply)) => {
                    let _ = i.write_all(&reply);
                }
                // No answer, but stdin stays open: a client that went silent.
                (i, None) => silent = i,
                (None, Some(_)) => {}
            }
        }
    }
    drop((input, silent));
    let status = child.wait().unwrap();
    Ran {
        stdout,
        stderr: err_reader.join().unwrap(),
        code: status.code(),
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn request<'a>(p: &'a Provider, deep: bool) -> ProbeRequest<'a> {
    ProbeRequest {
        providers: vec![(p, Duration::from_secs(3))],
        env_file: "~/.config/fleetauth/env",
        deep,
    }
}

/// The env-file transaction that pushes `key` for gemini, with a verdict wait of `wait`.
fn env_txn(p: &Provider, key: &str, wait: Duration) -> transaction::Transaction {
    let value = secret(key);
    transaction::build(
        &request(p, true),
        &Install::EnvFile {
            var: "GEMINI_API_KEY",
            value: &value,
        },
        &transaction::Fixes::default(),
        false,
        wait,
    )
    .unwrap()
}

/// Run one env-file transaction with `key`; the verdict is commit when the prompt answered.
fn push(home: &Home, key: &str, keep_backup: bool) -> (Ran, transaction::Report) {
    let p = gemini();
    let value = secret(key);
    let txn = transaction::build(
        &request(&p, true),
        &Install::EnvFile {
            var: "GEMINI_API_KEY",
            value: &value,
        },
        &transaction::Fixes::default(),
        keep_backup,
        Duration::from_secs(60),
    )
    .unwrap();
    let ask = verdict_request(&txn.nonce);
    let nonce = txn.nonce.clone();
    let judge = move |stdout: &[u8]| {
        let obs = parse_output(stdout, &nonce);
        let ok = obs.providers["gemini"].prompt.as_ref().map(|p| p.rc) == Some(0);
        Some(transaction::verdict(ok))
    };
    let child = home.spawn(home.sh(), &txn.command);
    let ran = converse(child, txn.stdin.expose_secret(), Some((&ask, &judge)));
    let report = transaction::report(&ran.stdout, &txn.nonce);
    (ran, report)
}

#[test]
fn the_probe_runs_under_every_sh() {
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        let home = Home::gemini(
            shell,
            b"FOO=1\nexport GEMINI_API_KEY='AIza-good-1'\n",
            0o600,
        );
        let p = gemini();
        for deep in [false, true] {
            let script = build_script(&request(&p, deep));
            let child = home.spawn(shell, Script::command_whole_stdin());
            let ran = converse(child, script.text().as_bytes(), None);
            let obs = parse_output(&ran.stdout, script.nonce());
            assert!(obs.complete, "{label} deep={deep}: {}", ran.stderr);
            let g = &obs.providers["gemini"];
            assert!(g.binary.as_deref().unwrap().ends_with("/.local/bin/gemini"));
            assert_eq!(g.version_out.trim(), "0.61.0", "{label}");
            assert_eq!(
                obs.env_file,
                crate::probe::EnvFileObservation::Present(vec![
                    "FOO".into(),
                    "GEMINI_API_KEY".into()
                ]),
                "{label}"
            );
            if deep {
                let prompt = g.prompt.as_ref().expect("prompt ran");
                assert_eq!(prompt.rc, 0, "{label}: {}", prompt.stderr);
            }
            assert!(home.tmp_listing().is_empty(), "{label}: temp left behind");
        }
    }
}

#[test]
fn a_deep_probe_never_sources_an_env_file_others_can_write() {
    let home = Home::gemini(&["dash"], b"export GEMINI_API_KEY='AIza-good-1'\n", 0o620);
    let p = gemini();
    let script = build_script(&request(&p, true));
    let ran = converse(
        home.spawn(&["sh"], Script::command_whole_stdin()),
        script.text().as_bytes(),
        None,
    );
    let obs = parse_output(&ran.stdout, script.nonce());
    let why = obs.env_file_unsafe.expect("the probe says why");
    assert!(why.contains("writable by group or others"), "{why}");
    assert_eq!(obs.providers["gemini"].prompt.as_ref().unwrap().rc, 41);
}

#[test]
fn a_verified_push_is_committed_and_leaves_no_copy_under_every_sh() {
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        let home = Home::gemini(
            shell,
            b"# operator\nexport GEMINI_API_KEY='AIza-old'\n",
            0o600,
        );
        let (ran, report) = push(&home, "AIza-good-new", false);
        assert_eq!(
            report.installed,
            Some(Installed::Pushed),
            "{label}: {}",
            ran.stderr
        );
        assert_eq!(report.ending, Some(Ending::Committed), "{label}");
        assert_eq!(
            fs::read_to_string(home.env_file()).unwrap(),
            "# operator\nexport GEMINI_API_KEY='AIza-good-new'\n"
        );
        assert_eq!(mode(&home.env_file()), 0o600);
        assert_eq!(
            home.env_dir_listing(),
            ["env", "env.fleetauth-lock"],
            "{label}"
        );
        assert!(home.tmp_listing().is_empty(), "{label}");
        // Again: nothing to write, still verified.
        let (_, report) = push(&home, "AIza-good-new", false);
        assert_eq!(report.installed, Some(Installed::Unchanged), "{label}");
        assert_eq!(report.ending, Some(Ending::Committed), "{label}");
    }
}

#[test]
fn a_push_that_does_not_verify_puts_back_the_exact_file() {
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        let home = Home::new(shell);
        home.gemini_stub();
        let before = b"A=1\nNOTE='two\nlines'\nexport GEMINI_API_KEY='AIza-old'";
        write_mode(&home.env_file(), before, 0o640);
        let ino = fs::metadata(home.env_file()).unwrap().ino();
        let (ran, report) = push(&home, "AIza-rejected", false);
        assert_eq!(
            report.installed,
            Some(Installed::Pushed),
            "{label}: {}",
            ran.stderr
        );
        assert_eq!(report.ending, Some(Ending::Restored), "{label}");
        assert_eq!(fs::read(home.env_file()).unwrap(), before, "{label}");
        assert_eq!(mode(&home.env_file()), 0o640, "{label}");
        assert_eq!(fs::metadata(home.env_file()).unwrap().ino(), ino);
        assert_eq!(
            home.env_dir_listing(),
            ["env", "env.fleetauth-lock"],
            "{label}"
        );
    }
}

#[test]
fn a_first_push_that_does_not_verify_leaves_no_file() {
    let home = Home::new(&["dash"]);
    home.gemini_stub();
    let (_, report) = push(&home, "AIza-rejected", false);
    assert_eq!(report.ending, Some(Ending::Restored));
    assert_eq!(home.env_dir_listing(), ["env.fleetauth-lock"]);
}

#[test]
fn keep_backup_keeps_the_replaced_file() {
    let home = Home::gemini(&["dash"], b"export GEMINI_API_KEY='AIza-old'\n", 0o600);
    let (_, report) = push(&home, "AIza-good-2", true);
    assert_eq!(report.ending, Some(Ending::Committed));
    let prev = home.env_file().with_file_name("env.fleetauth-prev");
    assert_eq!(
        fs::read_to_string(&prev).unwrap(),
        "export GEMINI_API_KEY='AIza-old'\n"
    );
    assert_eq!(mode(&prev), 0o600);
    // The next run without --keep-backup removes it.
    let _ = push(&home, "AIza-good-3", false);
    assert!(!prev.exists());
}

/// Start a transaction whose prompt hangs; return it once it is verifying.
fn hanging_push(home: &Home) -> (Child, transaction::Transaction) {
    let p = gemini();
    let txn = env_txn(&p, "AIza-hang-1", Duration::from_secs(60));
    let mut child = home.spawn(home.sh(), &txn.command);
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(txn.stdin.expose_secret())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(home.env_file())
        .unwrap_or_default()
        .contains("AIza-hang-1")
    {
        assert!(Instant::now() < deadline, "the push never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, txn)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_or_abandoned_transaction_restores_and_leaves_nothing() {
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        for how in ["TERM", "INT", "HUP", "eof"] {
            let home = Home::gemini(shell, b"export GEMINI_API_KEY='AIza-old'\n", 0o600);
            let (mut child, _txn) = hanging_push(&home);
            match how {
                "eof" => drop(child.stdin.take()),
                sig => {
                    let signal = match sig {
                        "TERM" => libc::SIGTERM,
                        "INT" => libc::SIGINT,
                        _ => libc::SIGHUP,
                    };
                    unsafe { libc::kill(child.id() as i32, signal) };
                }
            }
            // End of input is answered after the prompt's deadline (3 s), a signal at once.
            let _ = child.wait();
            wait_until(&format!("{label}/{how}: restored"), || {
                fs::read_to_string(home.env_file()).unwrap_or_default()
                    == "export GEMINI_API_KEY='AIza-old'\n"
                    && home.env_dir_listing() == ["env", "env.fleetauth-lock"]
            });
            wait_until(&format!("{label}/{how}: temp dir removed"), || {
                home.tmp_listing().is_empty()
            });
        }
    }
}

#[test]
fn a_transaction_left_unfinished_is_rolled_back_by_the_next() {
    let home = Home::gemini(
        &["dash"],
        b"export GEMINI_API_KEY='AIza-unverified'\n",
        0o600,
    );
    write_mode(
        &home.env_file().with_file_name("env.fleetauth-txn"),
        b"export GEMINI_API_KEY='AIza-old'\n",
        0o600,
    );
    write_mode(
        &home.env_file().with_file_name("env.fleetauth-tmp.1234"),
        b"x",
        0o600,
    );
    // A rejected key: the rollback happened first, so the restore brings back the old file.
    let (_, report) = push(&home, "AIza-rejected", false);
    assert_eq!(report.ending, Some(Ending::Restored));
    assert_eq!(
        fs::read_to_string(home.env_file()).unwrap(),
        "export GEMINI_API_KEY='AIza-old'\n"
    );
    assert_eq!(home.env_dir_listing(), ["env", "env.fleetauth-lock"]);
}

#[test]
fn a_link_left_between_the_link_and_the_rename_is_recovered() {
    let home = Home::gemini(&["dash"], b"export GEMINI_API_KEY='AIza-old'\n", 0o600);
    // A member killed right after `ln env env.fleetauth-txn`: both names, one inode.
    fs::hard_link(
        home.env_file(),
        home.env_file().with_file_name("env.fleetauth-txn"),
    )
    .unwrap();
    let (ran, report) = push(&home, "AIza-good-after-crash", false);
    assert_eq!(report.ending, Some(Ending::Committed), "{}", ran.stderr);
    assert_eq!(home.env_dir_listing(), ["env", "env.fleetauth-lock"]);
}

#[test]
fn a_client_that_goes_silent_gets_the_previous_file_back() {
    let home = Home::gemini(&["dash"], b"export GEMINI_API_KEY='AIza-old'\n", 0o600);
    let p = gemini();
    let txn = env_txn(&p, "AIza-good-silent", Duration::from_secs(1));
    let ask = verdict_request(&txn.nonce);
    let silent = |_: &[u8]| None;
    let started = Instant::now();
    let ran = converse(
        home.spawn(home.sh(), &txn.command),
        txn.stdin.expose_secret(),
        Some((&ask, &silent)),
    );
    let report = transaction::report(&ran.stdout, &txn.nonce);
    assert_eq!(report.installed, Some(Installed::Pushed), "{}", ran.stderr);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        fs::read_to_string(home.env_file()).unwrap(),
        "export GEMINI_API_KEY='AIza-old'\n"
    );
    assert_eq!(home.env_dir_listing(), ["env", "env.fleetauth-lock"]);
}

#[test]
fn provisioners_on_one_file_serialise_from_push_to_verdict() {
    let home = Home::gemini(&["dash"], b"export GEMINI_API_KEY='AIza-old'\n", 0o600);
    let (mut first, _) = hanging_push(&home);
    // A second provisioner, started while the first one verifies, waits for the lock.
    let (tx, rx) = mpsc::channel();
    let report = std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            let r = push(&home, "AIza-good-second", false);
            tx.send(()).unwrap();
            r
        });
        std::thread::sleep(Duration::from_millis(700));
        assert!(rx.try_recv().is_err(), "the second push did not wait");
        assert!(
            fs::read_to_string(home.env_file())
                .unwrap()
                .contains("AIza-hang-1")
        );
        unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
        let _ = first.wait();
        second.join().unwrap().1
    });
    assert_eq!(report.ending, Some(Ending::Committed));
    assert_eq!(
        fs::read_to_string(home.env_file()).unwrap(),
        "export GEMINI_API_KEY='AIza-good-second'\n"
    );
}

#[test]
fn unsafe_directories_and_targets_are_refused_and_nothing_is_written() {
    let cases: &[Hostile] = &[
        (
            "group-writable directory",
            |h| {
                fs::create_dir_all(h.env_file().parent().unwrap()).unwrap();
                fs::set_permissions(
                    h.env_file().parent().unwrap(),
                    fs::Permissions::from_mode(0o770),
                )
                .unwrap();
            },
            ExitStatus::UnsafeDir,
        ),
        (
            "symlinked env file",
            |h| {
                fs::create_dir_all(h.env_file().parent().unwrap()).unwrap();
                fs::write(h.path().join("target"), "T=1\n").unwrap();
                std::os::unix::fs::symlink(h.path().join("target"), h.env_file()).unwrap();
            },
            ExitStatus::Symlink,
        ),
        (
            "group-writable env file",
            |h| write_mode(&h.env_file(), b"T=1\n", 0o660),
            ExitStatus::UnsafeFile,
        ),
        (
            "directory at the env file",
            |h| fs::create_dir_all(h.env_file()).unwrap(),
            ExitStatus::NotRegular,
        ),
    ];
    for (what, setup, status) in cases {
        let home = Home::new(&["dash"]);
        home.gemini_stub();
        setup(&home);
        let (ran, report) = push(&home, "AIza-good-x", false);
        assert_eq!(
            ran.code,
            Some(status.code() as i32),
            "{what}: {}",
            ran.stderr
        );
        let fatal = report.fatal.expect("a message");
        assert!(fatal.contains("refusing"), "{what}: {fatal}");
        assert!(report.installed.is_none(), "{what}");
        let leaked = fs::read_dir(home.env_file().parent().unwrap())
            .unwrap()
            .filter_map(|e| fs::read(e.unwrap().path()).ok())
            .any(|b| String::from_utf8_lossy(&b).contains("AIza-good-x"));
        assert!(!leaked, "{what}: the key was written");
        assert!(
            !fs::read_to_string(home.path().join("target"))
                .unwrap_or_default()
                .contains("AIza"),
            "{what}"
        );
    }
}

#[test]
fn the_key_never_reaches_a_command_line() {
    let home = Home::new(&["dash"]);
    home.gemini_stub();
    // Record the argv of every tool the scripts start.
    let log = home.path().join("argv.log");
    let wrappers = home.path().join("shbin");
    for tool in [
        "awk", "cat", "cmp", "mv", "rm", "mkdir", "tail", "sync", "ls", "id", "flock", "ln",
        "base64", "head", "tr", "timeout", "cp", "mktemp", "printenv", "dd",
    ] {
        let Some(real) = which(tool) else { continue };
        write_exec(
            &wrappers.join(tool),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        );
    }
    let (_, report) = push(&home, "AIza-good-secret-0123", false);
    assert_eq!(report.ending, Some(Ending::Committed));
    let argv = fs::read_to_string(&log).unwrap();
    assert!(argv.contains("awk"), "the wrappers ran: {argv}");
    assert!(!argv.contains("AIza-good-secret"), "{argv}");
}

#[test]
fn command_lines_parse_alike_under_every_login_shell() {
    let p = gemini();
    for (label, login) in LOGIN_SHELLS {
        if !available(login[0]) {
            continue;
        }
        let home = Home::new(&["dash"]);
        home.gemini_stub();
        // A whole-stdin script.
        let script = build_script(&request(&p, false));
        let ran = converse(
            home.spawn(login, Script::command_whole_stdin()),
            script.text().as_bytes(),
            None,
        );
        assert!(
            parse_output(&ran.stdout, script.nonce()).complete,
            "{label}: {}",
            ran.stderr
        );
        // A script followed by data: the env-file transaction.
        let txn = env_txn(&p, "AIza-good-login", Duration::from_secs(60));
        let ask = verdict_request(&txn.nonce);
        let commit = |_: &[u8]| Some(transaction::verdict(true));
        let ran = converse(
            home.spawn(login, &txn.command),
            txn.stdin.expose_secret(),
            Some((&ask, &commit)),
        );
        let report = transaction::report(&ran.stdout, &txn.nonce);
        assert_eq!(
            report.ending,
            Some(Ending::Committed),
            "{label}: {}",
            ran.stderr
        );
    }
}

#[test]
fn credential_paths_with_spaces_are_read_under_every_sh_and_login_shell() {
    // claude's macOS managed settings live in "/Library/Application Support/ClaudeCode/": the
    // shipped definition, its /Library moved under the test's $HOME, must be read as one path
    // by every /bin/sh whatever the login shell. So must a directory named by a member variable
    // (copilot's GH_CONFIG_DIR) and a config home named by one (COPILOT_HOME), both with spaces.
    let shipped = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/providers/claude.toml"
    ))
    .unwrap();
    let copilot = Registry::builtin().unwrap().get("copilot").unwrap().clone();
    let managed = "Library/Application Support/ClaudeCode/managed-settings.json";
    let mut runs = 0;
    for (sh_label, sh) in SHELLS {
        for (login_label, login) in LOGIN_SHELLS {
            if !available(sh[0]) || !available(login[0]) {
                continue;
            }
            let label = format!("sh={sh_label} login={login_label}");
            let home = Home::new(sh);
            let root = home.path().display().to_string();
            let claude = crate::provider::parse_provider(
                &shipped.replace(
                    "/Library/Application Support/",
                    &format!("{root}/Library/Application Support/"),
                ),
                Path::new("claude.toml"),
            )
            .unwrap();
            write_mode(
                &home.path().join(managed),
                br#"{"env":{"ANTHROPIC_API_KEY":"sk-ant-api03-FAKE"}}"#,
                0o644,
            );
            write_mode(
                &home.path().join("gh config/hosts.yml"),
                b"github.com:\n    oauth_token: gho_FAKE\n",
                0o600,
            );
            write_mode(
                &home.path().join("copilot home/config.json"),
                br#"{"copilot_tokens":{"https://github.com:u":"gho_FAKE"}}"#,
                0o600,
            );
            let script = build_script(&ProbeRequest {
                providers: vec![
                    (&claude, Duration::from_secs(3)),
                    (&copilot, Duration::from_secs(3)),
                ],
                env_file: "~/.config/fleetauth/env",
                deep: false,
            });
            let gh_dir = format!("{root}/gh config");
            let copilot_home = format!("{root}/copilot home");
            let ran = converse(
                home.spawn_env(
                    login,
                    Script::command_whole_stdin(),
                    &[("GH_CONFIG_DIR", &gh_dir), ("COPILOT_HOME", &copilot_home)],
                ),
                script.text().as_bytes(),
                None,
            );
            let obs = parse_output(&ran.stdout, script.nonce());
            assert!(obs.complete, "{label}: {}", ran.stderr);
            let now = std::time::SystemTime::now();
            let labels: Vec<String> = [("claude", &claude), ("copilot", &copilot)]
                .iter()
                .map(|(name, p)| {
                    crate::assess::resolve(p, &obs.providers[*name], &obs.env_file, now)
                        .effective
                        .map(|f| f.label())
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(
                labels,
                [
                    format!("{root}/{managed} env.ANTHROPIC_API_KEY"),
                    "config.json copilot_tokens.*".to_string(),
                ],
                "{label}"
            );
            // Without COPILOT_HOME's login, gh's hosts.yml in GH_CONFIG_DIR is what is left.
            fs::remove_file(home.path().join("copilot home/config.json")).unwrap();
            let ran = converse(
                home.spawn_env(
                    login,
                    Script::command_whole_stdin(),
                    &[("GH_CONFIG_DIR", &gh_dir), ("COPILOT_HOME", &copilot_home)],
                ),
                script.text().as_bytes(),
                None,
            );
            let obs = parse_output(&ran.stdout, script.nonce());
            let res =
                crate::assess::resolve(&copilot, &obs.providers["copilot"], &obs.env_file, now);
            assert_eq!(
                res.effective.map(|f| f.label()).as_deref(),
                Some("~/.config/gh/hosts.yml github.com.oauth_token"),
                "{label}"
            );
            runs += 1;
        }
    }
    assert!(runs > 0, "no shell to run under");
}

/// `fleetauth run`'s script under a login shell: (stdout after the marker, stderr, status).
fn run_via(home: &Home, login: &[&str], argv: &[&str], stdin: &[u8]) -> (String, Option<i32>) {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let script = run_script("~/.config/fleetauth/env", &argv);
    let mut bytes = script.text().as_bytes().to_vec();
    bytes.extend_from_slice(stdin);
    let ran = converse(home.spawn(login, &script.command(Role::Run)), &bytes, None);
    let marker = format!("@@FA{}\t-\tstart\t1\n", script.nonce().as_str());
    let text = String::from_utf8_lossy(&ran.stdout).into_owned();
    let after = text
        .split_once(&marker)
        .map(|(_, a)| a.to_string())
        .unwrap_or_else(|| format!("NO MARKER: {text} / {}", ran.stderr));
    (after, ran.code)
}

#[test]
fn run_keeps_every_argument_stdin_and_the_exit_status_under_every_login_shell() {
    for (label, login) in LOGIN_SHELLS {
        if !available(login[0]) {
            continue;
        }
        let home = Home::new(&["dash"]);
        write_mode(&home.env_file(), b"export FROM_ENV='sourced ok'\n", 0o600);
        let args = [
            "a b",
            "",
            "it's",
            "$HOME",
            "*",
            "back\\slash",
            "ünï",
            "!x",
            "~",
        ];
        let mut argv = vec!["printf", "%s|"];
        argv.extend(args);
        let (out, code) = run_via(&home, login, &argv, b"");
        assert_eq!(out, format!("{}|", args.join("|")), "{label}");
        assert_eq!(code, Some(0), "{label}");
        let (_, code) = run_via(&home, login, &["false"], b"");
        assert_eq!(code, Some(1), "{label}");
        let (_, code) = run_via(&home, login, &["sh", "-c", "exit 3"], b"");
        assert_eq!(code, Some(3), "{label}");
        let (out, _) = run_via(&home, login, &["cat"], b"line one\nline two\n");
        assert_eq!(out, "line one\nline two\n", "{label}");
        let (out, _) = run_via(&home, login, &["sh", "-c", "printf %s \"$FROM_ENV\""], b"");
        assert_eq!(out, "sourced ok", "{label}");
    }
}

#[test]
fn run_refuses_an_env_file_others_can_write() {
    let home = Home::new(&["dash"]);
    write_mode(&home.env_file(), b"touch pwned\n", 0o666);
    let argv: Vec<String> = vec!["true".into()];
    let script = run_script("~/.config/fleetauth/env", &argv);
    let ran = converse(
        home.spawn(&["sh"], &script.command(Role::Run)),
        script.text().as_bytes(),
        None,
    );
    assert_eq!(ran.code, Some(ExitStatus::UnsafeFile.code() as i32));
    let why = records(&ran.stdout, script.nonce())
        .into_iter()
        .find(|r| r.field == "env_unsafe")
        .map(|r| r.text())
        .unwrap();
    assert!(why.contains("writable by group or others"), "{why}");
    assert!(!home.path().join("pwned").exists());
}

#[test]
fn exit_statuses_are_distinct_and_round_trip() {
    let mut seen = std::collections::BTreeSet::new();
    for st in ExitStatus::ALL {
        assert!(seen.insert(st.code()), "{st:?}");
        assert_eq!(ExitStatus::from_code(st.code()), Some(st));
        assert!((64..126).contains(&st.code()));
    }
    let script = Script::new();
    assert!(script.text().contains("FA_ST_UNSAFE_DIR="));
}

#[test]
fn records_need_the_nonce() {
    let nonce = Nonce::new();
    let out = format!(
        "@@FA\t-\tdone\t1\n@@FA{}x\t-\tdone\t1\nnoise\n@@FA{}\t-\tdone\t1\n",
        nonce.as_str(),
        nonce.as_str()
    );
    let r = records(out.as_bytes(), &nonce);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].field, "done");
}

/// A credential variable in the member's own environment is reported with the startup files
/// that assign it (paths only, never a line of them), under every sh.
#[test]
fn the_probe_names_the_files_that_set_an_ambient_variable() {
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        let home = Home::gemini(shell, b"FOO=1\n", 0o600);
        write_mode(
            &home.path().join(".bashrc"),
            b"# GEMINI_API_KEY=commented\nexport GEMINI_API_KEY=AIza-stale-in-bashrc\n",
            0o644,
        );
        write_mode(
            &home.path().join(".profile"),
            b"echo \"$GEMINI_API_KEY\"\n",
            0o644,
        );
        let p = gemini();
        let script = build_script(&request(&p, false));
        let child = Command::new(shell[0])
            .args(&shell[1..])
            .arg("-c")
            .arg(Script::command_whole_stdin())
            .current_dir(home.path())
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", home.path_var())
            .env("TMPDIR", home.path().join("tmp"))
            .env("GEMINI_API_KEY", "AIza-stale-in-bashrc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ran = converse(child, script.text().as_bytes(), None);
        assert!(
            !String::from_utf8_lossy(&ran.stdout).contains("stale-in-bashrc"),
            "{label}: a value left the member"
        );
        let obs = parse_output(&ran.stdout, script.nonce());
        let g = &obs.providers["gemini"];
        assert_eq!(g.ambient, vec!["GEMINI_API_KEY".to_string()], "{label}");
        let bashrc = home.path().join(".bashrc").display().to_string();
        assert_eq!(
            g.ambient_in.get("GEMINI_API_KEY"),
            Some(&vec![bashrc]),
            "{label}: only the file that assigns it"
        );
    }
}

// --- Cheap probes: the version from package.json or the cache, status only when it matters ---

fn builtin(name: &str) -> Provider {
    Registry::builtin().unwrap().get(name).unwrap().clone()
}

/// Run the (non-deep) probe for `p` in `home` under `shell`.
fn probe_once(
    home: &Home,
    shell: &'static [&'static str],
    p: &Provider,
) -> crate::probe::MemberObservation {
    let script = build_script(&request(p, false));
    let child = home.spawn(shell, Script::command_whole_stdin());
    let ran = converse(child, script.text().as_bytes(), None);
    let obs = parse_output(&ran.stdout, script.nonce());
    assert!(obs.complete, "{}", ran.stderr);
    obs
}

/// A CLI script that appends its arguments to `calls` in the home and prints `version`.
fn logging_cli(path: &Path, version: &str) {
    write_exec(
        path,
        &format!(
            "#!/bin/sh\necho \"$*\" >>\"$HOME/calls\"\n[ \"$1\" = --version ] && {{ echo '{version}'; exit 0; }}\nexit 1\n"
        ),
    );
}

fn calls(home: &Home) -> Vec<String> {
    fs::read_to_string(home.path().join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An npm global install: PREFIX/lib/node_modules/PKG/{package.json,cli.js}, and
/// ~/.local/bin/BIN -> that cli.js, as `npm install -g` lays it out.
fn npm_layout(home: &Home, pkg: &str, bin: &str, package_json: &str) {
    let root = home.path().join(".npm-global/lib/node_modules").join(pkg);
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("package.json"), package_json).unwrap();
    logging_cli(&root.join("cli.js"), "0.0.1-from-the-cli");
    fs::create_dir_all(home.path().join(".local/bin")).unwrap();
    std::os::unix::fs::symlink(
        root.join("cli.js"),
        home.path().join(".local/bin").join(bin),
    )
    .unwrap();
}

#[test]
fn the_version_comes_from_the_npm_package_json_without_starting_the_cli() {
    let p = gemini();
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        let home = Home::new(shell);
        npm_layout(
            &home,
            "@google/gemini-cli",
            "gemini",
            "{\n  \"name\": \"@google/gemini-cli\",\n  \"version\": \"0.61.3-rc.1\",\n  \"engines\": {\"node\": \">=20\", \"version\": \"9.9.9\"},\n  \"bin\": {\"gemini\": \"cli.js\"}\n}\n",
        );
        let obs = probe_once(&home, shell, &p);
        let g = &obs.providers["gemini"];
        assert_eq!(g.version_pkg.as_deref(), Some("0.61.3-rc.1"), "{label}");
        assert_eq!(
            crate::probe::observed_version(&p, g).as_deref(),
            Some("0.61.3-rc.1")
        );
        assert!(
            !calls(&home).iter().any(|c| c == "--version"),
            "{label}: {:?}",
            calls(&home)
        );
    }
}

#[test]
fn a_package_json_that_does_not_fit_falls_back_to_running_the_cli() {
    let p = gemini();
    let cases = [
        (
            "another package",
            r#"{"name": "left-pad", "version": "1.2.3"}"#,
        ),
        ("no version", r#"{"name": "@google/gemini-cli"}"#),
        (
            "not a version",
            r#"{"name": "@google/gemini-cli", "version": "latest"}"#,
        ),
        (
            "escaped",
            r#"{"name": "@google/gemini-cli", "version": "1.2.3\u0041"}"#,
        ),
        (
            "broken JSON",
            r#"{"name": "@google/gemini-cli", "version": "1.2.3""#,
        ),
        (
            "nested only",
            r#"{"name": "@google/gemini-cli", "x": {"version": "1.2.3"}}"#,
        ),
    ];
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        for (case, json) in cases {
            let home = Home::new(shell);
            npm_layout(&home, "@google/gemini-cli", "gemini", json);
            let obs = probe_once(&home, shell, &p);
            let g = &obs.providers["gemini"];
            assert_eq!(g.version_pkg, None, "{label} {case}");
            assert_eq!(g.version_out.trim(), "0.0.1-from-the-cli", "{label} {case}");
            assert_eq!(calls(&home), ["--version"], "{label} {case}");
        }
    }
}

/// A native (non-script) CLI: a copy of coreutils' `echo`, whose `--version` prints its version.
fn native_cli(home: &Home) -> PathBuf {
    let echo = which("echo")
        .filter(|p| !p.starts_with(home.path()))
        .unwrap_or("/bin/echo".into());
    let bin = home.path().join(".local/bin/gemini");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(fs::canonicalize(echo).unwrap(), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn cache_dir(home: &Home) -> PathBuf {
    home.path().join(".cache/fleetauth/versions")
}

#[test]
fn a_native_cli_s_version_is_cached_by_path_size_and_mtime() {
    let p = gemini();
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        let home = Home::new(shell);
        let bin = native_cli(&home);
        let first = probe_once(&home, shell, &p);
        let real = first.providers["gemini"].version_out.clone();
        assert!(real.contains("coreutils"), "{label}: {real}");
        assert!(!first.providers["gemini"].version_cached, "{label}");
        // Written: one private entry holding the key, the path and the output.
        let entries: Vec<PathBuf> = fs::read_dir(cache_dir(&home))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "{label}: {entries:?}");
        let entry = &entries[0];
        assert_eq!(mode(entry), 0o600, "{label}");
        let text = fs::read_to_string(entry).unwrap();
        let meta = fs::metadata(&bin).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            format!("{} {}", meta.len(), meta.mtime())
        );
        assert_eq!(lines.next().unwrap(), bin.to_str().unwrap());

        // Reused: an entry the CLI would never print proves the CLI did not run.
        let planted = text.replacen(real.trim_end(), "gemini 7.7.7 (from the cache)", 1);
        fs::write(entry, &planted).unwrap();
        let second = probe_once(&home, shell, &p);
        let g = &second.providers["gemini"];
        assert!(g.version_cached, "{label}");
        assert_eq!(g.version_rc, Some(0));
        assert_eq!(
            g.version_out.trim(),
            "gemini 7.7.7 (from the cache)",
            "{label}"
        );
        assert_eq!(
            crate::probe::observed_version(&p, g).as_deref(),
            Some("7.7.7")
        );

        // Invalidated when the modification time changes…
        let later = std::time::SystemTime::now() + Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&bin)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let third = probe_once(&home, shell, &p);
        assert!(!third.providers["gemini"].version_cached, "{label}");
        assert_eq!(third.providers["gemini"].version_out, real, "{label}");
        // …and when the size does (the mtime put back as the entry has it).
        fs::write(entry, &planted).unwrap();
        let mut f = fs::File::options().append(true).open(&bin).unwrap();
        f.write_all(b"\0").unwrap();
        f.set_modified(later).unwrap();
        drop(f);
        let fourth = probe_once(&home, shell, &p);
        assert!(!fourth.providers["gemini"].version_cached, "{label}");
        assert_eq!(fourth.providers["gemini"].version_out, real, "{label}");
    }
}

#[test]
fn a_script_cli_is_never_cached() {
    let p = gemini();
    let home = Home::new(SHELLS[0].1);
    logging_cli(&home.path().join(".local/bin/gemini"), "0.61.0");
    for _ in 0..2 {
        let obs = probe_once(&home, SHELLS[0].1, &p);
        assert!(!obs.providers["gemini"].version_cached);
    }
    assert_eq!(calls(&home), ["--version", "--version"]);
    assert!(!cache_dir(&home).exists());
}

#[test]
fn the_status_command_runs_only_when_no_credential_decides() {
    let p = builtin("claude");
    let oauth =
        |token: &str| format!(r#"{{"claudeAiOauth": {{"accessToken": {token}, "expiresAt": 1}}}}"#);
    // (case, credentials file, env file, status expected to run)
    let cases: Vec<(&str, Option<String>, &str, bool)> = vec![
        ("nothing", None, "", true),
        ("oauth login", Some(oauth("\"sk-ant-oat01-x\"")), "", false),
        ("token null", Some(oauth("null")), "", true),
        (
            "token last null",
            Some(r#"{"claudeAiOauth": {"accessToken": "a", "accessToken": null}}"#.into()),
            "",
            true,
        ),
        ("no login object", Some("{}".into()), "", true),
        ("broken file", Some("{\"claudeAiOauth\": ".into()), "", true),
        (
            "key in env file",
            None,
            "export ANTHROPIC_API_KEY=sk-ant-api03-x\n",
            false,
        ),
        (
            "other name in env file",
            None,
            "export ANTHROPIC_API_KEYS=x\n",
            true,
        ),
    ];
    for (label, shell) in SHELLS {
        if !available(shell[0]) {
            continue;
        }
        for (case, file, env, runs) in &cases {
            let home = Home::new(shell);
            logging_cli(
                &home.path().join(".local/bin/claude"),
                "2.1.197 (Claude Code)",
            );
            if let Some(text) = file {
                write_mode(
                    &home.path().join(".claude/.credentials.json"),
                    text.as_bytes(),
                    0o600,
                );
            }
            if !env.is_empty() {
                write_mode(&home.env_file(), env.as_bytes(), 0o600);
            }
            let obs = probe_once(&home, shell, &p);
            let c = &obs.providers["claude"];
            let ran = calls(&home).iter().any(|c| c == "auth status");
            assert_eq!(ran, *runs, "{label} {case}");
            assert_eq!(c.status_rc.is_some(), *runs, "{label} {case}");
            assert_eq!(c.status_skipped, !*runs, "{label} {case}");
        }
    }
    // Unreadable decides too (the verdict says so before any status).
    let home = Home::new(SHELLS[0].1);
    logging_cli(
        &home.path().join(".local/bin/claude"),
        "2.1.197 (Claude Code)",
    );
    fs::create_dir_all(home.path().join(".claude")).unwrap();
    std::os::unix::fs::symlink(
        "/nonexistent/creds",
        home.path().join(".claude/.credentials.json"),
    )
    .unwrap();
    let obs = probe_once(&home, SHELLS[0].1, &p);
    assert!(obs.providers["claude"].status_skipped);
}

/// Skipping the status command never changes a verdict: for every case above, the verdict from
/// the probe that skipped equals the verdict with the status command's answer (either answer)
/// added back.
#[test]
fn a_skipped_status_never_changes_the_verdict() {
    use crate::assess::assess;
    let p = builtin("claude");
    let shell = SHELLS[0].1;
    let files = [
        r#"{"claudeAiOauth": {"accessToken": "sk-ant-oat01-x", "expiresAt": 1}}"#,
        r#"{"claudeAiOauth": {"accessToken": "sk-ant-oat01-x", "expiresAt": 99999999999999, "refreshToken": "r"}}"#,
    ];
    for text in files {
        let home = Home::new(shell);
        logging_cli(
            &home.path().join(".local/bin/claude"),
            "2.1.197 (Claude Code)",
        );
        write_mode(
            &home.path().join(".claude/.credentials.json"),
            text.as_bytes(),
            0o600,
        );
        let mut obs = probe_once(&home, shell, &p);
        assert!(obs.providers["claude"].status_skipped);
        let judge = |o: &crate::probe::MemberObservation| {
            let v = assess(
                &p,
                o.providers.get("claude"),
                &o.env_file,
                Duration::from_secs(45),
                Duration::ZERO,
                std::time::SystemTime::now(),
            );
            (v.state, v.source, v.detail)
        };
        let skipped = judge(&obs);
        for rc in [0, 1] {
            obs.providers.get_mut("claude").unwrap().status_rc = Some(rc);
            assert_eq!(judge(&obs), skipped, "{text} rc {rc}");
        }
    }
}

#[test]
fn status_deciders_leave_out_what_a_setting_or_a_guard_controls() {
    let claude = builtin("claude");
    let d = crate::probe::status_deciders(&claude);
    assert!(
        d.files
            .chunks(2)
            .any(|f| f == [".credentials.json", "/claudeAiOauth/accessToken"]),
        "{d:?}"
    );
    for p in Registry::builtin().unwrap().iter().map(|(p, _)| p) {
        let d = crate::probe::status_deciders(p);
        if p.status.is_none() {
            assert_eq!(d, Default::default(), "{}", p.name);
        }
        for c in &p.credentials {
            if c.requires_selection() || c.unless_exists().is_some() {
                let f = c.file().or_else(|| c.presence_file()).unwrap_or(c.id());
                let named = d.files.chunks(2).any(|x| {
                    x[0] == f
                        && !p.credentials.iter().any(|o| {
                            o.file() == Some(f)
                                && !o.requires_selection()
                                && o.unless_exists().is_none()
                        })
                });
                assert!(!named, "{}: {f}", p.name);
                assert!(!d.keychains.iter().any(|k| k == c.id()), "{}", p.name);
            }
        }
    }
}

#[test]
fn a_carried_script_arrives_byte_for_byte_under_every_login_shell_and_sh() {
    // Every printable ASCII character, the four the command line cannot hold raw and the
    // decoder's escapes among them (a literal `\n`, `\0047`), plus newlines and tabs, in a value
    // and in the body.
    let tricky: String =
        (0x20u8..0x7f).map(char::from).collect::<String>() + "\n\t\\n\\0047 %b %s\n'!\\\n\\\\'";
    let mut runs = 0;
    for (sh_label, sh) in SHELLS {
        for (login_label, login) in LOGIN_SHELLS {
            if !available(sh[0]) || !available(login[0]) {
                continue;
            }
            let label = format!("sh={sh_label} login={login_label}");
            let home = Home::new(sh);
            let mut script = Script::new();
            script.set("FA_X", &tricky);
            let script = script.finish(&["fa_recs - x \"$FA_X\"\nfa_rec - y '!~b\\'\n"]);
            let command = script.carried_command("test").expect("carried");
            assert!(!command.contains(['\n', '!']), "{command}");
            assert!(
                !command.contains("\\\\") && !command.contains("\\'"),
                "{command}"
            );
            assert_eq!(
                Script::carried_text(&command).as_deref(),
                Some(script.text())
            );
            let ran = converse(home.spawn(login, &command), b"", None);
            let records = records(&ran.stdout, script.nonce());
            assert_eq!(
                records.iter().map(|r| r.field).collect::<Vec<_>>(),
                ["x", "y"],
                "{label}: {}",
                ran.stderr
            );
            assert_eq!(records[0].text(), tricky, "{label}");
            assert_eq!(records[1].value, "!~b\\", "{label}");
            runs += 1;
        }
    }
    assert!(runs > 0, "no shell to run under");
}

#[test]
fn the_probe_is_carried_on_the_command_line_unless_it_cannot_be() {
    let p = gemini();
    let script = build_script(&request(&p, true));
    let command = script.carried_command("sweep").expect("the probe fits");
    assert!(command.len() < CARRY_MAX, "{}", command.len());
    let home = Home::gemini(&["dash"], b"export GEMINI_API_KEY='AIza-good-1'\n", 0o600);
    for (label, login) in LOGIN_SHELLS {
        if !available(login[0]) {
            continue;
        }
        let ran = converse(home.spawn(login, &command), b"", None);
        let obs = parse_output(&ran.stdout, script.nonce());
        assert!(obs.complete, "{label}: {}", ran.stderr);
        assert_eq!(obs.providers["gemini"].version_out.trim(), "0.61.0");
        assert_eq!(obs.providers["gemini"].prompt.as_ref().unwrap().rc, 0);
    }
    // What a login shell's locale could misread, or what is too long, goes on stdin.
    for value in ["caf\u{e9}", "a\u{1}b", "a\rb"] {
        let mut s = Script::new();
        s.set("FA_X", value);
        assert!(s.finish(&[]).carried_command("t").is_none(), "{value:?}");
    }
    let mut s = Script::new();
    s.set("FA_X", &"x".repeat(CARRY_MAX));
    assert!(s.finish(&[]).carried_command("t").is_none());
}
