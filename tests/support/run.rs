//! Running the fleetauth binary (and other commands) from a lab, and reading what it printed.
//!
//! fleetauth runs with a clean environment: only the lab's HOME, FLEETAUTH_HOME and
//! XDG_CONFIG_HOME, a plain PATH, SSH_AUTH_SOCK when the lab has an agent, and whatever the test
//! adds with [`Run::env`]; stdin is empty unless given. Nothing of the developer's own
//! environment (their agent, their keys, their API keys) can make a test pass or fail.
//!
//! Every run has a deadline (60 s unless [`Run::timeout`]): a hung fleetauth fails the test with
//! what it printed so far instead of hanging the suite.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Lab;

/// The passphrase of the local credential store in tests (`FLEETAUTH_PASSPHRASE`).
pub const STORE_PASSPHRASE: &str = "store passphrase for tests";

/// A fleetauth invocation being prepared; [`Run::output`] runs it.
#[must_use = "nothing runs until .output()"]
pub struct Run<'a> {
    lab: &'a Lab,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    timeout: Duration,
}

impl Lab {
    /// Run fleetauth with `args`, stdin empty; see [`Lab::run`].
    pub fn fleetauth(&self, args: &[&str]) -> Output {
        self.run(args).output()
    }

    /// Run fleetauth with `args` and `stdin` on its standard input.
    pub fn fleetauth_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.run(args).stdin(stdin).output()
    }

    /// `fleetauth provision -i INV --format json --no-input EXTRA…` with `env` in fleetauth's
    /// environment and [`STORE_PASSPHRASE`] as the store's passphrase.
    pub fn provision_json(&self, inv: &Path, env: &[(&str, &str)], extra: &[&str]) -> Output {
        let mut args = vec![
            "provision",
            "-i",
            inv.to_str().unwrap(),
            "--format",
            "json",
            "--no-input",
        ];
        args.extend_from_slice(extra);
        let mut run = self
            .run(&args)
            .env("FLEETAUTH_PASSPHRASE", STORE_PASSPHRASE);
        for (k, v) in env {
            run = run.env(k, v);
        }
        run.output()
    }

    /// `fleetauth auth set PROVIDER` with `key` on stdin and [`STORE_PASSPHRASE`]; must succeed
    /// without printing the key.
    pub fn store_key(&self, provider: &str, key: &str) {
        self.run(&["auth", "set", provider])
            .env("FLEETAUTH_PASSPHRASE", STORE_PASSPHRASE)
            .stdin(key.as_bytes())
            .output()
            .assert_exit(0)
            .assert_no_secret(key);
    }

    /// Prepare a fleetauth run (add env, stdin, a deadline, then `.output()`).
    pub fn run(&self, args: &[&str]) -> Run<'_> {
        Run {
            lab: self,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            stdin: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

impl Run<'_> {
    /// Set a variable in fleetauth's environment (e.g. the operator's `GEMINI_API_KEY`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }
    /// Bytes on fleetauth's stdin (then EOF).
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = bytes.to_vec();
        self
    }
    /// Kill fleetauth after `timeout` (the output then says `timed_out`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn output(self) -> Output {
        let (cmd, stdin, timeout) = self.command();
        capture(cmd, Some(stdin), timeout)
    }

    /// Start it with stdout a pipe for the test to read as it comes (stdin and stderr
    /// /dev/null), in its own process group; the caller waits for it (or kills the group).
    pub fn spawn_reading_stdout(self) -> std::process::Child {
        let (mut cmd, _, _) = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        cmd.spawn().expect("spawn fleetauth")
    }

    /// Run it with stdout a pipe nobody reads: the read end is closed before fleetauth starts,
    /// so its every write to stdout fails with EPIPE, as under `fleetauth … | head -1` once
    /// `head` is gone. The output's `stdout` is empty.
    pub fn output_with_stdout_closed(self) -> Output {
        let (cmd, stdin, timeout) = self.command();
        capture_with(cmd, Some(stdin), timeout, true)
    }

    fn command(self) -> (Command, Vec<u8>, Duration) {
        let lab = self.lab;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetauth"));
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", lab.operator_home())
            .env("FLEETAUTH_HOME", lab.fleetauth_home())
            .env("XDG_CONFIG_HOME", lab.config_home())
            .env("RUST_BACKTRACE", "1")
            .current_dir(lab.dir());
        if let Some(socket) = lab.agent_socket() {
            cmd.env("SSH_AUTH_SOCK", socket);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        (cmd, self.stdin, self.timeout)
    }
}

/// Run `cmd` to completion (or `timeout`), feeding `stdin` (None: /dev/null), capturing both
/// streams. The command gets its own process group, killed whole on timeout.
pub fn capture(cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    capture_with(cmd, stdin, timeout, false)
}

/// [`capture`], or with `stdout_closed` stdout a pipe whose read end is already closed.
fn capture_with(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    stdout_closed: bool,
) -> Output {
    let description = format!("{cmd:?}");
    let stdout = if stdout_closed {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        Stdio::from(writer)
    } else {
        Stdio::piped()
    };
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(stdout)
    .stderr(Stdio::piped())
    .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {description}: {e}"));
    let pgid = child.id() as i32;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = match child.stdout.take() {
        Some(pipe) => reader(Box::new(pipe)),
        None => std::thread::spawn(String::new),
    };
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            super::procs::kill_group(pgid);
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        command: description,
        code: status.code(),
        signal: status.signal(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// What a command printed and how it ended. `Display` shows all of it, for failure messages.
#[derive(Debug, Clone)]
pub struct Output {
    pub command: String,
    /// Exit status; None when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// It was killed at its deadline.
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    /// Panic (showing both streams) unless it exited with `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert!(
            self.code == Some(code) && !self.timed_out,
            "expected exit status {code}, got {}\n{self}",
            self.ending()
        );
        self
    }

    /// stdout parsed as one JSON document; panics showing both streams when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e})\n{self}"))
    }

    /// The `results` array of the JSON document (design §4).
    #[track_caller]
    pub fn results(&self) -> Vec<Value> {
        match self.json().get("results") {
            Some(Value::Array(rows)) => rows.clone(),
            _ => panic!("the JSON document has no \"results\" array\n{self}"),
        }
    }

    /// The result row for `member` × `provider`; panics listing the rows there are.
    #[track_caller]
    pub fn row(&self, member: &str, provider: &str) -> Value {
        let rows = self.results();
        let found: Vec<&Value> = rows
            .iter()
            .filter(|r| r["member"] == member && r["provider"] == provider)
            .collect();
        match found.as_slice() {
            [one] => (*one).clone(),
            [] => panic!(
                "no result row for {member} × {provider}; rows: {:?}\n{self}",
                rows.iter()
                    .map(|r| format!("{} × {}", r["member"], r["provider"]))
                    .collect::<Vec<_>>()
            ),
            _ => panic!("{} rows for {member} × {provider}\n{self}", found.len()),
        }
    }

    /// Every result row for `member`, in output order.
    #[track_caller]
    pub fn rows_for(&self, member: &str) -> Vec<Value> {
        self.results()
            .into_iter()
            .filter(|r| r["member"] == member)
            .collect()
    }

    /// The `summary` object of the JSON document.
    #[track_caller]
    pub fn summary(&self) -> Value {
        self.json()
            .get("summary")
            .cloned()
            .unwrap_or_else(|| panic!("no \"summary\" in the JSON document\n{self}"))
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{self}"
        );
        self
    }

    /// Panic unless `secret` appears in neither stream. The failure message shows the streams
    /// with the secret masked, never the secret itself.
    #[track_caller]
    pub fn assert_no_secret(&self, secret: &str) -> &Self {
        assert!(
            !secret.is_empty(),
            "assert_no_secret with an empty secret proves nothing"
        );
        if self.stdout.contains(secret) || self.stderr.contains(secret) {
            let masked = super::fake::masked(secret);
            let shown = self
                .to_string()
                .replace(secret, &format!("<SECRET {masked}>"));
            panic!("the secret {masked} was printed\n{shown}");
        }
        self
    }

    fn ending(&self) -> String {
        match (self.timed_out, self.code, self.signal) {
            (true, _, _) => format!("killed at its deadline after {:.1?}", self.elapsed),
            (_, Some(c), _) => format!("exit status {c}"),
            (_, _, Some(s)) => format!("signal {s}"),
            _ => "no status".to_string(),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "ended:   {} in {:.2?}", self.ending(), self.elapsed)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}
