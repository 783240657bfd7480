//! The russh transport against real OpenSSH `sshd` processes on loopback.
//!
//! Each test starts its own sshd (own host key, own authorized key, own HOME, on a unique
//! 127.x.y.z address) through the small [`Sshd`] helper below, so tests run in parallel and a
//! failure leaves nothing behind. Needs root (sshd's privilege separation) and openssh-server.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetauth::inventory::{HostKeyChecking, Member};
use fleetauth::ssh::{Input, RusshTransport, Session, SshError, Transport, TransportOptions};
use secrecy::SecretSlice;

const PORT: u16 = 2222;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "fleetauth-t-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A loopback address no other test (in this or a parallel test process) uses.
fn unique_ip() -> String {
    let pid = std::process::id();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("127.{}.{}.{}", (pid >> 8) & 0xff, pid & 0xff, 1 + n % 253)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn keygen(path: &Path, kind: &str, passphrase: &str) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", passphrase, "-C", "", "-f"])
        .arg(path));
}

/// The OpenSSH fingerprint of a public key file, as `ssh-keygen -l` prints it.
fn fingerprint(pub_path: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(pub_path));
    out.split_whitespace().nth(1).unwrap().to_string()
}

fn public_key(path: &Path) -> String {
    fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// One OpenSSH server with its own host key(s), client key, HOME and command log.
struct Sshd {
    child: Child,
    dir: Scratch,
    ip: String,
    /// The client key authorized on this server (unencrypted unless started otherwise).
    client_key: PathBuf,
    host_key: PathBuf,
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with("", &[])
    }

    /// `passphrase` encrypts the client key; `extra_host_keys` are key types ("ecdsa", "rsa")
    /// offered in addition to ed25519.
    fn start_with(passphrase: &str, extra_host_keys: &[&str]) -> Sshd {
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = Scratch::new("sshd");
        let d = dir.0.clone();
        let ip = unique_ip();
        let host_key = d.join("host_ed25519");
        keygen(&host_key, "ed25519", "");
        let mut host_keys = format!("HostKey {}\n", host_key.display());
        for kind in extra_host_keys {
            let path = d.join(format!("host_{kind}"));
            keygen(&path, kind, "");
            host_keys.push_str(&format!("HostKey {}\n", path.display()));
        }
        let client_key = d.join("id_ed25519");
        keygen(&client_key, "ed25519", passphrase);
        fs::write(
            d.join("authorized_keys"),
            format!("{}\n", public_key(&client_key)),
        )
        .unwrap();
        fs::create_dir_all(d.join("home")).unwrap();
        // Records every command line the member was asked to run, then runs it.
        let wrapper = d.join("wrapper.sh");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> {}\ncd \"$HOME\"\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
                d.join("commands.log").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress {ip}:{PORT}\n{host_keys}PidFile {pid}\nAuthorizedKeysFile {auth}\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nSetEnv HOME={home}\nForceCommand {wrapper}\n\
                 LogLevel VERBOSE\n",
                pid = d.join("sshd.pid").display(),
                auth = d.join("authorized_keys").display(),
                home = d.join("home").display(),
                wrapper = wrapper.display(),
            ),
        )
        .unwrap();
        let log = fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start /usr/sbin/sshd (apt-get install openssh-server)");
        let mut sshd = Sshd {
            child,
            dir,
            ip,
            client_key,
            host_key,
        };
        sshd.wait_until_listening();
        sshd
    }

    fn wait_until_listening(&mut self) {
        let addr: SocketAddr = format!("{}:{PORT}", self.ip).parse().unwrap();
        let start = Instant::now();
        while StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}): {}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd not listening: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn commands(&self) -> String {
        fs::read_to_string(self.path("commands.log")).unwrap_or_default()
    }

    fn host_fingerprint(&self) -> String {
        fingerprint(&self.host_key.with_extension("pub"))
    }

    /// A known_hosts line trusting this server's ed25519 host key.
    fn known_hosts_line(&self) -> String {
        format!("[{}]:{PORT} {}", self.ip, public_key(&self.host_key))
    }

    /// A known_hosts file (in the test's directory) with the given content.
    fn known_hosts(&self, content: &str) -> PathBuf {
        let path = self.path(&format!(
            "known_hosts_{}",
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        fs::write(&path, content).unwrap();
        path
    }

    /// A member that trusts this server's host key and logs in with its client key.
    fn member(&self) -> Member {
        let known_hosts = self.known_hosts(&format!("{}\n", self.known_hosts_line()));
        Member {
            name: format!("m-{}", self.ip),
            host: self.ip.clone(),
            port: PORT,
            user: whoami(),
            identity_file: Some(self.client_key.clone()),
            known_hosts,
            host_key_checking: HostKeyChecking::Strict,
            env_file: "~/.config/fleetauth/env".to_string(),
            providers: vec![],
            tags: vec![],
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            probe_timeout: None,
            auth_mode: BTreeMap::new(),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn whoami() -> String {
    run(Command::new("id").arg("-un")).trim().to_string()
}

/// Options that never touch the machine's global known_hosts or the caller's ssh-agent.
fn options() -> TransportOptions {
    TransportOptions {
        global_known_hosts: None,
        agent_socket: None,
        ..TransportOptions::default()
    }
}

fn transport(members: &[&Member]) -> RusshTransport {
    RusshTransport::new(members, options()).unwrap()
}

async fn connect(member: &Member) -> Result<Box<dyn Session>, SshError> {
    transport(&[member]).connect(member).await
}

fn connect_err(result: Result<Box<dyn Session>, SshError>) -> SshError {
    match result {
        Ok(_) => panic!("connected, expected an error"),
        Err(e) => e,
    }
}

const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn exec_returns_stdout_stderr_and_exit_status() {
    let sshd = Sshd::start();
    let session = connect(&sshd.member()).await.unwrap();
    let out = session
        .exec("printf out; printf err >&2; exit 3", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out");
    assert_eq!(out.stderr, b"err");
    assert_eq!(out.exit, Some(3));
    assert_eq!(out.signal, None);
    let home = session
        .exec("printf %s \"$HOME\"", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        home.stdout,
        sshd.path("home").display().to_string().as_bytes()
    );
    session.close().await;
}

#[tokio::test]
async fn a_killed_command_reports_its_signal() {
    let sshd = Sshd::start();
    let session = connect(&sshd.member()).await.unwrap();
    let out = session
        .exec("kill -KILL $$", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.exit, None);
    assert_eq!(out.signal.as_deref(), Some("KILL"));
}

/// Collects formatted log lines for inspection.
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secret_stdin_is_delivered_and_never_on_the_command_line() {
    // Capture everything fleetauth logs on this thread (the current-thread runtime runs
    // russh's tasks here too), down to trace level.
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || LogBuf(logs.clone())
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sshd = Sshd::start();
    let session = connect(&sshd.member()).await.unwrap();
    let secret = format!("sk-test-{}-do-not-leak", std::process::id());
    let secret_bytes: SecretSlice<u8> = secret.as_bytes().to_vec().into();
    let out = session
        .exec(
            "umask 077; cat > \"$HOME/key\" && wc -c < \"$HOME/key\"",
            Input::Secret(&secret_bytes),
            DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(
        out.exit,
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        secret.len().to_string()
    );
    assert_eq!(fs::read_to_string(sshd.path("home/key")).unwrap(), secret);
    let commands = sshd.commands();
    assert!(commands.contains("cat > \"$HOME/key\""), "{commands}");
    assert!(
        !commands.contains(&secret),
        "secret leaked into the command line"
    );
    assert!(!sshd.log().contains(&secret));
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("key exchange done"),
        "log capture is not working: {logs}"
    );
    assert!(logs.contains("cat > \"$HOME/key\""), "{logs}");
    assert!(!logs.contains(&secret), "secret leaked into the logs");
}

#[tokio::test]
async fn plain_stdin_and_large_output_both_flow() {
    let sshd = Sshd::start();
    let session = connect(&sshd.member()).await.unwrap();
    // 3 MiB in and out at once: stdout must be drained while stdin is still being written.
    let input: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let out = session
        .exec("cat", Input::Plain(&input), DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.exit, Some(0));
    assert!(out.stdout == input, "echoed {} bytes", out.stdout.len());
}

#[tokio::test]
async fn output_beyond_the_cap_is_dropped() {
    let sshd = Sshd::start();
    let session = connect(&sshd.member()).await.unwrap();
    let out = session
        .exec("head -c 6000000 /dev/zero", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.exit, Some(0));
    assert_eq!(out.stdout.len(), fleetauth::ssh::client::OUTPUT_CAP);
}

#[tokio::test]
async fn command_deadline_times_out_quickly_and_the_session_survives() {
    let sshd = Sshd::start();
    let session = connect(&sshd.member()).await.unwrap();
    let start = Instant::now();
    let err = session
        .exec("sleep 30", Input::None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SshError::Timeout { phase: "command", after } if after == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let out = session
        .exec("echo still here", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"still here\n");
}

#[tokio::test]
async fn commands_run_concurrently_on_one_session() {
    let sshd = Sshd::start();
    let session = connect(&sshd.member()).await.unwrap();
    let start = Instant::now();
    let runs = (0..5).map(|i| {
        let session = &session;
        async move {
            session
                .exec(&format!("sleep 1; echo {i}"), Input::None, DEADLINE)
                .await
        }
    });
    let outs = futures::future::join_all(runs).await;
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.unwrap().stdout, format!("{i}\n").as_bytes());
    }
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn connection_refused() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    // A port that was just free on this address.
    let listener = StdListener::bind((member.host.as_str(), 0)).unwrap();
    member.port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = connect_err(connect(&member).await);
    assert!(matches!(err, SshError::Refused(_)), "{err:?}");
    assert_eq!(err.class(), "refused");
}

#[tokio::test]
async fn a_listener_that_never_speaks_times_out_within_connect_timeout() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    // The kernel completes the TCP handshake for the backlog; nothing ever answers.
    let listener = StdListener::bind((member.host.as_str(), 0)).unwrap();
    member.port = listener.local_addr().unwrap().port();
    member.connect_timeout = Duration::from_secs(1);
    let start = Instant::now();
    let err = connect_err(connect(&member).await);
    assert!(
        matches!(err, SshError::Timeout { phase: "connect", after } if after == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(2000),
        "{:?}",
        start.elapsed()
    );
    drop(listener);
}

#[tokio::test]
async fn unknown_host_key_is_refused_under_strict() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    member.known_hosts = sshd.path("absent_known_hosts");
    let err = connect_err(connect(&member).await);
    match err {
        SshError::HostKeyUnknown { host, fingerprint } => {
            assert_eq!(host, format!("[{}]:{PORT}", sshd.ip));
            assert_eq!(fingerprint, sshd.host_fingerprint());
        }
        other => panic!("expected HostKeyUnknown, got {other:?}"),
    }
    assert!(
        !member.known_hosts.exists(),
        "strict must not write known_hosts"
    );
}

#[tokio::test]
async fn changed_host_key_is_refused_with_both_fingerprints() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    let other = sshd.path("other_host_key");
    keygen(&other, "ed25519", "");
    member.known_hosts =
        sshd.known_hosts(&format!("[{}]:{PORT} {}\n", sshd.ip, public_key(&other)));
    for mode in [HostKeyChecking::Strict, HostKeyChecking::AcceptNew] {
        member.host_key_checking = mode;
        let err = connect_err(connect(&member).await);
        match &err {
            SshError::HostKeyChanged {
                host,
                expected,
                got,
            } => {
                assert_eq!(host, &format!("[{}]:{PORT}", sshd.ip));
                assert_eq!(expected, &fingerprint(&other.with_extension("pub")));
                assert_eq!(got, &sshd.host_fingerprint());
                assert!(expected.starts_with("SHA256:") && got.starts_with("SHA256:"));
            }
            other => panic!("{mode:?}: expected HostKeyChanged, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&sshd.host_fingerprint()), "{text}");
    }
}

#[tokio::test]
async fn revoked_host_key_is_refused_even_with_checking_off() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    member.known_hosts = sshd.known_hosts(&format!(
        "{}\n@revoked * {}\n",
        sshd.known_hosts_line(),
        public_key(&sshd.host_key)
    ));
    for mode in [HostKeyChecking::Strict, HostKeyChecking::Off] {
        member.host_key_checking = mode;
        let err = connect_err(connect(&member).await);
        assert!(
            matches!(&err, SshError::HostKeyRevoked { fingerprint, .. } if *fingerprint == sshd.host_fingerprint()),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn accept_new_records_the_key_and_later_connections_trust_it() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    member.known_hosts = sshd.path("ssh/known_hosts");
    member.host_key_checking = HostKeyChecking::AcceptNew;
    let transport = transport(&[&member]);
    transport.connect(&member).await.unwrap().close().await;

    let text = fs::read_to_string(&member.known_hosts).unwrap();
    assert_eq!(text, format!("{}\n", sshd.known_hosts_line()));
    let mode = fs::metadata(&member.known_hosts)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // Visible to the same run at once, and to the next run from the file.
    let mut strict = member.clone();
    strict.host_key_checking = HostKeyChecking::Strict;
    transport.connect(&strict).await.unwrap().close().await;
    connect(&strict).await.unwrap().close().await;
    // Nothing appended twice.
    assert_eq!(fs::read_to_string(&member.known_hosts).unwrap(), text);
}

#[tokio::test]
async fn checking_off_accepts_an_unknown_key() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    member.known_hosts = sshd.path("absent_known_hosts");
    member.host_key_checking = HostKeyChecking::Off;
    let session = connect(&member).await.unwrap();
    let out = session.exec("true", Input::None, DEADLINE).await.unwrap();
    assert_eq!(out.exit, Some(0));
    assert!(
        !member.known_hosts.exists(),
        "off must not write known_hosts"
    );
}

#[tokio::test]
async fn a_hashed_known_hosts_entry_verifies() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    let path = member.known_hosts.clone();
    run(Command::new("ssh-keygen")
        .args(["-q", "-H", "-f"])
        .arg(&path));
    assert!(fs::read_to_string(&path).unwrap().starts_with("|1|"));
    member.known_hosts = path;
    connect(&member).await.unwrap().close().await;
}

#[tokio::test]
async fn a_member_known_only_by_its_ecdsa_key_is_asked_for_that_key() {
    let sshd = Sshd::start_with("", &["ecdsa"]);
    let mut member = sshd.member();
    member.known_hosts = sshd.known_hosts(&format!(
        "[{}]:{PORT} {}\n",
        sshd.ip,
        public_key(&sshd.path("host_ecdsa"))
    ));
    connect(&member).await.unwrap().close().await;
}

#[tokio::test]
async fn a_key_the_member_does_not_authorize_is_an_auth_error() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    let stranger = sshd.path("stranger");
    keygen(&stranger, "ed25519", "");
    member.identity_file = Some(stranger.clone());
    let err = connect_err(connect(&member).await);
    assert!(matches!(err, SshError::Auth(_)), "{err:?}");
    assert!(
        err.to_string().contains(&stranger.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn encrypted_identity_without_passphrase_is_a_setup_error() {
    let sshd = Sshd::start_with("open sesame", &[]);
    let member = sshd.member();
    let err = RusshTransport::new(
        &[&member],
        TransportOptions {
            passphrase_env: format!("FLEETAUTH_TEST_UNSET_{}", std::process::id()),
            ..options()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("is encrypted"), "{err}");
    assert!(
        err.to_string()
            .contains(&sshd.client_key.display().to_string()),
        "{err}"
    );
}

/// Environment variables are process-global, so the body runs in a child test process that
/// has FLEETAUTH_SSH_PASSPHRASE set; it prints a marker only when it really connected.
#[test]
fn encrypted_identity_is_decrypted_with_fleetauth_ssh_passphrase() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "encrypted_identity_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLEETAUTH_SSH_PASSPHRASE", "open sesame")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ENCRYPTED-IDENTITY-CONNECTED"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "run by encrypted_identity_is_decrypted_with_fleetauth_ssh_passphrase"]
async fn encrypted_identity_child() {
    assert_eq!(
        std::env::var("FLEETAUTH_SSH_PASSPHRASE").as_deref(),
        Ok("open sesame"),
        "run through encrypted_identity_is_decrypted_with_fleetauth_ssh_passphrase"
    );
    let sshd = Sshd::start_with("open sesame", &[]);
    let member = sshd.member();
    let session = connect(&member).await.unwrap();
    let out = session
        .exec("echo ok", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");
    // The wrong passphrase is reported as such.
    let wrong = RusshTransport::new(
        &[&member],
        TransportOptions {
            passphrase_env: "PATH".to_string(),
            ..options()
        },
    )
    .unwrap_err();
    assert!(wrong.to_string().contains("does not decrypt"), "{wrong}");
    println!("ENCRYPTED-IDENTITY-CONNECTED");
}

/// An `ssh-agent -D` on its own socket, killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It prints its environment once the socket is ready.
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("SSH_AUTH_SOCK"), "{first}");
        Agent { child, socket }
    }

    fn add(&self, key: &Path) {
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null()));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn ssh_agent_keys_are_tried_until_one_is_accepted() {
    let sshd = Sshd::start();
    let agent = Agent::start(&sshd.dir.0);
    // A key the member does not know first, then the authorized one.
    let stranger = sshd.path("stranger");
    keygen(&stranger, "ed25519", "");
    agent.add(&stranger);
    agent.add(&sshd.client_key);

    let mut member = sshd.member();
    member.identity_file = None;
    let transport = RusshTransport::new(
        &[&member],
        TransportOptions {
            agent_socket: Some(agent.socket.clone()),
            ..options()
        },
    )
    .unwrap();
    let session = transport.connect(&member).await.unwrap();
    let out = session
        .exec("echo agent", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"agent\n");
}

#[tokio::test]
async fn no_identity_file_and_no_agent_is_a_clear_auth_error() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    member.identity_file = None;
    let err = connect_err(connect(&member).await);
    assert!(matches!(err, SshError::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("SSH_AUTH_SOCK"), "{err}");
}

/// A TCP front for `sshd` that hangs up on the first `drops` connections without a byte, as
/// sshd's MaxStartups throttling does, then relays the rest.
async fn throttling_proxy(ip: &str, upstream: SocketAddr, drops: usize) -> u16 {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            seen += 1;
            if seen <= drops {
                drop(client);
                continue;
            }
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn connections_closed_before_the_banner_are_retried() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    let upstream: SocketAddr = format!("{}:{PORT}", sshd.ip).parse().unwrap();
    member.port = throttling_proxy(&sshd.ip, upstream, 3).await;
    // The key is recorded for the real port; the proxy listens on another one.
    member.host_key_checking = HostKeyChecking::Off;
    let session = connect(&member).await.unwrap();
    let out = session
        .exec("echo through", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"through\n");
}

#[tokio::test]
async fn a_port_that_always_hangs_up_fails_as_network_before_the_deadline() {
    let sshd = Sshd::start();
    let mut member = sshd.member();
    let upstream: SocketAddr = format!("{}:{PORT}", sshd.ip).parse().unwrap();
    member.port = throttling_proxy(&sshd.ip, upstream, usize::MAX).await;
    member.connect_timeout = Duration::from_secs(2);
    let start = Instant::now();
    let err = connect_err(connect(&member).await);
    assert!(
        matches!(&err, SshError::Network(m) if m.contains("before the SSH banner")),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() > Duration::from_millis(300),
        "gave up without retrying"
    );
}

#[test]
fn sshd_helper_gives_each_server_its_own_address() {
    let a = Sshd::start();
    let b = Sshd::start();
    assert_ne!(a.ip, b.ip);
    let mut banner = [0u8; 4];
    StdStream::connect((b.ip.as_str(), PORT))
        .unwrap()
        .read_exact(&mut banner)
        .unwrap();
    assert_eq!(&banner, b"SSH-");
}
