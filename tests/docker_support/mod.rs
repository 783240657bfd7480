//! Test members in docker containers, for the fault-injection suite (tests/docker_faults.rs).
//!
//! A [`Lab`] is one test's private world: a docker network with its own /24 (so a member can be
//! recreated at the same address), a client key, a directory for inventories and fleetauth
//! homes, and the containers started from the member image that `docker/lab build` makes —
//! built once per test process, offline. Everything a lab starts carries the label
//! `org.fleetauth.lab=<lab id>` and is removed when the `Lab` is dropped, also when the test
//! panics (and `docker/lab down --all` sweeps up after a killed test run).
//!
//! Members are driven from outside, the way an operator's bad day would: `docker kill`, `pause`,
//! `network disconnect`, recreation. To hit a precise moment of fleetauth's work, a member
//! started with hooks can hold a phase at a gate ([`Member::arm`], [`Member::wait_reached`],
//! see docker/fault-hooks) until the test has done its damage: no sleeps, no timing guesses.
//!
//! fleetauth itself is the real binary (`CARGO_BIN_EXE_fleetauth`), run with `--format json`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The gate tool inside the member image.
pub const HOOKS: &str = "/usr/local/lib/fleetauth-member/fault-hooks";
/// The member's env file (fleetauth's default `~/.config/fleetauth/env` for user agent).
pub const ENV_FILE: &str = "/home/agent/.config/fleetauth/env";
/// The label every lab object carries (shared with docker/lab, so `docker/lab down --all`
/// also removes what a killed test run left behind).
pub const LABEL: &str = "org.fleetauth.lab";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn member_image() -> String {
    std::env::var("FLEETAUTH_MEMBER_IMAGE").unwrap_or_else(|_| "fleetauth-member:latest".into())
}

/// Run docker; the raw output.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// Run docker, panic with its stderr unless it succeeds; trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Why no Docker engine can be used, or None when one answers.
pub fn engine_problem() -> Option<String> {
    match Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("cannot run the docker command: {e}")),
        Ok(out) if !out.status.success() => Some(format!(
            "no Docker engine answers: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// True when the test can use docker. Without an engine the test is skipped (with the reason
/// printed) — or fails, when `FLEETAUTH_REQUIRE_DOCKER=1` (CI, where a skip would hide a broken
/// setup). Also builds the member image, once per process.
pub fn docker_or_skip(test: &str) -> bool {
    if let Some(why) = engine_problem() {
        if std::env::var("FLEETAUTH_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("{test}: FLEETAUTH_REQUIRE_DOCKER=1 but {why}");
        }
        // Straight to stderr, past the test harness's capture: a skip must be visible.
        let _ = writeln!(
            std::io::stderr(),
            "skipping {test}: {why} (set FLEETAUTH_REQUIRE_DOCKER=1 to make this a failure)"
        );
        return false;
    }
    build_image();
    true
}

/// `docker/lab build`: the offline base image and the member image, each only when missing or
/// out of date. Once per test process; docker/lab serialises concurrent builds itself.
fn build_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let started = Instant::now();
        let out = Command::new(repo().join("docker/lab"))
            .arg("build")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run docker/lab build: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "docker/lab build failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!(
            "docker/lab build: {:.1}s\n{}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Fake credentials: the same generator as the sshd harness's, one copy.
#[path = "../support/fake.rs"]
#[allow(dead_code)]
pub mod fake;
pub use fake::{alnum, anthropic_api_key as fake_anthropic_key, gemini_key as fake_gemini_key};

/// How one member container starts.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    /// MEMBER_STATE, e.g. `gemini=no_auth,claude=oauth_valid`.
    pub state: String,
    /// FLEETAUTH_FAULT_HOOKS=1: gates available (docker/fault-hooks).
    pub hooks: bool,
    /// Extra sshd_config lines (SSHD_CONFIG).
    pub sshd_config: Option<String>,
}

impl MemberSpec {
    pub fn new(name: &str, state: &str) -> MemberSpec {
        MemberSpec {
            name: name.into(),
            state: state.into(),
            hooks: false,
            sshd_config: None,
        }
    }

    pub fn hooks(mut self) -> MemberSpec {
        self.hooks = true;
        self
    }

    pub fn sshd(mut self, lines: &str) -> MemberSpec {
        self.sshd_config = Some(lines.into());
        self
    }
}

/// One running (or killed) member container.
#[derive(Debug, Clone)]
pub struct Member {
    pub spec: MemberSpec,
    pub container: String,
    pub ip: String,
    pub network: String,
}

/// One test's network, key, directory and containers; removed on drop.
pub struct Lab {
    pub id: String,
    pub network: String,
    prefix: String,
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    public_key: String,
    next_host: u8,
    runs: AtomicUsize,
}

impl Lab {
    pub fn new(test: &str) -> Lab {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "t{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            alnum(4).to_lowercase()
        );
        let network = format!("fleetauth-test-{id}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("fleetauth-{test}-"))
            .tempdir()
            .expect("temp dir");
        let key = dir.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "fleetauth-test",
                "-f",
            ])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-keygen (install openssh-client)");
        assert!(out.status.success(), "ssh-keygen failed: {out:?}");
        let public_key = std::fs::read_to_string(key.with_extension("pub"))
            .expect("public key")
            .trim()
            .to_string();
        let prefix = create_network(&network, &id);
        Lab {
            id,
            network,
            prefix,
            dir,
            key,
            public_key,
            next_host: 10,
            runs: AtomicUsize::new(0),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Start these members in parallel and wait until each one's sshd sends its banner.
    pub fn start(&mut self, specs: &[MemberSpec]) -> Vec<Member> {
        let members: Vec<Member> = specs
            .iter()
            .map(|spec| {
                self.next_host += 1;
                Member {
                    spec: spec.clone(),
                    container: format!("fleetauth-test-{}-{}", self.id, spec.name),
                    ip: format!("{}{}", self.prefix, self.next_host),
                    network: self.network.clone(),
                }
            })
            .collect();
        let children: Vec<_> = members
            .iter()
            .map(|m| {
                let args = self.run_args(m);
                let child = Command::new("docker")
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn docker run");
                (m, child)
            })
            .collect();
        for (m, child) in children {
            let out = child.wait_with_output().expect("docker run");
            assert!(
                out.status.success(),
                "docker run {} failed: {}",
                m.container,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for m in &members {
            m.wait_sshd(Duration::from_secs(30));
        }
        members
    }

    fn run_args(&self, m: &Member) -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &m.container,
            "--hostname",
            &m.spec.name,
            "--network",
            &self.network,
            "--ip",
            &m.ip,
            "--label",
            &format!("{LABEL}={}", self.id),
            "--label",
            "org.fleetauth.test=1",
            "-e",
            &format!("AUTHORIZED_KEYS={}", self.public_key),
            "-e",
            &format!("MEMBER_STATE={}", m.spec.state),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if m.spec.hooks {
            args.extend(["-e".into(), "FLEETAUTH_FAULT_HOOKS=1".into()]);
        }
        if let Some(conf) = &m.spec.sshd_config {
            args.extend(["-e".into(), format!("SSHD_CONFIG={conf}")]);
        }
        args.push(member_image());
        args
    }

    /// Remove `m`'s container and start a fresh one with the same name, address and state: a
    /// rebuilt machine, with a new host key.
    pub fn recreate(&self, m: &Member) {
        docker_ok(&["rm", "-f", "-v", &m.container]);
        let args = self.run_args(m);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        m.wait_sshd(Duration::from_secs(30));
    }

    /// A known_hosts file with the host keys of `members`, read from the containers.
    pub fn known_hosts(&self, file: &str, members: &[&Member]) -> PathBuf {
        let text: String = members
            .iter()
            .map(|m| format!("{} {}\n", m.ip, m.host_key()))
            .collect();
        let path = self.path(file);
        std::fs::write(&path, text).expect("write known_hosts");
        path
    }

    /// Write an inventory: `entries` are (member name in the inventory, container); `settings`
    /// override or extend the `[defaults]` below (raw TOML values).
    pub fn inventory(
        &self,
        file: &str,
        entries: &[(&str, &Member)],
        settings: &[(&str, &str)],
    ) -> PathBuf {
        let mut defaults: BTreeMap<&str, String> = BTreeMap::new();
        defaults.insert("user", "\"agent\"".into());
        defaults.insert("identity_file", toml_path(&self.key));
        defaults.insert("known_hosts", toml_path(&self.path("known_hosts")));
        defaults.insert("host_key_checking", "\"strict\"".into());
        defaults.insert("providers", "[\"gemini\"]".into());
        // Generous: a loaded machine must not turn a normal member into a slow one. Tests about
        // deadlines set their own.
        defaults.insert("connect_timeout", "\"10s\"".into());
        defaults.insert("command_timeout", "\"20s\"".into());
        defaults.insert("probe_timeout", "\"10s\"".into());
        for (k, v) in settings {
            defaults.insert(k, v.to_string());
        }
        let mut text = String::from("[defaults]\n");
        for (k, v) in &defaults {
            text.push_str(&format!("{k} = {v}\n"));
        }
        for (name, m) in entries {
            text.push_str(&format!("\n[members.{name}]\nhost = \"{}\"\n", m.ip));
        }
        let path = self.path(file);
        std::fs::write(&path, text).expect("write inventory");
        path
    }

    /// Start fleetauth with `args` (plus `--format json --no-input`) and `env`, its own
    /// FLEETAUTH_HOME, and none of the operator's keys or agent.
    pub fn spawn_fleetauth(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let home = self.path(&format!("fleetauth-home-{n}"));
        std::fs::create_dir_all(&home).expect("fleetauth home");
        // Private, as fleetauth requires of its home (else it warns and writes no audit log).
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod fleetauth home");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetauth"));
        cmd.args(args)
            .args(["--format", "json", "--no-input"])
            .env("FLEETAUTH_HOME", &home)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "GEMINI_API_KEY",
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "CODEX_API_KEY",
            "COPILOT_GITHUB_TOKEN",
            "GH_TOKEN",
            "GITHUB_TOKEN",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let child = cmd.spawn().expect("spawn fleetauth");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Running {
            rx,
            done: std::sync::Mutex::new(None),
            reaped: false,
            pid,
            started,
            what: args.join(" "),
        }
    }

    /// [`Lab::spawn_fleetauth`] and wait (at most two minutes).
    pub fn fleetauth(&self, args: &[&str], env: &[(&str, &str)]) -> Finished {
        self.spawn_fleetauth(args, env)
            .wait(Duration::from_secs(120))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let filter = format!("label={LABEL}={}", self.id);
        let ids = docker(&["ps", "-aq", "--filter", &filter]);
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for id in &ids {
            // A paused container cannot be removed.
            let _ = docker(&["unpause", id]);
        }
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids.iter().map(String::as_str));
            let out = docker(&args);
            if !out.status.success() {
                eprintln!(
                    "lab {}: removing containers failed: {}",
                    self.id,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let out = docker(&["network", "rm", &self.network]);
        if !out.status.success() {
            eprintln!(
                "lab {}: removing network failed: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn toml_path(p: &Path) -> String {
    let s = p.display().to_string();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Create `name` with a free 172.30.x.0/24 (explicit, so `--ip` works); the address prefix.
fn create_network(name: &str, id: &str) -> String {
    let routes = Command::new("ip")
        .args(["-4", "route"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let start = alnum(2).bytes().map(|b| b as usize).sum::<usize>();
    let mut last_err = String::new();
    for i in 0..256 {
        let octet = (start + i * 7) % 256;
        let prefix = format!("172.30.{octet}.");
        if routes.contains(&prefix) {
            continue;
        }
        let out = docker(&[
            "network",
            "create",
            "--internal",
            "--subnet",
            &format!("{prefix}0/24"),
            "--label",
            &format!("{LABEL}={id}"),
            "--label",
            "org.fleetauth.test=1",
            name,
        ]);
        if out.status.success() {
            return prefix;
        }
        last_err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    panic!("cannot create docker network {name}: {last_err}");
}

impl Member {
    /// `docker exec CONTAINER args…`, as root.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut a = vec!["exec", self.container.as_str()];
        a.extend_from_slice(args);
        docker(&a)
    }

    /// Run `script` with sh as the member user; its stdout. Panics on failure.
    pub fn sh(&self, script: &str) -> String {
        let out = docker(&["exec", "-u", "agent", &self.container, "sh", "-c", script]);
        assert!(
            out.status.success(),
            "{}: `{script}` failed: {}",
            self.container,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Replace the member's env file with `text` (0600, as the member user).
    pub fn set_env_file(&self, text: &str) {
        let out = Command::new("docker")
            .args([
                "exec",
                "-i",
                "-u",
                "agent",
                &self.container,
                "sh",
                "-c",
                "umask 077 && mkdir -p ~/.config/fleetauth && cat >~/.config/fleetauth/env",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(text.as_bytes())?;
                c.wait_with_output()
            })
            .expect("docker exec");
        assert!(out.status.success(), "set env file: {out:?}");
    }

    /// Make the simulated vendor reject `key` (a line of `$FLEETAUTH_STUB_VENDOR/rejected`; the
    /// key travels on stdin, never in an argument).
    pub fn vendor_rejects(&self, key: &str) {
        let out = Command::new("docker")
            .args([
                "exec",
                "-i",
                &self.container,
                "sh",
                "-c",
                "cat >>\"${FLEETAUTH_STUB_VENDOR:-/etc/fleetauth-stub}/rejected\"",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{key}\n").as_bytes())?;
                c.wait_with_output()
            })
            .expect("docker exec");
        assert!(out.status.success(), "vendor_rejects: {out:?}");
    }

    /// The member's host key (`ssh-ed25519 AAAA…`), read from the container.
    pub fn host_key(&self) -> String {
        let out = self.exec(&["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
        assert!(out.status.success(), "read host key of {}", self.container);
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.split_whitespace().take(2).collect();
        assert_eq!(fields.len(), 2, "host key of {}: {text:?}", self.container);
        fields.join(" ")
    }

    /// `docker cp` of `path` (a file or a directory) out of a running or a stopped (killed)
    /// container, into a temporary directory; None when `path` is absent.
    fn copy_out(&self, path: &str) -> Option<tempfile::TempDir> {
        let dest = tempfile::tempdir().expect("temp dir");
        let out = docker(&[
            "cp",
            &format!("{}:{path}", self.container),
            &dest.path().display().to_string(),
        ]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("Could not find") || err.contains("No such"),
                "docker cp {}:{path}: {err}",
                self.container
            );
            return None;
        }
        Some(dest)
    }

    /// A file's contents, from a running or a stopped (killed) container; None when absent.
    pub fn read_file(&self, path: &str) -> Option<String> {
        let dest = self.copy_out(path)?;
        let name = Path::new(path).file_name().expect("file name");
        Some(std::fs::read_to_string(dest.path().join(name)).expect("copied file"))
    }

    /// The regular files directly in directory `path` (name → contents), from a running or a
    /// stopped (killed) container; empty when the directory is absent.
    pub fn read_dir(&self, path: &str) -> BTreeMap<String, String> {
        let Some(dest) = self.copy_out(path) else {
            return BTreeMap::new();
        };
        let name = Path::new(path).file_name().expect("directory name");
        std::fs::read_dir(dest.path().join(name))
            .expect("copied directory")
            .map(|e| e.expect("directory entry"))
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| {
                let text = std::fs::read(e.path()).expect("copied file");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    String::from_utf8_lossy(&text).into_owned(),
                )
            })
            .collect()
    }

    /// Until sshd sends its banner.
    pub fn wait_sshd(&self, limit: Duration) {
        let addr: SocketAddr = format!("{}:22", self.ip).parse().expect("address");
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 8];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-2.0-" {
                    return;
                }
            }
            if Instant::now() > deadline {
                let logs = docker(&["logs", "--tail", "20", &self.container]);
                panic!(
                    "{}: sshd did not answer at {addr} within {limit:?}; log:\n{}",
                    self.container,
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Hold `phase` after `pass` hits (docker/fault-hooks).
    pub fn arm(&self, phase: &str, pass: u32) {
        let out = self.exec(&[HOOKS, "arm", phase, &pass.to_string()]);
        assert!(
            out.status.success(),
            "arm {phase} on {}: {out:?}",
            self.container
        );
    }

    pub fn release(&self, phase: &str) {
        let out = self.exec(&[HOOKS, "release", phase]);
        assert!(out.status.success(), "release {phase}: {out:?}");
    }

    pub fn hits(&self, phase: &str) -> u32 {
        let out = self.exec(&[HOOKS, "hits", phase]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Until fleetauth is held at `phase` on this member. Panics (with what fleetauth said so
    /// far, if it already finished) after `limit`.
    pub fn wait_reached(&self, phase: &str, limit: Duration, run: &Running) {
        let deadline = Instant::now() + limit;
        loop {
            if self.exec(&[HOOKS, "reached", phase]).status.success() {
                return;
            }
            let finished = run.poll();
            if finished.is_some() || Instant::now() > deadline {
                let gates = self.exec(&[
                    "sh",
                    "-c",
                    "cd /run/fleetauth-gates && grep -r . . 2>/dev/null",
                ]);
                panic!(
                    "{}: fleetauth {} never reached the {phase} gate ({:?} after it started)\n\
                     gate files:\n{}\nfleetauth: {}\nmember's sshd log:\n{}",
                    self.container,
                    run.what,
                    run.started.elapsed(),
                    String::from_utf8_lossy(&gates.stdout),
                    finished.unwrap_or_else(|| "still running".into()),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&self) {
        docker_ok(&["kill", &self.container]);
    }

    /// `docker start` a killed (stopped) member: same address, host key and disk; its gates
    /// start disarmed. Returns once sshd answers.
    pub fn start(&self) {
        docker_ok(&["start", &self.container]);
        self.wait_sshd(Duration::from_secs(30));
    }

    /// `docker pause`. runc's cgroup-v1 freezer gives up ("unable to freeze") when the
    /// container's processes do not settle quickly enough, as on a loaded machine; that is retried.
    pub fn pause(&self) {
        for _ in 0..10 {
            let out = docker(&["pause", &self.container]);
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("unable to freeze"),
                "docker pause {} failed ({}): {}",
                self.container,
                out.status,
                err.trim()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        docker_ok(&["pause", &self.container]);
    }

    pub fn unpause(&self) {
        docker_ok(&["unpause", &self.container]);
    }

    pub fn disconnect(&self) {
        docker_ok(&["network", "disconnect", &self.network, &self.container]);
    }

    pub fn reconnect(&self) {
        docker_ok(&[
            "network",
            "connect",
            "--ip",
            &self.ip,
            &self.network,
            &self.container,
        ]);
    }

    /// The sshd log (sshd runs with -e: docker logs' stderr).
    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.container]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// A fleetauth run in progress. Dropped without [`Running::wait`] (a test that panicked), the
/// process is killed.
pub struct Running {
    rx: std::sync::mpsc::Receiver<std::io::Result<Output>>,
    /// The output once collected (by `poll`), with the time it took.
    done: std::sync::Mutex<Option<(Output, Duration)>>,
    reaped: bool,
    pid: u32,
    pub started: Instant,
    pub what: String,
}

/// A finished fleetauth run.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Running {
    /// What the run printed, if it has already finished (collected once and kept for `wait`).
    pub fn poll(&self) -> Option<String> {
        let mut done = self.done.lock().unwrap();
        if done.is_none()
            && let Ok(out) = self.rx.try_recv()
        {
            *done = Some((out.expect("fleetauth output"), self.started.elapsed()));
        }
        done.as_ref().map(|(out, _)| {
            format!(
                "exit {:?}\nstdout:\n{}\nstderr:\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Wait for the run; kill it and panic after `limit`.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let cached = self.done.lock().unwrap().take();
        let (out, elapsed) = match cached {
            Some(done) => done,
            None => match self.rx.recv_timeout(limit) {
                Ok(out) => (out.expect("fleetauth output"), self.started.elapsed()),
                Err(_) => panic!(
                    "fleetauth {} did not finish within {limit:?}: killed",
                    self.what
                ),
            },
        };
        self.reaped = true;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "fleetauth {} did not print JSON ({e}); exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                self.what,
                out.status.code()
            )
        });
        Finished {
            code: out.status.code(),
            json,
            stdout,
            stderr,
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped && self.done.lock().map(|d| d.is_none()).unwrap_or(true) {
            // SAFETY: kill(2) of our own child, which has not been reaped (its pid is not reused
            // while it is a zombie).
            unsafe {
                libc::kill(self.pid as i32, libc::SIGKILL);
            }
        }
    }
}

impl Finished {
    pub fn rows(&self) -> Vec<&Value> {
        self.json["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results array in {}", self.stdout))
            .iter()
            .collect()
    }

    /// The row of `member` × `provider`; panics (showing every row) when there is none.
    pub fn row(&self, member: &str, provider: &str) -> &Value {
        self.rows()
            .into_iter()
            .find(|r| r["member"] == member && r["provider"] == provider)
            .unwrap_or_else(|| panic!("no row {member} × {provider} in:\n{}", self.stdout))
    }

    /// The rows of `member`.
    pub fn rows_of(&self, member: &str) -> Vec<&Value> {
        self.rows()
            .into_iter()
            .filter(|r| r["member"] == member)
            .collect()
    }

    /// `member × provider` as `state/action: detail`, for assertion messages.
    pub fn describe(&self, member: &str, provider: &str) -> String {
        let r = self.row(member, provider);
        format!(
            "{member} × {provider}: state {} action {} reason {} — {}",
            r["state"], r["action"], r["reason"], r["detail"]
        )
    }
}
