//! What a member is left with after fleetauth touched it — whatever happened to fleetauth on the
//! way: two provisioners racing, the client killed (SIGINT, SIGTERM, SIGKILL) or its connection
//! cut mid-run, a hostile env-file directory, an env file someone else can write, a restore that
//! must keep the file's mode, a login command that echoes the key, env files whose lines are not
//! one assignment each. Every test checks the member's files (and the rows) afterwards, not just
//! that fleetauth survived; the behaviour is the member-side contract of issue 8.
//!
//! Kill and cut tests give every member its own `TMPDIR` (sshd `SetEnv`, see
//! [`support::MemberBuilder::ambient_env`]) so that a temp file left behind is seen, and poll
//! the member with a bounded deadline (the prompt deadline plus a few seconds) instead of
//! sleeping: the member-side script needs a moment to notice that its client is gone.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Lab, Member, State, fake};

/// Every prompt's deadline in these tests (inventory `probe_timeout`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a member may take, after its client is gone, to clean up: the prompt deadline (a
/// hanging prompt only ends there) plus a few seconds.
const CLEANUP_GRACE: Duration = Duration::from_secs(4 + 6);
/// The env file's directory, relative to a member's HOME.
const ENV_DIR: &str = ".config/fleetauth";
/// What an env file holds before each test's run (besides any key).
const OLD_LINE: &str = "KEEP='the operator line'";

fn inventory_defaults() -> String {
    format!(
        "probe_timeout = \"{}s\"\ncommand_timeout = \"60s\"",
        PROBE_TIMEOUT.as_secs()
    )
}

fn str_of<'a>(row: &'a Value, field: &str) -> &'a str {
    row[field].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Helpers: inventories for a subset of members, a fleetauth process we can signal, the member's
// files.

/// An inventory naming only `members` (each with its providers), written to the lab dir as
/// `file_name`. [`Lab::inventory`] lists every member of the lab; the kill tests run one
/// fleetauth per member.
fn inventory_for(lab: &Lab, file_name: &str, members: &[&Member]) -> PathBuf {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let mut text = format!(
        "[defaults]\nuser = {}\nidentity_file = {}\nknown_hosts = {}\n{}\n",
        q(lab.user()),
        q(lab.identity().to_str().unwrap()),
        q(lab.known_hosts().to_str().unwrap()),
        inventory_defaults()
    );
    for m in members {
        let providers: Vec<String> = m.providers().iter().map(|p| q(p)).collect();
        text.push_str(&format!(
            "\n[members.{}]\nhost = {}\nport = {}\nproviders = [{}]\n",
            m.name(),
            q(&m.addr().to_string()),
            m.port(),
            providers.join(", ")
        ));
    }
    let path = lab.dir().join(file_name);
    fs::write(&path, text).unwrap();
    path
}

/// A fleetauth process started in the background (own process group, clean environment as in
/// `support::Run`), output to files, so that a test can signal it at a moment of its choosing.
struct Background {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    fn spawn(lab: &Lab, tag: &str, args: &[&str], env: &[(&str, &str)]) -> Background {
        let out = lab.dir().join(format!("{tag}.stdout"));
        let err = lab.dir().join(format!("{tag}.stderr"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetauth"));
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", lab.operator_home())
            .env("FLEETAUTH_HOME", lab.fleetauth_home())
            .env("XDG_CONFIG_HOME", lab.config_home())
            .current_dir(lab.dir())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Background {
            child: cmd.spawn().expect("spawn fleetauth"),
            out,
            err,
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid (not yet reaped: we have not waited for it).
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Wait for it to end; past `deadline` kill its whole group and say so.
    fn wait(&mut self, deadline: Duration) -> Result<(), String> {
        let start = Instant::now();
        while self.running() {
            if start.elapsed() > deadline {
                // SAFETY: the process group we created with process_group(0).
                unsafe {
                    libc::kill(-(self.child.id() as i32), libc::SIGKILL);
                }
                let _ = self.child.wait();
                return Err(format!(
                    "fleetauth was still running {deadline:?} later\n{}",
                    self.printed()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn printed(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.running() {
            // SAFETY: as in `wait`.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

/// How many prompts (`gemini -p …`) the member's stubs have started.
fn prompts_started(m: &Member) -> usize {
    m.calls_log()
        .iter()
        .filter(|l| l.starts_with("gemini ") && l.split(' ').any(|w| w == "-p"))
        .count()
}

/// Wait until `ready(m)` holds (true) or fleetauth ends first / 30 s pass (an error).
fn wait_for(
    bg: &mut Background,
    m: &Member,
    what: &str,
    ready: impl Fn(&Member) -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if ready(m) {
            return Ok(());
        }
        if !bg.running() {
            return Err(format!(
                "fleetauth ended before {what}\n{}\ncommands: {:?}\ncalls: {:?}",
                bg.printed(),
                m.commands_log(),
                m.calls_log()
            ));
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "{what} did not happen within 30 s\n{}",
                bg.printed()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every regular file under `dir` (not following symlinks), recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        match fs::symlink_metadata(&path) {
            Ok(md) if md.is_dir() => out.extend(files_under(&path)),
            Ok(md) if md.is_file() => out.push(path),
            _ => {}
        }
    }
    out
}

/// Files under `dirs` (the env file excepted) whose bytes contain `secret`.
fn files_holding(dirs: &[&Path], secret: &str, except: &Path) -> Vec<PathBuf> {
    dirs.iter()
        .flat_map(|d| files_under(d))
        .filter(|p| p != except)
        .filter(|p| {
            fs::read(p)
                .map(|b| b.windows(secret.len()).any(|w| w == secret.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `env` is `old`, or `old` with exactly one more line: `key_line` (the push). Anything else is
/// a partial or mangled file.
fn old_or_new(env: &str, old: &str, key_line: Option<&str>) -> bool {
    if env == old {
        return true;
    }
    let Some(key_line) = key_line else {
        return false;
    };
    let without: Vec<&str> = env.lines().filter(|l| *l != key_line).collect();
    env.ends_with('\n')
        && env.lines().filter(|l| *l == key_line).count() == 1
        && without == old.lines().collect::<Vec<_>>()
}

/// Everything wrong with a member after a run: temp entries in its TMPDIR, files beside the env
/// file other than the env file and an empty lock, an env file that is neither the old nor the
/// new one, and any other file under HOME or TMPDIR holding `secret`.
fn leftovers(
    m: &Member,
    tmpdir: &Path,
    old: &str,
    key_line: Option<&str>,
    secret: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let tmp = names_in(tmpdir);
    if !tmp.is_empty() {
        problems.push(format!(
            "TMPDIR {} still holds {tmp:?} (a deep probe's temp dir must be removed)",
            tmpdir.display()
        ));
    }
    let dir = m.home().join(ENV_DIR);
    let extra: Vec<String> = names_in(&dir)
        .into_iter()
        .filter(|n| n != "env" && n != "env.fleetauth-lock")
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "the env file's directory holds {extra:?} besides env and env.fleetauth-lock"
        ));
    }
    if let Ok(md) = fs::metadata(dir.join("env.fleetauth-lock"))
        && md.len() != 0
    {
        problems.push(format!(
            "env.fleetauth-lock is not empty ({} bytes)",
            md.len()
        ));
    }
    let env = m.env_file_contents();
    if !old_or_new(&env, old, key_line) {
        problems.push(format!(
            "the env file is neither the old nor the new one ({} bytes, old {} bytes{})",
            env.len(),
            old.len(),
            if env.contains(secret) {
                ", holds the key"
            } else {
                ""
            }
        ));
    }
    let holding = files_holding(&[m.home(), tmpdir], secret, &m.env_file());
    if !holding.is_empty() {
        problems.push(format!(
            "files other than the env file hold the key: {holding:?}"
        ));
    }
    problems
}

/// Poll [`leftovers`] until there are none or `grace` has passed; the last problems otherwise.
fn clean_within(
    grace: Duration,
    m: &Member,
    tmpdir: &Path,
    old: &str,
    key_line: Option<&str>,
    secret: &str,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let problems = leftovers(m, tmpdir, old, key_line, secret);
        if problems.is_empty() {
            return Ok(());
        }
        if start.elapsed() > grace {
            let procs = m.processes();
            return Err(format!(
                "after {grace:?}: {}{}",
                problems.join("; "),
                if procs.is_empty() {
                    String::new()
                } else {
                    format!(" (member processes still running: {procs:?})")
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A local user that plays the attacker, `fa-atk-<pid>-<n>` with its own group, removed on
/// drop — also when the test panics. A test process killed outright runs no destructor: the
/// first attacker of a process removes every `fa-atk-<pid>-…` whose process is gone.
struct Attacker {
    name: String,
    uid: u32,
    gid: u32,
}

const ATTACKER_PREFIX: &str = "fa-atk-";

/// useradd/userdel lock /etc/passwd: one at a time in this process, retried across processes.
static ACCOUNTS: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static NEXT_ATTACKER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Run an account tool, retrying while another process holds the passwd lock.
fn account_tool(args: &[&str]) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {} (the tests run as root): {e}", args[0]))?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        if !last.contains("lock") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{}: {last}", args.join(" ")))
}

impl Attacker {
    fn new() -> Attacker {
        let mut reaped = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            *reaped = true;
            let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
            for name in passwd.lines().filter_map(|l| l.split(':').next()) {
                let pid = name
                    .strip_prefix(ATTACKER_PREFIX)
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<u32>().ok());
                if let Some(pid) = pid
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = account_tool(&["userdel", name]);
                    let _ = account_tool(&["groupdel", name]);
                }
            }
        }
        let name = format!(
            "{ATTACKER_PREFIX}{}-{}",
            std::process::id(),
            NEXT_ATTACKER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let _ = account_tool(&["userdel", &name]);
        let _ = account_tool(&["groupdel", &name]);
        account_tool(&["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", &name])
            .unwrap_or_else(|e| panic!("{e}"));
        // From here on, Drop removes the user whatever happens.
        let mut attacker = Attacker {
            name,
            uid: 0,
            gid: 0,
        };
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, &attacker.name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        attacker.uid = uid;
        attacker.gid = gid;
        attacker
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = account_tool(&["userdel", &self.name]);
        // userdel removes the user's own group; this is for the case where it did not.
        if Command::new("getent")
            .args(["group", &self.name])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            let _ = account_tool(&["groupdel", &self.name]);
        }
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// `sh` sourcing the member's env file locally, printing `$name` (exactly, no newline added).
fn sourced(m: &Member, name: &str) -> String {
    let out = m
        .sh(&format!(
            "set -a; . \"$HOME\"/{ENV_DIR}/env; printf %s \"${{{name}-<unset>}}\""
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// 1. Racing provisioners: the rows tell the truth about every member.

#[test]
fn racing_provisioners_with_a_good_and_a_rejected_key_report_what_each_member_holds() {
    let lab = Lab::new();
    let (good, bad) = (fake::gemini_key(), fake::gemini_key());
    let members: Vec<Member> = (0..4)
        .map(|i| {
            lab.member(&format!("r{i}"))
                .provider("gemini", State::NoAuth)
                .env_line(OLD_LINE)
                .vendor_rejects(&bad)
                .start()
        })
        .collect();
    let inv = lab.inventory(&inventory_defaults());
    let old = format!("{OLD_LINE}\n");

    // Started at the same moment, then with one or the other a little ahead.
    let head_starts: [(u64, u64); 4] = [(0, 0), (0, 0), (150, 0), (0, 150)];
    let mut failures = Vec::new();
    for (round, (good_delay, bad_delay)) in head_starts.into_iter().enumerate() {
        for m in &members {
            let dir = m.home().join(ENV_DIR);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            fs::write(m.env_file(), &old).unwrap();
            fs::set_permissions(m.env_file(), fs::Permissions::from_mode(0o600)).unwrap();
        }
        let start = Barrier::new(2);
        let go = |key: &str, delay: u64| {
            start.wait();
            std::thread::sleep(Duration::from_millis(delay));
            lab.provision_json(&inv, &[("GEMINI_API_KEY", key)], &[])
        };
        let (g, b) = std::thread::scope(|s| {
            let g = s.spawn(|| go(&good, good_delay));
            let b = s.spawn(|| go(&bad, bad_delay));
            (g.join().unwrap(), b.join().unwrap())
        });
        g.assert_no_secret(&good).assert_no_secret(&bad);
        b.assert_no_secret(&good).assert_no_secret(&bad);
        for m in &members {
            let name = m.name();
            let (gr, br) = (g.row(name, "gemini"), b.row(name, "gemini"));
            let env = m.env_file_contents();
            let (has_good, has_bad) = (env.contains(&good), env.contains(&bad));
            let says = |r: &Value| {
                format!(
                    "{}/{}: {}",
                    str_of(r, "state"),
                    str_of(r, "action"),
                    str_of(r, "detail")
                )
            };
            let whats = format!(
                "round {round}, {name}: good run {}; rejected run {}; env file holds the good key: {has_good}, the rejected key: {has_bad}",
                says(&gr),
                says(&br)
            );
            let good_installed = str_of(&gr, "state") == "ready"
                && matches!(str_of(&gr, "action"), "pushed" | "unchanged");
            if has_bad {
                failures.push(format!("{whats}\n  -> the rejected key is in the env file"));
            }
            if has_good != good_installed {
                failures.push(format!(
                    "{whats}\n  -> the good run's row does not match the env file"
                ));
            }
            if !good_installed {
                failures.push(format!(
                    "{whats}\n  -> a racing provisioner made the good key's install fail"
                ));
            }
            let bad_ok = match (str_of(&br, "state"), str_of(&br, "action")) {
                // It saw the good key already working and left it.
                ("ready", "none") => true,
                (state, "failed") => state != "ready" && str_of(&br, "detail").contains("restored"),
                _ => false,
            };
            if !bad_ok {
                failures.push(format!(
                    "{whats}\n  -> the rejected run must say failed with the previous state restored (or none: already works)"
                ));
            }
            if !env.contains(OLD_LINE) {
                failures.push(format!("{whats}\n  -> the operator's line was lost"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 2. The client killed, or its connection cut, mid-run: nothing left behind on the member.

/// Where in a run the blow lands.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// provision: the first (observing) deep probe's prompt hangs.
    FirstProbe,
    /// provision: the act phase's first command has just been started (push).
    Push,
    /// provision: the key is pushed and the verifying prompt hangs.
    Verify,
    /// sweep --deep: the probe script has just been started.
    SweepStart,
    /// sweep --deep: the prompt hangs.
    SweepPrompt,
}

#[derive(Debug, Clone, Copy)]
enum Blow {
    Signal(i32, &'static str),
    /// Kill the member's sshd session processes (not the commands they started).
    CutConnection,
}

const SIGNALS: [Blow; 3] = [
    Blow::Signal(libc::SIGINT, "SIGINT"),
    Blow::Signal(libc::SIGTERM, "SIGTERM"),
    Blow::Signal(libc::SIGKILL, "SIGKILL"),
];

struct Scenario {
    moment: Moment,
    blow: Blow,
    member: Member,
    tmpdir: PathBuf,
}

impl Scenario {
    fn name(&self) -> String {
        let blow = match self.blow {
            Blow::Signal(_, name) => name,
            Blow::CutConnection => "connection cut",
        };
        format!("{:?} / {blow} ({})", self.moment, self.member.name())
    }
}

/// Lay out one member per (moment, blow), each with its own TMPDIR. Every member's vendor is
/// unreachable where a prompt must hang.
fn scenarios(lab: &Lab, cases: &[(Moment, Blow)]) -> Vec<Scenario> {
    cases
        .iter()
        .enumerate()
        .map(|(i, &(moment, blow))| {
            let name = format!("k{i}");
            let tmpdir = lab.dir().join(format!("tmp-{name}"));
            fs::create_dir_all(&tmpdir).unwrap();
            let state = match moment {
                // An OAuth login the prompt must check with the (unreachable) vendor.
                Moment::FirstProbe => State::OauthValid,
                // Nothing: the first prompt fails at once, a key is pushed, the verifying
                // prompt hangs.
                Moment::Push | Moment::Verify => State::NoAuth,
                Moment::SweepStart | Moment::SweepPrompt => State::VendorUnreachable,
            };
            let member = lab
                .member(&name)
                .provider("gemini", state)
                .env_line(OLD_LINE)
                .vendor_unreachable()
                .ambient_env("TMPDIR", tmpdir.to_str().unwrap())
                .start();
            Scenario {
                moment,
                blow,
                member,
                tmpdir,
            }
        })
        .collect()
}

/// Pids of the sshd processes serving `m`'s connections: the `sshd` ancestors of the commands
/// running on it, except the listening daemon (`sshd -D …`).
fn session_sshds(m: &Member) -> Vec<i32> {
    let stat = |pid: i32| -> Option<(String, i32)> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let comm = text.split_once('(')?.1.rsplit_once(')')?.0.to_string();
        let ppid = text
            .rsplit_once(") ")?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some((comm, ppid))
    };
    let mut found = BTreeSet::new();
    for pid in m.processes() {
        let mut p = pid;
        while let Some((_, ppid)) = stat(p) {
            if ppid <= 1 {
                break;
            }
            match stat(ppid) {
                Some((comm, _)) if comm == "sshd" => {
                    let cmdline = fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
                    let listener = cmdline.split(|b| *b == 0).any(|a| a == b"-D");
                    if !listener {
                        found.insert(ppid);
                    }
                }
                _ => {}
            }
            p = ppid;
        }
    }
    found.into_iter().collect()
}

/// Run one scenario: start fleetauth, wait for the moment, strike, wait for the member to be
/// clean (or say what is left).
fn strike(lab: &Lab, sc: &Scenario) -> Result<(), String> {
    let m = &sc.member;
    let inv = inventory_for(lab, &format!("{}.toml", m.name()), &[m]);
    let inv = inv.to_str().unwrap();
    let old = m.env_file_contents();
    let provisioning = matches!(
        sc.moment,
        Moment::FirstProbe | Moment::Push | Moment::Verify
    );
    let key = if provisioning {
        fake::gemini_key()
    } else {
        m.secret("gemini", "GEMINI_API_KEY")
    };
    let key_line = format!("export GEMINI_API_KEY='{key}'");
    let mut bg = if provisioning {
        Background::spawn(
            lab,
            m.name(),
            &["provision", "-i", inv, "--format", "json", "--no-input"],
            &[("GEMINI_API_KEY", &key)],
        )
    } else {
        Background::spawn(
            lab,
            m.name(),
            &["sweep", "-i", inv, "--deep", "--format", "json"],
            &[],
        )
    };
    let pause = Duration::from_millis(300);
    match sc.moment {
        Moment::FirstProbe | Moment::SweepPrompt => {
            wait_for(&mut bg, m, "the first prompt", |m| prompts_started(m) >= 1)?;
            std::thread::sleep(pause);
        }
        Moment::Verify => {
            wait_for(&mut bg, m, "the verifying prompt", |m| {
                prompts_started(m) >= 2
            })?;
            std::thread::sleep(pause);
        }
        Moment::Push => wait_for(&mut bg, m, "the act phase's first command", |m| {
            m.commands_log().len() >= 2
        })?,
        Moment::SweepStart => wait_for(&mut bg, m, "the probe command", |m| {
            !m.commands_log().is_empty()
        })?,
    }
    if !bg.running() {
        return Err(format!(
            "fleetauth ended before the blow (the moment was missed)\n{}",
            bg.printed()
        ));
    }
    let struck = Instant::now();
    match sc.blow {
        Blow::Signal(sig, _) => bg.signal(sig),
        Blow::CutConnection => {
            let sessions = session_sshds(m);
            if sessions.is_empty() {
                return Err(format!(
                    "no sshd session process found to cut (member processes: {:?})",
                    m.processes()
                ));
            }
            for pid in sessions {
                // SAFETY: an sshd session process of this test's own member.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    // A signalled client must end promptly; one whose connection was cut reports and ends.
    let client_deadline = match sc.blow {
        Blow::Signal(..) => Duration::from_secs(15),
        Blow::CutConnection => Duration::from_secs(60),
    };
    bg.wait(client_deadline)?;
    let grace = CLEANUP_GRACE.saturating_sub(struck.elapsed()) + Duration::from_secs(1);
    clean_within(
        grace,
        m,
        &sc.tmpdir,
        &old,
        provisioning.then_some(key_line.as_str()),
        &key,
    )
    .map_err(|e| format!("{e}\n{}", bg.printed()))
}

/// Run every scenario at once (one member each) and report all that failed.
fn strike_all(lab: &Lab, scenarios: &[Scenario]) {
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|sc| s.spawn(move || strike(lab, sc).err().map(|e| format!("{}: {e}", sc.name()))))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} scenarios left something behind:\n\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n\n")
    );
}

#[test]
fn provision_killed_by_a_signal_at_any_moment_leaves_nothing_behind_on_the_member() {
    let lab = Lab::new();
    let cases: Vec<(Moment, Blow)> = [Moment::FirstProbe, Moment::Push, Moment::Verify]
        .into_iter()
        .flat_map(|m| SIGNALS.map(|b| (m, b)))
        .collect();
    let scenarios = scenarios(&lab, &cases);
    strike_all(&lab, &scenarios);
}

#[test]
fn deep_sweep_killed_by_a_signal_leaves_nothing_behind_on_the_member() {
    let lab = Lab::new();
    let cases: Vec<(Moment, Blow)> = [Moment::SweepStart, Moment::SweepPrompt]
        .into_iter()
        .flat_map(|m| SIGNALS.map(|b| (m, b)))
        .collect();
    let scenarios = scenarios(&lab, &cases);
    strike_all(&lab, &scenarios);
}

#[test]
fn a_cut_connection_leaves_nothing_behind_on_the_member() {
    let lab = Lab::new();
    let cases = [
        (Moment::Verify, Blow::CutConnection),
        (Moment::SweepPrompt, Blow::CutConnection),
    ];
    let scenarios = scenarios(&lab, &cases);
    strike_all(&lab, &scenarios);
}

// ---------------------------------------------------------------------------------------------
// 3. A directory others can write: the push is refused and nothing is written anywhere.

/// Names a provisioner might use beside the env file, for its temp files and backups.
const PLAUSIBLE_NAMES: [&str; 10] = [
    "env.fleetauth-tmp",
    "env.fleetauth-prev",
    "env.fleetauth-prev-tmp",
    "env.fleetauth-lock",
    ".env.fleetauth",
    ".env.fleetauth-tmp",
    ".env.tmp",
    ".env.XXXXXX",
    "env.new",
    "env~",
];

#[test]
fn provision_refuses_an_env_file_directory_others_can_write_and_writes_through_no_symlink() {
    let lab = Lab::new();
    let attacker = Attacker::new();
    let key = fake::gemini_key();
    // every planted name / all but the backup and the lock (today's script checks those two) /
    // no symlink at all, the directory alone.
    let plants: [(&str, Vec<&str>); 3] = [
        ("all-links", PLAUSIBLE_NAMES.to_vec()),
        (
            "some-links",
            PLAUSIBLE_NAMES
                .iter()
                .copied()
                .filter(|n| !matches!(*n, "env.fleetauth-prev" | "env.fleetauth-lock"))
                .collect(),
        ),
        ("no-links", Vec::new()),
    ];
    let loot = lab.dir().join("attacker");
    fs::create_dir_all(&loot).unwrap();
    std::os::unix::fs::chown(&loot, Some(attacker.uid), Some(attacker.gid)).unwrap();
    let mut members = Vec::new();
    for (name, links) in &plants {
        let m = lab
            .member(name)
            .provider("gemini", State::NoAuth)
            .env_line(OLD_LINE)
            .start();
        let dir = m.home().join(ENV_DIR);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
        std::os::unix::fs::chown(&dir, None, Some(attacker.gid)).unwrap();
        let mut targets = Vec::new();
        for (i, link) in links.iter().enumerate() {
            let target = loot.join(format!("{name}-{i}"));
            // Every other link dangles: writing through it would create the attacker's file.
            let content = (i % 2 == 0).then(|| format!("the attacker's file {i}\n"));
            if let Some(c) = &content {
                fs::write(&target, c).unwrap();
                std::os::unix::fs::chown(&target, Some(attacker.uid), Some(attacker.gid)).unwrap();
                fs::set_permissions(&target, fs::Permissions::from_mode(0o666)).unwrap();
            }
            let path = dir.join(link);
            std::os::unix::fs::symlink(&target, &path).unwrap();
            std::os::unix::fs::lchown(&path, Some(attacker.uid), Some(attacker.gid)).unwrap();
            targets.push((path, target, content));
        }
        members.push((m, targets));
    }
    let inv = lab.inventory(&inventory_defaults());
    let old = format!("{OLD_LINE}\n");

    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    out.assert_no_secret(&key);
    assert_ne!(out.code, Some(0), "provision succeeded\n{out}");
    let mut failures = Vec::new();
    for (m, targets) in &members {
        let name = m.name();
        let row = out.row(name, "gemini");
        let detail = str_of(&row, "detail");
        if (str_of(&row, "state"), str_of(&row, "action")) != ("error", "failed")
            || !detail.contains("refusing")
            || !detail.contains(ENV_DIR)
        {
            failures.push(format!(
                "{name}: want error/failed, `refusing` and the directory ({ENV_DIR}) in the detail; got {}/{}: {detail}",
                str_of(&row, "state"),
                str_of(&row, "action")
            ));
        }
        for (link, target, content) in targets {
            let now = fs::read_to_string(target).ok();
            if now != *content {
                failures.push(format!(
                    "{name}: written through {} to the attacker's {} ({} -> {})",
                    link.display(),
                    target.display(),
                    content
                        .as_deref()
                        .map_or("absent".into(), |c| format!("{} bytes", c.len())),
                    now.as_deref().map_or("absent".into(), |c| format!(
                        "{} bytes{}",
                        c.len(),
                        if c.contains(&key) { ", the key" } else { "" }
                    )),
                ));
            }
        }
        let env = m.env_file();
        match fs::symlink_metadata(&env) {
            Ok(md) if md.file_type().is_file() => {}
            other => failures.push(format!(
                "{name}: the env file is no longer a regular file: {other:?}"
            )),
        }
        if m.env_file_contents() != old {
            failures.push(format!("{name}: the env file changed"));
        }
        let holding = files_holding(&[m.home(), &loot], &key, Path::new("/nonexistent"));
        if !holding.is_empty() {
            failures.push(format!("{name}: the key was written to {holding:?}"));
        }
    }
    assert!(failures.is_empty(), "{}\n{out}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. An env file someone else owns or can write is never sourced.

/// Members whose env files (holding a key the vendor accepts) someone else controls, and one
/// whose file is the operator's own.
fn hostile_env_files(lab: &Lab, attacker: &Attacker) -> Vec<(Member, &'static str)> {
    let mut out = Vec::new();
    for (name, how) in [
        ("foreign", "owned by another user"),
        ("group-w", "group-writable"),
        ("world-w", "world-writable"),
        ("own", "the operator's own"),
    ] {
        let m = lab.member(name).provider("gemini", State::EnvKey).start();
        let env = m.env_file();
        match name {
            "foreign" => {
                std::os::unix::fs::chown(&env, Some(attacker.uid), Some(attacker.gid)).unwrap()
            }
            "group-w" => {
                std::os::unix::fs::chown(&env, None, Some(attacker.gid)).unwrap();
                fs::set_permissions(&env, fs::Permissions::from_mode(0o660)).unwrap();
            }
            "world-w" => fs::set_permissions(&env, fs::Permissions::from_mode(0o602)).unwrap(),
            _ => {}
        }
        out.push((m, how));
    }
    out
}

#[test]
fn deep_sweep_does_not_source_an_env_file_someone_else_can_write() {
    let lab = Lab::new();
    let attacker = Attacker::new();
    let members = hostile_env_files(&lab, &attacker);
    let inv = lab.inventory(&inventory_defaults());
    let out = lab.fleetauth(&[
        "sweep",
        "-i",
        inv.to_str().unwrap(),
        "--deep",
        "--format",
        "json",
    ]);
    let mut failures = Vec::new();
    for (m, how) in &members {
        out.assert_no_secret(&m.secret("gemini", "GEMINI_API_KEY"));
        let row = out.row(m.name(), "gemini");
        let (state, detail) = (str_of(&row, "state"), str_of(&row, "detail"));
        if m.name() == "own" {
            if state != "ready" {
                failures.push(format!(
                    "own: the operator's own env file must work: {state}: {detail}"
                ));
            }
        } else if state == "ready"
            || !detail.contains("env file not sourced")
            || !detail.contains(".config/fleetauth/env")
        {
            failures.push(format!(
                "{} ({how}): want not ready, `env file not sourced` and the path in the detail; got {state}: {detail}",
                m.name()
            ));
        } else if m.name() == "foreign"
            && !(detail.contains(&format!("owned by uid {}", attacker.uid))
                && detail.contains(&format!("not by uid {}", login_uid(m))))
        {
            failures.push(format!(
                "foreign: the detail must name the file's owner and ours; got {detail}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}\n{out}", failures.join("\n"));
}

/// The uid member `m`'s login runs as: its home's owner.
fn login_uid(m: &Member) -> u32 {
    fs::metadata(m.home()).unwrap().uid()
}

/// The `run` summary table (stderr): per member, its EXIT cell and its NOTE (wrapped lines
/// joined).
fn run_table(stderr: &str) -> Vec<(String, String, String)> {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for line in stderr.lines() {
        let cells: Vec<&str> = line.split(['│', '┆']).map(str::trim).collect();
        if cells.len() < 5 || cells[1] == "MEMBER" {
            continue;
        }
        if cells[1].is_empty() {
            if let Some(last) = rows.last_mut() {
                last.2.push(' ');
                last.2.push_str(cells[3]);
            }
        } else {
            rows.push((cells[1].into(), cells[2].into(), cells[3].into()));
        }
    }
    rows
}

#[test]
fn run_does_not_run_the_command_over_an_env_file_someone_else_can_write() {
    let lab = Lab::new();
    let attacker = Attacker::new();
    let members = hostile_env_files(&lab, &attacker);
    let inv = lab.inventory(&inventory_defaults());
    let out = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo \"ran ${GEMINI_API_KEY:+with the key}\"",
    ]);
    let table = run_table(&out.stderr);
    let mut failures = Vec::new();
    if out.code != Some(255) {
        failures.push(format!("exit status {:?}, want 255", out.code));
    }
    for (m, how) in &members {
        let name = m.name();
        let Some((_, status, note)) = table.iter().find(|(n, _, _)| n == name) else {
            failures.push(format!("{name}: no row in the run table"));
            continue;
        };
        let ran = out.stdout.contains(&format!("{name} | ran"));
        if name == "own" {
            if !(ran && status == "0") {
                failures.push(format!("own: the command must run on the operator's own env file (status {status}, note {note:?})"));
            }
        } else if ran || status != "255" || !note.contains("env file not sourced") {
            failures.push(format!(
                "{name} ({how}): want the command not run, status 255 and `env file not sourced` in the note; ran: {ran}, status {status}, note {note:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}\n{out}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 5. A restore puts back the exact previous file, mode included.

#[test]
fn restore_after_a_rejected_key_keeps_the_previous_file_byte_for_byte_and_its_mode() {
    let lab = Lab::new();
    let bad = fake::gemini_key();
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line("PLACEHOLDER=1")
        .vendor_rejects(&bad)
        .start();
    // Written here: the harness ends every file with a newline; the operator's does not.
    let before = b"# the operator's file\nUNRELATED='kept as is'\r\nLAST=no-newline".to_vec();
    fs::write(m.env_file(), &before).unwrap();
    fs::set_permissions(m.env_file(), fs::Permissions::from_mode(0o640)).unwrap();
    let inv = lab.inventory(&inventory_defaults());

    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &bad)], &[]);
    out.assert_no_secret(&bad);
    let row = out.row("m", "gemini");
    assert_eq!(str_of(&row, "action"), "failed", "{row}");
    assert!(str_of(&row, "detail").contains("restored"), "{row}");
    assert_eq!(
        fs::read(m.env_file()).unwrap(),
        before,
        "the restored env file is not byte-identical to the previous one"
    );
    assert_eq!(
        mode_of(&m.env_file()),
        0o640,
        "the restored env file lost its mode 0640"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A login command that echoes the key: scrubbed from everything fleetauth prints or keeps.

#[test]
fn a_login_command_that_echoes_the_key_leaks_it_nowhere() {
    let lab = Lab::new();
    let key = fake::openai_key();
    // The distinctive random tail, in case a scrubber only knows the whole key.
    let tail = &key[key.len() - 24..];
    let saves = lab.member("saves").provider("codex", State::NoAuth).start();
    let fails = lab.member("fails").provider("codex", State::NoAuth).start();
    fs::write(saves.vendor_dir().join("login-echo"), "").unwrap();
    fs::write(fails.vendor_dir().join("login-echo"), "fail\n").unwrap();
    let inv = lab.inventory(&inventory_defaults());
    let leaks = |what: &str, text: &str| -> Option<String> {
        (text.contains(&key) || text.contains(tail)).then(|| {
            format!(
                "the key is in {what}:\n{}",
                text.replace(&key, "<KEY>").replace(tail, "<KEY TAIL>")
            )
        })
    };
    let mut failures = Vec::new();

    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &key)], &[]);
    let s = out.row("saves", "codex");
    assert_eq!(
        (str_of(&s, "state"), str_of(&s, "action")),
        ("ready", "pushed"),
        "the echoing login still saves the key\n{}",
        out.to_string().replace(&key, "<KEY>")
    );
    assert_eq!(
        str_of(&out.row("fails", "codex"), "action"),
        "failed",
        "{}",
        out.to_string().replace(&key, "<KEY>")
    );
    failures.extend(leaks("stdout (the JSON rows)", &out.stdout));
    failures.extend(leaks("stderr", &out.stderr));
    for m in [&saves, &fails] {
        assert!(
            m.calls_log()
                .iter()
                .any(|c| c.contains("login --with-api-key")),
            "{}: the login command never ran",
            m.name()
        );
    }

    // Again in table form with every log on: both members run the login command again.
    fs::remove_file(saves.home().join(".codex/auth.json")).unwrap();
    let logins = |m: &Member| {
        m.calls_log()
            .iter()
            .filter(|c| c.contains("login --with-api-key"))
            .count()
    };
    let before = [logins(&saves), logins(&fails)];
    let traced = lab
        .run(&["provision", "-i", inv.to_str().unwrap(), "--no-input"])
        .env("OPENAI_API_KEY", &key)
        .env("RUST_LOG", "trace")
        .output();
    assert!(
        traced.stderr.contains("TRACE") || traced.stderr.contains("DEBUG"),
        "trace logging was not on"
    );
    assert!(
        logins(&saves) > before[0] && logins(&fails) > before[1],
        "the traced run did not run the login command on both members"
    );
    failures.extend(leaks("stdout with RUST_LOG=trace", &traced.stdout));
    failures.extend(leaks("stderr with RUST_LOG=trace", &traced.stderr));
    let audit = fs::read_to_string(lab.fleetauth_home().join("audit.jsonl")).unwrap_or_default();
    failures.extend(leaks("audit.jsonl", &audit));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// 7. Env files whose lines are not one plain assignment each.

#[test]
fn a_line_assigning_the_key_among_others_is_replaced_or_reported_never_left_behind_a_ready_row() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line("export A=1 GEMINI_API_KEY=old-bad-key")
        .start();
    let inv = lab.inventory(&inventory_defaults());
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    out.assert_no_secret(&key);
    let row = out.row("m", "gemini");
    let env = m.env_file_contents();
    let stale: Vec<&str> = env.lines().filter(|l| l.contains("old-bad-key")).collect();
    assert_eq!(sourced(&m, "A"), "1", "A=1 was lost:\n{env}");
    if str_of(&row, "state") == "ready" {
        assert!(
            stale.is_empty(),
            "the row says ready ({}) but a line still sets the old key: {stale:?}",
            str_of(&row, "detail")
        );
        assert_eq!(sourced(&m, "GEMINI_API_KEY"), key, "ready, but not the key");
    } else {
        let detail = str_of(&row, "detail");
        assert!(
            detail.contains("shadow") && detail.contains("GEMINI_API_KEY"),
            "not ready, yet the shadowing line is not reported: {row}"
        );
    }
}

#[test]
fn a_multi_line_value_of_another_variable_is_kept_and_the_key_added() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let note = "first line\nGEMINI_API_KEY=inside-a-value\nlast";
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line(&format!("NOTE='{note}'"))
        .start();
    assert_eq!(sourced(&m, "NOTE"), note, "the harness wrote NOTE wrongly");
    let inv = lab.inventory(&inventory_defaults());
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    out.assert_no_secret(&key);
    let row = out.row("m", "gemini");
    assert_eq!(
        sourced(&m, "NOTE"),
        note,
        "NOTE's multi-line value changed; env file now:\n{}",
        m.env_file_contents().replace(&key, "<KEY>")
    );
    assert_eq!(
        sourced(&m, "GEMINI_API_KEY"),
        key,
        "the key was not added (row {}/{}: {})",
        str_of(&row, "state"),
        str_of(&row, "action"),
        str_of(&row, "detail")
    );
    assert_eq!(
        (str_of(&row, "state"), str_of(&row, "action")),
        ("ready", "pushed"),
        "{row}"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. After an ordinary run: only the env file and the lock, unless a backup was asked for.

#[test]
fn a_verified_push_or_a_restore_leaves_only_the_env_file_and_an_empty_lock() {
    let lab = Lab::new();
    let good = fake::gemini_key();
    let ok = lab
        .member("ok")
        .provider("gemini", State::NoAuth)
        .env_line(OLD_LINE)
        .start();
    let rejected = lab
        .member("rejected")
        .provider("gemini", State::NoAuth)
        .env_line(OLD_LINE)
        .vendor_rejects(&good)
        .start();
    let inv = lab.inventory(&inventory_defaults());
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &good)], &[]);
    assert_eq!(
        str_of(&out.row("ok", "gemini"), "action"),
        "pushed",
        "{out}"
    );
    assert_eq!(
        str_of(&out.row("rejected", "gemini"), "action"),
        "failed",
        "{out}"
    );
    let mut failures = Vec::new();
    for m in [&ok, &rejected] {
        let dir = m.home().join(ENV_DIR);
        let names = names_in(&dir);
        let extra: Vec<&String> = names
            .iter()
            .filter(|n| *n != "env" && *n != "env.fleetauth-lock")
            .collect();
        if !extra.is_empty() {
            failures.push(format!("{}: {extra:?} left beside the env file", m.name()));
        }
        if let Ok(md) = fs::metadata(dir.join("env.fleetauth-lock"))
            && md.len() != 0
        {
            failures.push(format!("{}: the lock file is not empty", m.name()));
        }
        let holding = files_holding(&[m.home()], &good, &m.env_file());
        if !holding.is_empty() {
            failures.push(format!("{}: the key is in {holding:?}", m.name()));
        }
    }
    assert!(failures.is_empty(), "{}\n{out}", failures.join("\n"));
}

#[test]
fn keep_backup_keeps_the_previous_file_private_beside_the_env_file() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line(OLD_LINE)
        .start();
    let before = m.env_file_contents();
    let inv = lab.inventory(&inventory_defaults());
    let out = lab
        .run(&[
            "provision",
            "-i",
            inv.to_str().unwrap(),
            "--format",
            "json",
            "--no-input",
            "--keep-backup",
        ])
        .env("GEMINI_API_KEY", &key)
        .output();
    out.assert_exit(0);
    assert_eq!(str_of(&out.row("m", "gemini"), "action"), "pushed", "{out}");
    let prev = m.home().join(ENV_DIR).join("env.fleetauth-prev");
    assert_eq!(
        fs::read_to_string(&prev).ok().as_deref(),
        Some(before.as_str()),
        "--keep-backup: env.fleetauth-prev must hold the previous file"
    );
    assert_eq!(mode_of(&prev), 0o600, "the backup must be private");
    assert_eq!(
        fs::symlink_metadata(&prev).unwrap().uid(),
        fs::metadata(m.env_file()).unwrap().uid()
    );
}
