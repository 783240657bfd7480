//! The russh transport against real OpenSSH `sshd` members on loopback.
//!
//! Each test builds its own [`Lab`] from the shared test fleet (tests/support): a real `sshd`
//! per member on its own `127.x.y.z`, with its own host key and HOME, the lab's client key
//! authorized and its host key in the lab's known_hosts, and a `ForceCommand` log of every
//! command line. Tests run in parallel and a failure leaves nothing behind. Needs root (sshd's
//! privilege separation) and openssh-server.
//!
//! Unlike the sweep and provision tests, these drive [`RusshTransport`] directly, not the
//! fleetauth binary: [`target`] turns a lab member into the inventory entry the transport takes.
//! Members listen on [`PORT`], not 22, so every host key check here goes through the bracketed
//! `[addr]:port` known_hosts form (the sweep tests cover port 22).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetauth::inventory::{self, HostKeyChecking};
use fleetauth::ssh::{Input, RusshTransport, Session, SshError, Transport, TransportOptions};
use secrecy::SecretSlice;
use support::{Lab, Member};

const PORT: u16 = 2222;

const DEADLINE: Duration = Duration::from_secs(20);

/// A lab with one member listening on [`PORT`].
fn lab_with_member() -> (Lab, Member) {
    let lab = Lab::new();
    let member = lab.member("m").port(PORT).start();
    (lab, member)
}

/// The inventory entry reaching `addr:port` as the lab's operator: the lab's user, client key
/// and known_hosts, strict host key checking.
fn target_at(lab: &Lab, name: &str, addr: Ipv4Addr, port: u16) -> inventory::Member {
    inventory::Member {
        name: name.to_string(),
        ssh: fleetauth::ssh::Target {
            name: name.to_string(),
            host: addr.to_string(),
            port,
            user: lab.user().to_string(),
            identities: vec![lab.identity()],
            known_hosts: lab.known_hosts(),
            host_key_checking: HostKeyChecking::Strict,
            connect_timeout: Duration::from_secs(10),
            ..Default::default()
        },
        env_file: "~/.config/fleetauth/env".to_string(),
        providers: vec![],
        tags: vec![],
        command_timeout: Duration::from_secs(30),
        probe_timeout: None,
        auth_mode: BTreeMap::new(),
    }
}

/// [`target_at`] a lab member.
fn target(lab: &Lab, member: &Member) -> inventory::Member {
    target_at(lab, member.name(), member.addr(), member.port())
}

/// Options that never touch the machine's global known_hosts or the caller's ssh-agent.
fn options() -> TransportOptions {
    TransportOptions {
        global_known_hosts: None,
        agent_socket: None,
        ..TransportOptions::default()
    }
}

fn transport(members: &[&inventory::Member]) -> RusshTransport {
    let targets: Vec<_> = members.iter().map(|m| m.target()).collect();
    RusshTransport::new(&targets, options()).unwrap()
}

async fn connect(member: &inventory::Member) -> Result<Box<dyn Session>, SshError> {
    transport(&[member]).connect(&member.target()).await
}

/// `echo TEXT` on `session` prints TEXT: the session really runs commands.
async fn assert_echo(session: &dyn Session, text: &str) {
    let out = session
        .exec(&format!("echo {text}"), Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.stdout, format!("{text}\n").as_bytes());
}

fn connect_err(result: Result<Box<dyn Session>, SshError>) -> SshError {
    match result {
        Ok(_) => panic!("connected, expected an error"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn exec_returns_stdout_stderr_and_exit_status() {
    let (lab, m) = lab_with_member();
    let session = connect(&target(&lab, &m)).await.unwrap();
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
    assert_eq!(home.stdout, m.home().display().to_string().as_bytes());
    session.close().await;
}

#[tokio::test]
async fn a_killed_command_reports_its_signal() {
    let (lab, m) = lab_with_member();
    let session = connect(&target(&lab, &m)).await.unwrap();
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

/// tracing caches each log site's interest process-wide: another test thread that hits a site
/// first, with no subscriber, can make it skip this test's scoped subscriber. So the body runs
/// alone in a child test process; it prints a marker only when every assertion held.
#[test]
fn secret_stdin_is_delivered_and_never_on_the_command_line() {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args([
        "--exact",
        "secret_stdin_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    let out = support::capture(child, None, Duration::from_secs(120));
    assert!(
        out.code == Some(0) && out.stdout.contains("SECRET-STDIN-CHECKED"),
        "child failed:\n{out}"
    );
}

#[tokio::test]
#[ignore = "run by secret_stdin_is_delivered_and_never_on_the_command_line"]
async fn secret_stdin_child() {
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

    let (lab, m) = lab_with_member();
    let session = connect(&target(&lab, &m)).await.unwrap();
    let secret = format!("sk-test-{}-do-not-leak", support::fake::alnum(24));
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
    assert_eq!(fs::read_to_string(m.home().join("key")).unwrap(), secret);
    let commands = m.commands_log().join("\n");
    assert!(commands.contains("cat > \"$HOME/key\""), "{commands}");
    assert!(
        !commands.contains(&secret),
        "secret leaked into the command line"
    );
    assert!(!m.sshd_log().contains(&secret));
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("key exchange done"),
        "log capture is not working: {logs}"
    );
    assert!(logs.contains("cat > \"$HOME/key\""), "{logs}");
    assert!(!logs.contains(&secret), "secret leaked into the logs");
    println!("SECRET-STDIN-CHECKED");
}

#[tokio::test]
async fn plain_stdin_and_large_output_both_flow() {
    let (lab, m) = lab_with_member();
    let session = connect(&target(&lab, &m)).await.unwrap();
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
    let (lab, m) = lab_with_member();
    let session = connect(&target(&lab, &m)).await.unwrap();
    let out = session
        .exec("head -c 6000000 /dev/zero", Input::None, DEADLINE)
        .await
        .unwrap();
    assert_eq!(out.exit, Some(0));
    assert_eq!(out.stdout.len(), fleetauth::ssh::OUTPUT_CAP);
}

#[tokio::test]
async fn command_deadline_times_out_quickly_and_the_session_survives() {
    let (lab, m) = lab_with_member();
    let session = connect(&target(&lab, &m)).await.unwrap();
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
    assert_echo(session.as_ref(), "still here").await;
}

#[tokio::test]
async fn commands_run_concurrently_on_one_session() {
    let (lab, m) = lab_with_member();
    let session = connect(&target(&lab, &m)).await.unwrap();
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
    let lab = Lab::new();
    // A reserved address where nothing listens.
    let down = lab.down_member("down");
    let member = target_at(&lab, down.name(), down.addr(), down.port());
    let err = connect_err(connect(&member).await);
    assert!(matches!(err, SshError::Refused(_)), "{err:?}");
    assert_eq!(err.reason(), fleetauth::row::Reason::Refused);
}

#[tokio::test]
async fn a_listener_that_never_speaks_times_out_within_connect_timeout() {
    let lab = Lab::new();
    // The TCP handshake completes; nothing ever answers.
    let silent = lab.silent_member("silent");
    let mut member = target_at(&lab, silent.name(), silent.addr(), silent.port());
    member.ssh.connect_timeout = Duration::from_secs(1);
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
}

#[tokio::test]
async fn unknown_host_key_is_refused_under_strict() {
    let (lab, m) = lab_with_member();
    let mut member = target(&lab, &m);
    member.ssh.known_hosts = lab.dir().join("absent_known_hosts");
    let err = connect_err(connect(&member).await);
    match err {
        SshError::HostKeyUnknown {
            host, fingerprint, ..
        } => {
            assert_eq!(host, format!("[{}]:{PORT}", m.addr()));
            assert_eq!(fingerprint, m.host_key_fingerprint());
            assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
        }
        other => panic!("expected HostKeyUnknown, got {other:?}"),
    }
    assert!(
        !member.ssh.known_hosts.exists(),
        "strict must not write known_hosts"
    );
}

#[tokio::test]
async fn changed_host_key_is_refused_with_both_fingerprints() {
    let (lab, m) = lab_with_member();
    let member = target(&lab, &m);
    // The lab's known_hosts keeps the old key.
    let recorded = m.host_key_fingerprint();
    m.restart_with_new_host_key();
    let offered = m.host_key_fingerprint();
    assert_ne!(recorded, offered);
    for mode in [HostKeyChecking::Strict, HostKeyChecking::AcceptNew] {
        let mut member = member.clone();
        member.ssh.host_key_checking = mode;
        let err = connect_err(connect(&member).await);
        match &err {
            SshError::HostKeyChanged {
                host,
                expected,
                got,
                file,
                line,
            } => {
                assert_eq!(host, &format!("[{}]:{PORT}", m.addr()));
                assert_eq!(expected, &recorded);
                assert_eq!(got, &offered);
                assert!(expected.starts_with("SHA256:") && got.starts_with("SHA256:"));
                assert_eq!(file, &member.ssh.known_hosts);
                assert!(*line >= 1);
            }
            other => panic!("{mode:?}: expected HostKeyChanged, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&offered), "{text}");
        // The remedy edits the file that holds the old key — the inventory's known_hosts,
        // not ~/.ssh/known_hosts.
        let remedy = format!(
            "`ssh-keygen -R '[{}]:{PORT}' -f {}`",
            m.addr(),
            member.ssh.known_hosts.display()
        );
        assert!(text.contains(&remedy), "{text}");
    }
}

#[tokio::test]
async fn revoked_host_key_is_refused_even_with_checking_off() {
    let (lab, m) = lab_with_member();
    let mut member = target(&lab, &m);
    let key = m.host_public_key();
    member.ssh.known_hosts = lab.dir().join("revoking_known_hosts");
    fs::write(
        &member.ssh.known_hosts,
        format!("[{}]:{PORT} {key}\n@revoked * {key}\n", m.addr()),
    )
    .unwrap();
    for mode in [HostKeyChecking::Strict, HostKeyChecking::Off] {
        member.ssh.host_key_checking = mode;
        let err = connect_err(connect(&member).await);
        assert!(
            matches!(&err, SshError::HostKeyRevoked { fingerprint, .. } if *fingerprint == m.host_key_fingerprint()),
            "{mode:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn accept_new_records_the_key_and_later_connections_trust_it() {
    let (lab, m) = lab_with_member();
    let mut member = target(&lab, &m);
    member.ssh.known_hosts = lab.dir().join("ssh/known_hosts");
    member.ssh.host_key_checking = HostKeyChecking::AcceptNew;
    let transport = transport(&[&member]);
    transport
        .connect(&member.target())
        .await
        .unwrap()
        .close()
        .await;

    let text = fs::read_to_string(&member.ssh.known_hosts).unwrap();
    assert_eq!(
        text,
        format!("[{}]:{PORT} {}\n", m.addr(), m.host_public_key())
    );
    let mode = fs::metadata(&member.ssh.known_hosts)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // Visible to the same run at once, and to the next run from the file.
    let mut strict = member.clone();
    strict.ssh.host_key_checking = HostKeyChecking::Strict;
    transport
        .connect(&strict.target())
        .await
        .unwrap()
        .close()
        .await;
    connect(&strict).await.unwrap().close().await;
    // Nothing appended twice.
    assert_eq!(fs::read_to_string(&member.ssh.known_hosts).unwrap(), text);
}

#[tokio::test]
async fn checking_off_accepts_an_unknown_key() {
    let (lab, m) = lab_with_member();
    let mut member = target(&lab, &m);
    member.ssh.known_hosts = lab.dir().join("absent_known_hosts");
    member.ssh.host_key_checking = HostKeyChecking::Off;
    let session = connect(&member).await.unwrap();
    let out = session.exec("true", Input::None, DEADLINE).await.unwrap();
    assert_eq!(out.exit, Some(0));
    assert!(
        !member.ssh.known_hosts.exists(),
        "off must not write known_hosts"
    );
}

#[tokio::test]
async fn a_hashed_known_hosts_entry_verifies() {
    let (lab, m) = lab_with_member();
    let member = target(&lab, &m);
    let mut hash = Command::new("ssh-keygen");
    hash.args(["-q", "-H", "-f"]).arg(&member.ssh.known_hosts);
    support::capture(hash, None, Duration::from_secs(30)).assert_exit(0);
    let text = fs::read_to_string(&member.ssh.known_hosts).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    assert!(!text.contains(&m.addr().to_string()), "{text}");
    connect(&member).await.unwrap().close().await;
}

#[tokio::test]
async fn a_member_known_only_by_its_ecdsa_key_is_asked_for_that_key() {
    let lab = Lab::new();
    // Offers ed25519 (which the client prefers) and ecdsa.
    let m = lab.member("m").port(PORT).extra_host_key("ecdsa").start();
    let mut member = target(&lab, &m);
    let ecdsa = m.host_public_key_of("ecdsa");
    assert!(ecdsa.starts_with("ecdsa-"), "{ecdsa}");
    member.ssh.known_hosts = lab.dir().join("ecdsa_known_hosts");
    fs::write(
        &member.ssh.known_hosts,
        format!("[{}]:{PORT} {ecdsa}\n", m.addr()),
    )
    .unwrap();
    connect(&member).await.unwrap().close().await;
}

#[tokio::test]
async fn a_key_the_member_does_not_authorize_is_an_auth_error() {
    let (lab, m) = lab_with_member();
    let mut member = target(&lab, &m);
    let stranger = lab.unauthorized_identity();
    member.ssh.identities = vec![stranger.clone()];
    let err = connect_err(connect(&member).await);
    assert!(matches!(err, SshError::Auth(_)), "{err:?}");
    assert!(
        err.to_string().contains(&stranger.display().to_string()),
        "{err}"
    );
}

/// A lab with one member, and the inventory entry reaching it with a client key encrypted with
/// "open sesame" (authorized on the member).
fn member_with_encrypted_identity() -> (Lab, inventory::Member) {
    let (lab, m) = lab_with_member();
    let mut member = target(&lab, &m);
    member.ssh.identities = vec![lab.extra_identity("id_encrypted", "open sesame")];
    (lab, member)
}

#[tokio::test]
async fn encrypted_identity_without_passphrase_is_a_setup_error() {
    let (_lab, member) = member_with_encrypted_identity();
    let err = RusshTransport::new(
        &[member.target()],
        TransportOptions {
            passphrase_env: format!("FLEETAUTH_TEST_UNSET_{}", std::process::id()),
            ..options()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("is encrypted"), "{err}");
    let key = &member.ssh.identities[0];
    assert!(
        err.to_string().contains(&key.display().to_string()),
        "{err}"
    );
}

/// Environment variables are process-global, so the body runs in a child test process that
/// has FLEETAUTH_SSH_PASSPHRASE set; it prints a marker only when it really connected.
#[test]
fn encrypted_identity_is_decrypted_with_fleetauth_ssh_passphrase() {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "encrypted_identity_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLEETAUTH_SSH_PASSPHRASE", "open sesame");
    let out = support::capture(child, None, Duration::from_secs(120));
    assert!(
        out.code == Some(0) && out.stdout.contains("ENCRYPTED-IDENTITY-CONNECTED"),
        "child failed:\n{out}"
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
    let (_lab, member) = member_with_encrypted_identity();
    let session = connect(&member).await.unwrap();
    assert_echo(session.as_ref(), "ok").await;
    // The wrong passphrase is reported as such.
    let wrong = RusshTransport::new(
        &[member.target()],
        TransportOptions {
            passphrase_env: "PATH".to_string(),
            ..options()
        },
    )
    .unwrap_err();
    assert!(wrong.to_string().contains("does not decrypt"), "{wrong}");
    println!("ENCRYPTED-IDENTITY-CONNECTED");
}

#[tokio::test]
async fn ssh_agent_keys_are_tried_until_one_is_accepted() {
    let (lab, m) = lab_with_member();
    // A key the member does not know first, then the authorized one.
    lab.with_agent_keys(&[&lab.unauthorized_identity(), &lab.identity()]);

    let mut member = target(&lab, &m);
    member.ssh.identities.clear();
    let transport = RusshTransport::new(
        &[member.target()],
        TransportOptions {
            agent_socket: lab.agent_socket(),
            ..options()
        },
    )
    .unwrap();
    let session = transport.connect(&member.target()).await.unwrap();
    assert_echo(session.as_ref(), "agent").await;
}

#[tokio::test]
async fn no_identity_file_and_no_agent_is_a_clear_auth_error() {
    let (lab, m) = lab_with_member();
    let mut member = target(&lab, &m);
    member.ssh.identities.clear();
    let err = connect_err(connect(&member).await);
    assert!(matches!(err, SshError::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("SSH_AUTH_SOCK"), "{err}");
}

/// A TCP front for `sshd` that hangs up on the first `drops` connections without a byte, as
/// sshd's MaxStartups throttling does, then relays the rest.
async fn throttling_proxy(addr: Ipv4Addr, upstream: SocketAddr, drops: usize) -> u16 {
    let listener = tokio::net::TcpListener::bind((addr, 0)).await.unwrap();
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

/// The inventory entry reaching `m` through a [`throttling_proxy`] that drops `drops`
/// connections first.
async fn behind_proxy(lab: &Lab, m: &Member, drops: usize) -> inventory::Member {
    let mut member = target(lab, m);
    let upstream = SocketAddr::from((m.addr(), m.port()));
    member.ssh.port = throttling_proxy(m.addr(), upstream, drops).await;
    member
}

#[tokio::test]
async fn connections_closed_before_the_banner_are_retried() {
    let (lab, m) = lab_with_member();
    let mut member = behind_proxy(&lab, &m, 3).await;
    // The key is recorded for the real port; the proxy listens on another one.
    member.ssh.host_key_checking = HostKeyChecking::Off;
    let session = connect(&member).await.unwrap();
    assert_echo(session.as_ref(), "through").await;
}

#[tokio::test]
async fn a_port_that_always_hangs_up_fails_as_network_before_the_deadline() {
    let (lab, m) = lab_with_member();
    let mut member = behind_proxy(&lab, &m, usize::MAX).await;
    member.ssh.connect_timeout = Duration::from_secs(2);
    let start = Instant::now();
    let err = connect_err(connect(&member).await);
    assert!(
        matches!(&err, SshError::Network(msg) if msg.contains("before the SSH banner")),
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

/// `-j 1`: a handshake stalled on the network (this listener sends its SSH banner, then nothing)
/// holds no slot, so another member's handshake proceeds at once instead of queueing behind it
/// until its deadline.
#[tokio::test]
async fn a_handshake_waiting_on_the_wire_holds_no_slot() {
    let (lab, m) = lab_with_member();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stall = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut socket, b"SSH-2.0-Stalled\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(socket);
    });
    let mut stalled = target_at(&lab, "stalled", Ipv4Addr::LOCALHOST, port);
    stalled.ssh.connect_timeout = Duration::from_secs(60);
    let real = target(&lab, &m);
    let one_handshake = TransportOptions {
        max_handshakes: Some(1),
        ..options()
    };
    connects_while_another_waits(&stalled, &real, one_handshake, "through").await;
    stall.abort();
}

/// Many members that are one sshd (accounts or ports of one shared host): their handshakes are
/// gated per sshd below `MaxStartups`' first drop, so none is dropped and retried.
#[tokio::test]
async fn members_of_one_sshd_stay_under_its_max_startups() {
    let lab = Lab::new();
    let m = lab
        .member("shared")
        .port(PORT)
        .sshd_option("MaxStartups 10")
        .sshd_option("LogLevel VERBOSE")
        .start();
    let members: Vec<inventory::Member> = (0..24)
        .map(|i| target_at(&lab, &format!("acct{i}"), m.addr(), m.port()))
        .collect();
    let targets: Vec<_> = members.iter().map(|m| m.target()).collect();
    let transport = std::sync::Arc::new(RusshTransport::new(&targets, options()).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for target in targets {
        let t = transport.clone();
        tasks.spawn(async move { t.connect(&target).await.map(|_session| ()) });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let log = m.sshd_log();
    assert!(log.contains("Accepted publickey"), "{log}");
    assert!(!log.contains("past MaxStartups"), "{log}");
}

/// A key in hand is signed at once, with no unsigned query first (vendor/russh/FLEETAUTH.md): sshd
/// logs a query it answers with `PK_OK` as "Postponed publickey".
#[tokio::test]
async fn a_key_is_signed_at_once_without_a_query() {
    let lab = Lab::new();
    let m = lab
        .member("direct")
        .port(PORT)
        .sshd_option("LogLevel VERBOSE")
        .start();
    let session = connect(&target(&lab, &m)).await.unwrap();
    assert_echo(session.as_ref(), "signed").await;
    let log = m.sshd_log();
    assert!(log.contains("Accepted publickey"), "{log}");
    assert!(!log.contains("Postponed publickey"), "{log}");
}

/// One session slot: a member that never sends its first byte lends its slot out after a
/// second, so another member connects long before the silent one's deadline.
#[tokio::test]
async fn a_silent_member_lends_its_session_slot_out() {
    let (lab, m) = lab_with_member();
    let silent = lab.silent_member("silent");
    let mut quiet = target_at(&lab, silent.name(), silent.addr(), silent.port());
    quiet.ssh.connect_timeout = Duration::from_secs(60);
    let real = target(&lab, &m);
    let one_session = TransportOptions {
        sessions: Some((1, 1)),
        ..options()
    };
    connects_while_another_waits(&quiet, &real, one_session, "lent").await;
}

/// With `options` limiting the transport to one slot: `waiting` connects first and is left
/// waiting on its member; `real` still connects (and echoes `text`) long before `waiting` gives
/// up, which is still waiting afterwards.
async fn connects_while_another_waits(
    waiting: &inventory::Member,
    real: &inventory::Member,
    opts: TransportOptions,
    text: &str,
) {
    let targets = [waiting.target(), real.target()];
    let transport = std::sync::Arc::new(RusshTransport::new(&targets, opts).unwrap());
    let t = transport.clone();
    let waiting_target = waiting.target();
    let first = tokio::spawn(async move { t.connect(&waiting_target).await.is_ok() });
    // Let the waiting member take the slot first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let session = tokio::time::timeout(Duration::from_secs(30), transport.connect(&real.target()))
        .await
        .expect("the real member queued behind one that was only waiting")
        .unwrap();
    assert_echo(session.as_ref(), text).await;
    assert!(!first.is_finished(), "the other member is still waiting");
    first.abort();
}
