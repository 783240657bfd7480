//! `fleetauth login`: each member's own CLI login, relayed to the operator, on real sshd members.
//!
//! The stub CLIs run their vendors' login flows (docs/stubs.md, "Logins") against a fake
//! authorisation server this test runs on 127.0.0.1 ([`AuthServer`]): it issues device codes and
//! paste-back codes, and the test — playing the operator — approves or denies the codes
//! fleetauth relays (`--format jsonl` events), or pastes the code "the browser shows" back.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Lab, Member, State, fake};

// ---------------------------------------------------------------- the fake authorisation server

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Decision {
    Pending,
    Approved,
    Denied,
}

struct Device {
    client: String,
    device_code: String,
    user_code: String,
    issued: Instant,
    decision: Decision,
    polls: u32,
}

struct PasteLogin {
    client: String,
    state: String,
    code: String,
    used: bool,
}

#[derive(Default)]
struct ServerState {
    disabled: Vec<String>,
    expires_in: Option<Duration>,
    devices: Vec<Device>,
    pastes: Vec<PasteLogin>,
    /// Every token handed out: none may show in fleetauth's output.
    tokens: Vec<String>,
}

/// A tiny HTTP server speaking the stubs' plain-text protocol (docker/stubs/lib.sh).
#[derive(Clone)]
struct AuthServer {
    url: String,
    state: Arc<Mutex<ServerState>>,
}

fn upper_code() -> String {
    let a = fake::alnum(8).to_uppercase();
    format!("{}-{}", &a[..4], &a[4..])
}

fn tokens_for(client: &str) -> (String, String) {
    match client {
        "codex" => (
            fake::chatgpt_access_token(fake::epoch_s(8 * 3600)),
            fake::chatgpt_refresh_token(),
        ),
        "claude" => (fake::claude_oauth_token(), fake::claude_refresh_token()),
        "copilot" => (
            fake::github_oauth_token(),
            format!("ghr_{}", fake::alnum(30)),
        ),
        "gemini" => (fake::google_access_token(), fake::google_refresh_token()),
        _ => (fake::alnum(40), fake::alnum(40)),
    }
}

impl AuthServer {
    fn start() -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = AuthServer {
            url,
            state: Arc::default(),
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.serve(conn));
            }
        });
        server
    }

    /// Point `member`'s stubs at this server.
    fn serve_member(&self, member: &Member) {
        std::fs::write(
            member.vendor_dir().join("auth-server"),
            format!("{}\n", self.url),
        )
        .unwrap();
    }

    fn disable_device_flow(&self, client: &str) {
        self.state.lock().unwrap().disabled.push(client.into());
    }

    fn codes_expire_after(&self, d: Duration) {
        self.state.lock().unwrap().expires_in = Some(d);
    }

    fn decide(&self, user_code: &str, decision: Decision) {
        let mut st = self.state.lock().unwrap();
        let dev = st
            .devices
            .iter_mut()
            .find(|d| d.user_code == user_code)
            .unwrap_or_else(|| panic!("the server never issued the relayed code {user_code}"));
        dev.decision = decision;
    }

    /// What the vendor's page shows after the operator authorised the login `state`.
    fn authorisation_code(&self, state: &str) -> String {
        let st = self.state.lock().unwrap();
        st.pastes
            .iter()
            .find(|p| p.state == state)
            .unwrap_or_else(|| panic!("no login with state {state}"))
            .code
            .clone()
    }

    fn all_secrets(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        let mut v = st.tokens.clone();
        v.extend(st.pastes.iter().map(|p| p.code.clone()));
        v
    }

    fn serve(&self, mut conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        let _ = reader.read_exact(&mut body);
        let body = String::from_utf8_lossy(&body).to_string();
        let answer = self.answer(&path, body.trim());
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }

    fn answer(&self, path: &str, body: &str) -> String {
        let mut st = self.state.lock().unwrap();
        match path {
            "/device/code" => {
                if st.disabled.iter().any(|c| c == body) {
                    return "disabled".into();
                }
                let dev = Device {
                    client: body.to_string(),
                    device_code: fake::alnum(32),
                    user_code: upper_code(),
                    issued: Instant::now(),
                    decision: Decision::Pending,
                    polls: 0,
                };
                let a = format!(
                    "device_code={}\nuser_code={}\ninterval=1\nexpires_in=900\n",
                    dev.device_code, dev.user_code
                );
                st.devices.push(dev);
                a
            }
            "/device/token" => {
                let expires = st.expires_in;
                let Some(i) = st.devices.iter().position(|d| d.device_code == body) else {
                    return "expired".into();
                };
                st.devices[i].polls += 1;
                let dev = &st.devices[i];
                let client = dev.client.clone();
                match dev.decision {
                    Decision::Denied => "denied".into(),
                    Decision::Approved => {
                        let (a, r) = tokens_for(&client);
                        st.tokens.push(a.clone());
                        st.tokens.push(r.clone());
                        st.devices.remove(i);
                        format!("token {a} {r}")
                    }
                    Decision::Pending if expires.is_some_and(|e| dev.issued.elapsed() > e) => {
                        "expired".into()
                    }
                    // RFC 8628: a client polling too fast is told to slow down.
                    Decision::Pending if dev.polls == 1 => "slow_down".into(),
                    Decision::Pending => "pending".into(),
                }
            }
            "/authorize/start" => {
                let p = PasteLogin {
                    client: body.to_string(),
                    state: fake::alnum(16),
                    code: format!("ac_{}", fake::alnum(30)),
                    used: false,
                };
                let a = format!("state={}\n", p.state);
                st.pastes.push(p);
                a
            }
            "/authorize/exchange" => {
                let mut words = body.split_whitespace();
                let (state, code) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let Some(p) = st
                    .pastes
                    .iter_mut()
                    .find(|p| p.state == state && p.code == code && !p.used)
                else {
                    return "invalid".into();
                };
                p.used = true;
                let client = p.client.clone();
                let (a, r) = tokens_for(&client);
                st.tokens.push(a.clone());
                st.tokens.push(r.clone());
                format!("token {a} {r}")
            }
            _ => "unknown".into(),
        }
    }
}

// ---------------------------------------------------------------- the operator

/// What the operator does with each relayed login.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    Approve,
    Deny,
    /// Does nothing (a deadline or Ctrl-C ends the login).
    Ignore,
    /// Ignores the first code of each login, approves the renewed one.
    ApproveRenewed,
}

struct Session {
    events: Vec<Value>,
    stdout: String,
    stderr: String,
    status: Option<i32>,
}

impl Session {
    fn of(&self, kind: &str, member: &str, provider: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["event"] == kind && e["member"] == member && e["provider"] == provider)
            .collect()
    }

    fn verified(&self, member: &str, provider: &str) -> &Value {
        self.of("verified", member, provider)
            .first()
            .copied()
            .unwrap_or_else(|| {
                panic!(
                    "no verified event for {member}/{provider}:\n{}",
                    self.stdout
                )
            })
    }

    fn assert_no_secret(&self, secrets: &[String]) {
        for s in secrets {
            assert!(
                !self.stdout.contains(s.as_str()) && !self.stderr.contains(s.as_str()),
                "a token or pasted code leaked into fleetauth's output"
            );
        }
    }
}

fn fleetauth(lab: &Lab) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetauth"));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", lab.operator_home())
        .env("FLEETAUTH_HOME", lab.fleetauth_home())
        .env("XDG_CONFIG_HOME", lab.config_home())
        .current_dir(lab.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(socket) = lab.agent_socket() {
        cmd.env("SSH_AUTH_SOCK", socket);
    }
    cmd
}

fn query(url: &str, name: &str) -> String {
    url.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .to_string()
}

/// Run `fleetauth login --format jsonl ARGS…` as `operator`; `interrupt_after` sends SIGINT once
/// that many logins wait.
fn login(
    lab: &Lab,
    server: &AuthServer,
    args: &[&str],
    operator: Operator,
    interrupt_after: Option<usize>,
) -> Session {
    let inv = lab.inventory("");
    let mut cmd = fleetauth(lab);
    cmd.args(["login", "-i", inv.to_str().unwrap(), "--format", "jsonl"])
        .args(args);
    let mut child: Child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut events = Vec::new();
    let mut raw = String::new();
    let mut seen_codes: HashMap<(String, String), usize> = HashMap::new();
    let mut waiting = 0;
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let line = match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("fleetauth login did not finish:\n{raw}");
            }
        };
        raw.push_str(&line);
        raw.push('\n');
        let e: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        let (member, provider) = (
            e["member"].as_str().unwrap_or("").to_string(),
            e["provider"].as_str().unwrap_or("").to_string(),
        );
        match e["event"].as_str().unwrap_or("") {
            "code" => {
                let n = seen_codes.entry((member, provider)).or_insert(0);
                *n += 1;
                let code = e["code"].as_str().unwrap();
                match operator {
                    Operator::Approve => server.decide(code, Decision::Approved),
                    Operator::Deny => server.decide(code, Decision::Denied),
                    Operator::ApproveRenewed if *n > 1 => server.decide(code, Decision::Approved),
                    _ => {}
                }
            }
            "url" => {
                let url = e["url"].as_str().unwrap();
                if operator == Operator::Approve {
                    if url.contains("uuid=") {
                        // The browser-poll login: the operator finishes it in the browser.
                        server.decide(&query(url, "uuid"), Decision::Approved);
                    } else {
                        // Paste-back: the page shows a code after authorising; the operator
                        // pastes it, addressed to this member's login.
                        let code = server.authorisation_code(&query(url, "state"));
                        writeln!(stdin, "{member} {provider} {code}").unwrap();
                        stdin.flush().unwrap();
                    }
                }
            }
            "waiting" => {
                waiting += 1;
                if interrupt_after == Some(waiting) {
                    // Ctrl-C.
                    unsafe {
                        libc::kill(child.id() as i32, libc::SIGINT);
                    }
                }
            }
            _ => {}
        }
        events.push(e);
    }
    drop(stdin);
    let status = child.wait().unwrap().code();
    Session {
        events,
        stdout: raw,
        stderr: err_thread.join().unwrap(),
        status,
    }
}

/// True once nothing runs on `member` any more (waits up to 15 s).
fn nothing_left_running(member: &Member) -> bool {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if member.processes().is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

// ---------------------------------------------------------------- the tests

#[test]
fn device_code_logins_of_many_members_are_approved_and_verified() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let members = [
        lab.member("m-codex")
            .provider("codex", State::NoAuth)
            .start(),
        lab.member("m-copilot")
            .provider("copilot", State::NoAuth)
            .start(),
        lab.member("m-droid")
            .provider("droid", State::NoAuth)
            .start(),
        lab.member("m-cursor")
            .provider("cursor", State::NoAuth)
            .start(),
    ];
    for m in &members {
        server.serve_member(m);
    }
    let s = login(
        &lab,
        &server,
        &["codex", "copilot", "droid", "cursor"],
        Operator::Approve,
        None,
    );
    assert_eq!(s.status, Some(0), "{}\n{}", s.stdout, s.stderr);
    for (m, p) in [
        ("m-codex", "codex"),
        ("m-copilot", "copilot"),
        ("m-droid", "droid"),
        ("m-cursor", "cursor"),
    ] {
        assert_eq!(s.of("approved", m, p).len(), 1, "{m}: {}", s.stdout);
        let v = s.verified(m, p);
        assert_eq!(v["state"], "ready", "{m}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .starts_with("logged in on the member")
        );
    }
    // Device codes come with the vendors' URLs; the browser login has a URL only.
    let codex = s.of("code", "m-codex", "codex")[0];
    assert_eq!(codex["url"], "https://auth.openai.com/codex/device");
    assert_eq!(
        s.of("code", "m-copilot", "copilot")[0]["url"],
        "https://github.com/login/device"
    );
    assert!(s.of("url", "m-cursor", "cursor")[0]["code"].is_null());
    assert_eq!(
        s.of("started", "m-codex", "codex")[0]["flow"],
        "device_code"
    );
    assert_eq!(
        s.of("started", "m-cursor", "cursor")[0]["flow"],
        "browser_poll"
    );
    let summary: Value = serde_json::from_str(s.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["ready"], 4);
    s.assert_no_secret(&server.all_secrets());
    // The logins are in the audit log, without any credential.
    let audit = std::fs::read_to_string(lab.fleetauth_home().join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"login_approved\"").count(), 4, "{audit}");
    for secret in server.all_secrets() {
        assert!(!audit.contains(&secret));
    }
    for m in &members {
        assert!(nothing_left_running(m), "{m:?} still runs something");
    }
}

#[test]
fn a_denied_login_fails_with_the_reason() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let m = lab.member("m1").provider("copilot", State::NoAuth).start();
    server.serve_member(&m);
    let s = login(&lab, &server, &["copilot"], Operator::Deny, None);
    assert_eq!(s.status, Some(1));
    let failed = s.of("failed", "m1", "copilot");
    assert_eq!(failed.len(), 1, "{}", s.stdout);
    assert_eq!(
        failed[0]["detail"],
        "the authorization was denied on GitHub"
    );
    let v = s.verified("m1", "copilot");
    assert_eq!(v["state"], "needs_auth");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("login failed: the authorization was denied on GitHub")
    );
}

#[test]
fn a_disabled_device_flow_ends_with_the_vendors_reason_and_the_remedy() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let m = lab.member("m1").provider("codex", State::NoAuth).start();
    server.serve_member(&m);
    server.disable_device_flow("codex");
    let s = login(&lab, &server, &["codex"], Operator::Approve, None);
    assert_eq!(s.status, Some(1));
    let detail = s.of("failed", "m1", "codex")[0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("device-code login is not enabled"),
        "{detail}"
    );
    assert!(detail.contains("security settings"), "{detail}");
    // codex fell back to a browser login that waits forever: fleetauth ended it.
    assert!(nothing_left_running(&m));
}

#[test]
fn pasted_codes_reach_only_their_own_member() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let a = lab
        .member("a")
        .provider("claude", State::NoAuth)
        .provider("gemini", State::NoAuth)
        .start();
    let b = lab.member("b").provider("claude", State::NoAuth).start();
    server.serve_member(&a);
    server.serve_member(&b);
    let s = login(
        &lab,
        &server,
        &["claude", "gemini"],
        Operator::Approve,
        None,
    );
    assert_eq!(s.status, Some(0), "{}\n{}", s.stdout, s.stderr);
    for (m, p) in [("a", "claude"), ("a", "gemini"), ("b", "claude")] {
        assert_eq!(s.verified(m, p)["state"], "ready", "{m}/{p}: {}", s.stdout);
        let waiting = s.of("waiting", m, p);
        assert!(
            waiting[0]["detail"]
                .as_str()
                .unwrap()
                .contains("code shown after authorising")
        );
    }
    // Each login had its own code, and the server took each only with its own state: a code
    // written to another member's pty would have been refused.
    let codes: Vec<String> = server
        .state
        .lock()
        .unwrap()
        .pastes
        .iter()
        .map(|p| {
            assert!(p.used, "a login's code was never exchanged");
            p.code.clone()
        })
        .collect();
    assert_eq!(codes.len(), 3);
    s.assert_no_secret(&server.all_secrets());
    // Never in a command line on the members, nor in the stubs' call logs.
    for m in [&a, &b] {
        let logged = format!("{:?}{:?}", m.commands_log(), m.calls_log());
        for c in &codes {
            assert!(
                !logged.contains(c.as_str()),
                "a pasted code reached a command line"
            );
        }
        assert!(nothing_left_running(m));
    }
}

#[test]
fn a_login_past_its_deadline_leaves_nothing_running() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let m = lab.member("m1").provider("codex", State::NoAuth).start();
    server.serve_member(&m);
    let s = login(
        &lab,
        &server,
        &["codex", "--deadline", "4s"],
        Operator::Ignore,
        None,
    );
    assert_eq!(s.status, Some(1));
    let failed = s.of("failed", "m1", "codex");
    assert_eq!(
        failed[0]["detail"],
        "not approved within the login deadline (4s)"
    );
    assert!(nothing_left_running(&m), "the codex login still runs");
}

#[test]
fn ctrl_c_ends_every_remote_login() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let a = lab.member("a").provider("codex", State::NoAuth).start();
    let b = lab.member("b").provider("claude", State::NoAuth).start();
    server.serve_member(&a);
    server.serve_member(&b);
    let s = login(
        &lab,
        &server,
        &["codex", "claude"],
        Operator::Ignore,
        Some(2),
    );
    assert_eq!(s.status, Some(130), "{}\n{}", s.stdout, s.stderr);
    assert_eq!(s.of("failed", "a", "codex")[0]["detail"], "interrupted");
    assert_eq!(s.of("failed", "b", "claude")[0]["detail"], "interrupted");
    assert!(
        nothing_left_running(&a),
        "the codex login (no pty) still runs"
    );
    assert!(
        nothing_left_running(&b),
        "the claude login (pty) still runs"
    );
}

#[test]
fn an_expired_device_code_is_renewed() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let m = lab.member("m1").provider("copilot", State::NoAuth).start();
    server.serve_member(&m);
    server.codes_expire_after(Duration::from_secs(3));
    let s = login(&lab, &server, &["copilot"], Operator::ApproveRenewed, None);
    assert_eq!(s.status, Some(0), "{}\n{}", s.stdout, s.stderr);
    assert_eq!(s.of("renewed", "m1", "copilot").len(), 1, "{}", s.stdout);
    let codes = s.of("code", "m1", "copilot");
    assert_eq!(codes.len(), 2);
    assert_ne!(codes[0]["code"], codes[1]["code"]);
    assert_eq!(s.verified("m1", "copilot")["state"], "ready");
}

#[test]
fn a_provider_without_a_login_flow_is_refused_before_any_member_is_contacted() {
    let lab = Lab::new();
    let m = lab.member("m1").provider("agy", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&["login", "-i", inv.to_str().unwrap(), "agy"]);
    out.assert_exit(2);
    assert!(
        out.stderr.contains("agy has no login flow"),
        "{}",
        out.stderr
    );
    assert!(m.commands_log().is_empty());
}

#[test]
fn without_input_a_paste_back_login_fails_and_the_rows_say_why() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let m = lab
        .member("m1")
        .provider("claude", State::NoAuth)
        .provider("codex", State::OauthValid)
        .start();
    server.serve_member(&m);
    let inv = lab.inventory("");
    let out = lab.fleetauth(&[
        "login",
        "-i",
        inv.to_str().unwrap(),
        "--no-input",
        "--format",
        "json",
        "claude",
        "codex",
    ]);
    out.assert_exit(1);
    let claude = out.row("m1", "claude");
    assert_eq!(claude["state"], "needs_auth");
    assert!(
        claude["detail"]
            .as_str()
            .unwrap()
            .starts_with("login failed: no code was pasted (stdin ended, or --no-input)"),
        "{claude}"
    );
    // A provider that is already ready is left alone.
    assert_eq!(out.row("m1", "codex")["state"], "ready");
    assert!(
        out.stderr.contains("m1 codex: skipped already ready"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("m1 claude: open https://claude.ai/oauth/authorize?")
    );
    assert!(nothing_left_running(&m));
}

#[test]
fn a_code_is_renewed_before_its_lifetime_runs_out() {
    let lab = Lab::new();
    let server = AuthServer::start();
    let m = lab.member("m1").provider("copilot", State::NoAuth).start();
    server.serve_member(&m);
    // The shipped definition with a 3-second code lifetime (the vendor's is 15 minutes).
    let dir = lab.dir().join("short-codes");
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("providers/copilot.toml"),
    )
    .unwrap();
    assert!(shipped.contains("code_lifetime = \"15m\""));
    std::fs::write(
        dir.join("copilot.toml"),
        shipped.replace("code_lifetime = \"15m\"", "code_lifetime = \"3s\""),
    )
    .unwrap();
    let s = login(
        &lab,
        &server,
        &["--providers-dir", dir.to_str().unwrap(), "copilot"],
        Operator::ApproveRenewed,
        None,
    );
    assert_eq!(s.status, Some(0), "{}\n{}", s.stdout, s.stderr);
    let renewed = s.of("renewed", "m1", "copilot");
    assert_eq!(renewed.len(), 1, "{}", s.stdout);
    assert_eq!(
        renewed[0]["detail"],
        "the code's lifetime ran out; new code (renewal 1)"
    );
    assert_eq!(s.verified("m1", "copilot")["state"], "ready");
    assert!(nothing_left_running(&m));
}
