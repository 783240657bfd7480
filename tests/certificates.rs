//! SSH certificates against real sshd members, driven through `fleetauth sweep`: user
//! certificates (beside the identity file, named by ssh_config's `CertificateFile`, held by
//! ssh-agent) on members that trust only a user CA (`TrustedUserCAKeys`), and host
//! certificates (`HostCertificate`) judged against known_hosts `@cert-authority` lines. The CAs
//! and certificates are made by `ssh-keygen -s`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Lab, Member, State};

/// An ed25519 key pair at `path` (no passphrase); returns the public key line.
fn keygen(path: &Path) -> String {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(public(path));
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-ca", "-f"])
        .arg(path));
    fs::read_to_string(public(path)).unwrap().trim().to_string()
}

fn public(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", path.display()))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ssh-keygen -s CA -I id -n PRINCIPALS -V VALIDITY [-h] SUBJECT.pub`; returns the
/// certificate's path (`SUBJECT-cert.pub`).
fn sign(ca: &Path, subject_pub: &Path, host: bool, principals: &str, validity: &str) -> PathBuf {
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-q").arg("-s").arg(ca).args([
        "-I",
        "fleetauth-test",
        "-n",
        principals,
        "-V",
        validity,
    ]);
    if host {
        cmd.arg("-h");
    }
    run(cmd.arg(subject_pub));
    let name = subject_pub.to_str().unwrap().strip_suffix(".pub").unwrap();
    PathBuf::from(format!("{name}-cert.pub"))
}

/// A member (claude, not logged in) whose known_hosts entry is left to the test and whose
/// sshd presents its ed25519 host key certified by `ca` for `principals` (`None`: the
/// member's address) over `validity`.
fn certified_member(
    lab: &Lab,
    name: &str,
    ca: &Path,
    principals: Option<&str>,
    validity: &str,
) -> Member {
    let cert = lab.dir().join(format!("{name}-host-cert.pub"));
    let m = lab
        .member(name)
        .provider("claude", State::NoAuth)
        .untrusted_host_key()
        .sshd_option(&format!("HostCertificate {}", cert.display()))
        .build();
    let host_pub = lab.dir().join(format!("{name}-host.pub"));
    fs::write(&host_pub, format!("{}\n", m.host_public_key())).unwrap();
    let principal = m.addr().to_string();
    let signed = sign(
        ca,
        &host_pub,
        true,
        principals.unwrap_or(&principal),
        validity,
    );
    assert_eq!(signed, cert);
    m.start();
    m
}

fn append(path: &Path, line: &str) {
    let mut text = fs::read_to_string(path).unwrap_or_default();
    text.push_str(line);
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn detail(row: &serde_json::Value) -> String {
    row["detail"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_host_certificate_is_accepted_on_a_cert_authority_line_alone_and_not_recorded() {
    let lab = Lab::new();
    let ca = lab.dir().join("host_ca");
    let ca_pub = keygen(&ca);
    let exact = certified_member(&lab, "exact", &ca, None, "-5m:+1h");
    let wild = certified_member(&lab, "wild", &ca, None, "always:forever");
    // One line for one member by its address, one matching the other only by wildcard.
    append(
        &lab.known_hosts(),
        &format!("@cert-authority {} {ca_pub}", exact.addr()),
    );
    append(
        &lab.known_hosts(),
        &format!("@cert-authority 127.*,!{} {ca_pub}", exact.addr()),
    );
    let before = fs::read_to_string(lab.known_hosts()).unwrap();
    assert!(
        !before.contains(&exact.host_public_key()) && !before.contains(&wild.host_public_key()),
        "known_hosts holds only the CA lines:\n{before}"
    );

    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    for name in ["exact", "wild"] {
        assert_eq!(
            out.row(name, "claude")["state"],
            "needs_auth",
            "{name}\n{out}"
        );
    }
    assert_eq!(
        fs::read_to_string(lab.known_hosts()).unwrap(),
        before,
        "a certificate accepted via its CA is not recorded"
    );
    // The same under accept-new: still nothing recorded.
    let inv = lab.inventory_named("accept-new.toml", "host_key_checking = \"accept-new\"");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.row("exact", "claude")["state"], "needs_auth", "{out}");
    assert_eq!(fs::read_to_string(lab.known_hosts()).unwrap(), before);
}

#[test]
fn expired_misnamed_and_foreign_host_certificates_are_refused_saying_why() {
    let lab = Lab::new();
    let ca = lab.dir().join("host_ca");
    let ca_pub = keygen(&ca);
    let other_ca = lab.dir().join("other_ca");
    keygen(&other_ca);
    let expired = certified_member(&lab, "expired", &ca, None, "20200101:20200201");
    let misnamed = certified_member(
        &lab,
        "misnamed",
        &ca,
        Some("db1.example.test,10.9.9.9"),
        "-5m:+1h",
    );
    let foreign = certified_member(&lab, "foreign", &other_ca, None, "-5m:+1h");
    for m in [&expired, &misnamed, &foreign] {
        append(
            &lab.known_hosts(),
            &format!("@cert-authority {} {ca_pub}", m.addr()),
        );
    }
    let before = fs::read_to_string(lab.known_hosts()).unwrap();
    let ca_fp = fingerprint(&public(&ca));
    let other_fp = fingerprint(&public(&other_ca));

    let inv = lab.inventory("host_key_checking = \"accept-new\"");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    let refused = |m: &Member| {
        let row = out.row(m.name(), "claude");
        assert_eq!(row["state"], "unreachable", "{row}\n{out}");
        assert_eq!(row["reason"], "host_key", "{row}");
        let why = detail(&row);
        let head = format!(
            "host certificate for {} (key {}) refused: ",
            m.addr(),
            m.host_key_fingerprint()
        );
        assert!(why.starts_with(&head), "{why}");
        why[head.len()..].to_string()
    };
    assert_eq!(
        refused(&expired),
        "it expired at 2020-02-01T00:00:00Z (valid from 2020-01-01T00:00:00Z to 2020-02-01T00:00:00Z)"
    );
    assert_eq!(
        refused(&misnamed),
        format!(
            "it is valid for db1.example.test, 10.9.9.9, not for {}",
            misnamed.addr()
        )
    );
    assert_eq!(
        refused(&foreign),
        format!(
            "it is signed by certificate authority {other_fp}, which no @cert-authority line for {} in known_hosts trusts (trusted: {ca_fp})",
            foreign.addr()
        )
    );
    assert_eq!(
        fs::read_to_string(lab.known_hosts()).unwrap(),
        before,
        "accept-new records nothing for hosts under a CA"
    );
}

fn fingerprint(public_key: &Path) -> String {
    run(Command::new("ssh-keygen").arg("-lf").arg(public_key))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn a_plain_host_key_under_a_cert_authority_is_refused_without_suggesting_accept_new() {
    let lab = Lab::new();
    let ca = lab.dir().join("host_ca");
    let ca_pub = keygen(&ca);
    let strict = lab
        .member("strict")
        .provider("claude", State::NoAuth)
        .untrusted_host_key()
        .start();
    let lenient = lab
        .member("lenient")
        .provider("claude", State::NoAuth)
        .untrusted_host_key()
        .inventory_line("host_key_checking = \"accept-new\"")
        .start();
    append(
        &lab.known_hosts(),
        &format!("@cert-authority 127.* {ca_pub}"),
    );
    let before = fs::read_to_string(lab.known_hosts()).unwrap();

    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    for m in [&strict, &lenient] {
        let row = out.row(m.name(), "claude");
        assert_eq!(row["state"], "unreachable", "{row}\n{out}");
        assert_eq!(
            detail(&row),
            format!(
                "host key for {host} is not in known_hosts (server offered the plain key {fp}, no certificate); known_hosts trusts a certificate authority for {host} (@cert-authority at {kh}:1), so the server should present a host certificate signed by it (`HostCertificate` in its sshd_config)",
                host = m.addr(),
                fp = m.host_key_fingerprint(),
                kh = lab.known_hosts().display()
            )
        );
        assert!(!out.stdout.contains("accept-new"), "{out}");
    }
    assert_eq!(
        fs::read_to_string(lab.known_hosts()).unwrap(),
        before,
        "accept-new must not pin the raw key of a host under a CA"
    );
}

/// A user CA, and a member that trusts it and authorizes no key at all.
fn user_ca_member(lab: &Lab, name: &str) -> (PathBuf, Member) {
    let ca = lab.dir().join("user_ca");
    if !ca.exists() {
        keygen(&ca);
    }
    let m = lab
        .member(name)
        .provider("claude", State::NoAuth)
        .deny_client_key()
        .sshd_option(&format!("TrustedUserCAKeys {}", public(&ca).display()))
        .start();
    (ca, m)
}

#[test]
fn a_user_certificate_beside_the_identity_is_offered_before_the_plain_key() {
    let lab = Lab::new();
    let (ca, ca_only) = user_ca_member(&lab, "ca-only");
    // Authorized everywhere by key; `ca-only` accepts nothing but certificates.
    let identity = lab.extra_identity("certified", "");
    let keys_only = lab
        .member("keys-only")
        .provider("claude", State::NoAuth)
        .start();
    let inv = lab.inventory("");
    let text = fs::read_to_string(&inv).unwrap();
    let lab_key = lab.identity().display().to_string();
    assert!(text.contains(&lab_key), "{text}");
    fs::write(
        &inv,
        text.replace(&lab_key, &identity.display().to_string()),
    )
    .unwrap();
    let inv = inv.to_str().unwrap();

    let out = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    let row = out.row("ca-only", "claude");
    assert_eq!(row["reason"], "auth", "without a certificate: {row}\n{out}");
    assert_eq!(
        out.row("keys-only", "claude")["state"],
        "needs_auth",
        "{out}"
    );

    let cert = sign(&ca, &public(&identity), false, lab.user(), "-5m:+1h");
    assert_eq!(
        cert,
        PathBuf::from(format!("{}-cert.pub", identity.display()))
    );
    let out = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    assert_eq!(out.row("ca-only", "claude")["state"], "needs_auth", "{out}");
    assert!(
        ca_only.sshd_log().contains("ED25519-CERT"),
        "sshd accepted a certificate:\n{}",
        ca_only.sshd_log()
    );
    // A member that does not trust the CA refuses the certificate; the plain key follows.
    assert_eq!(
        out.row("keys-only", "claude")["state"],
        "needs_auth",
        "{out}"
    );
    // In the second sweep's connection: the certificate refused, then the plain key accepted.
    let log = keys_only.sshd_log();
    let lines: Vec<&str> = log.lines().collect();
    let cert_refused = lines
        .iter()
        .position(|l| l.starts_with("Failed publickey for ") && l.contains(": ED25519-CERT "))
        .unwrap_or_else(|| panic!("the certificate was not offered:\n{log}"));
    assert!(
        lines[cert_refused..]
            .iter()
            .any(|l| l.starts_with("Accepted publickey for ") && l.contains(": ED25519 ")),
        "the plain key is offered after the certificate:\n{log}"
    );
}

#[test]
fn a_certificate_file_from_ssh_config_is_offered_and_a_missing_one_only_warns() {
    let lab = Lab::new();
    let (ca, m) = user_ca_member(&lab, "m");
    let identity = lab.unauthorized_identity();
    // Certified, but stored away from the identity (no `-cert.pub` beside it).
    let signed = sign(&ca, &public(&identity), false, lab.user(), "-5m:+1h");
    let elsewhere = lab.dir().join("certs/elsewhere-cert.pub");
    fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    fs::rename(&signed, &elsewhere).unwrap();
    let missing = lab.dir().join("certs/missing-cert.pub");
    let config = lab.dir().join("ssh_config");
    fs::write(
        &config,
        format!(
            "Host alias-m\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  CertificateFile {}\n  CertificateFile {}\n  UserKnownHostsFile {}\n",
            m.addr(),
            m.port(),
            lab.user(),
            identity.display(),
            missing.display(),
            elsewhere.display(),
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    let inv = lab.dir().join("aliases.toml");
    fs::write(
        &inv,
        "[defaults]\nproviders = [\"claude\"]\n[members.m]\nhost = \"alias-m\"\n",
    )
    .unwrap();
    let (cfg, inv) = (config.to_str().unwrap(), inv.to_str().unwrap());

    let check = lab.fleetauth(&["inventory", "check", "-i", inv, "-F", cfg]);
    check.assert_exit(0);
    check.assert_stderr_contains(&format!(
        "warning: member `m`: CertificateFile: cannot read certificate {}: No such file or directory (os error 2); it is skipped (as OpenSSH does) and the plain keys are offered",
        missing.display()
    ));
    assert!(
        !check.stderr.contains(&elsewhere.display().to_string()),
        "{check}"
    );

    let out = lab.fleetauth(&["sweep", "-i", inv, "-F", cfg, "--format", "json"]);
    assert_eq!(out.row("m", "claude")["state"], "needs_auth", "{out}");
    assert!(m.sshd_log().contains("ED25519-CERT"), "{}", m.sshd_log());
}

#[test]
fn a_certificate_held_by_ssh_agent_is_offered() {
    let lab = Lab::new();
    let (ca, m) = user_ca_member(&lab, "m");
    let identity = lab.unauthorized_identity();
    sign(&ca, &public(&identity), false, lab.user(), "-5m:+1h");
    // ssh-add loads the key and the `-cert.pub` beside it.
    lab.with_agent_keys(&[&identity]);
    let listed = run(Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", lab.agent_socket().unwrap()));
    assert!(listed.contains("ED25519-CERT"), "{listed}");
    // No identity_file: the agent's identities, then ~/.ssh/id_ed25519 (not authorized here).
    let inv = lab.dir().join("agent.toml");
    fs::write(
        &inv,
        format!(
            "[members.m]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\nknown_hosts = \"{}\"\nproviders = [\"claude\"]\nssh_config = \"none\"\n",
            m.addr(),
            m.port(),
            lab.user(),
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.row("m", "claude")["state"], "needs_auth", "{out}");
    assert!(m.sshd_log().contains("ED25519-CERT"), "{}", m.sshd_log());
}

/// OpenSSH (≥ 8.8) refuses `ssh-rsa-cert-v01@openssh.com`, the only form fleetauth could
/// offer an RSA certificate in: it is skipped with a warning and the plain key is offered.
#[test]
fn an_rsa_user_certificate_is_skipped_with_a_warning() {
    let lab = Lab::new();
    let (ca, m) = user_ca_member(&lab, "m");
    let identity = lab.dir().join("id_rsa_certified");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&identity));
    let cert = sign(&ca, &public(&identity), false, lab.user(), "-5m:+1h");
    let inv = lab.inventory("");
    let text = fs::read_to_string(&inv).unwrap();
    fs::write(
        &inv,
        text.replace(
            &lab.identity().display().to_string(),
            &identity.display().to_string(),
        ),
    )
    .unwrap();
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    let row = out.row("m", "claude");
    assert_eq!(row["reason"], "auth", "{row}\n{out}");
    assert!(!detail(&row).contains("certificate"), "{row}");
    out.assert_stderr_contains(&format!(
        "certificate {} is for an RSA key: not offered",
        cert.display()
    ));
    assert!(!m.sshd_log().contains("RSA-CERT"), "{}", m.sshd_log());
}
