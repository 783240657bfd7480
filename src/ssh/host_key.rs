//! The russh handler of one connection: judges the server's host key against known_hosts
//! according to the target's [`HostKeyChecking`], and under `accept-new` learns it.
//!
//! **Host keys are judged in the handler callback**, but russh turns any refusal there into a
//! generic "unknown key" error; the handler therefore records the precise [`SshError`] in a
//! [`Refusal`] slot it shares with `connect`, which returns that instead.
//!
//! The verdict itself (which lines match, revocation, changed keys, whether a host certificate
//! is vouched for by a `@cert-authority` line) is `known_hosts.rs`'s business; this module only
//! maps verdict and mode to accept or refuse, and says why.
//!
//! **Hosts under a certificate authority** (a `@cert-authority` line matches them; only they
//! are asked for certificates, see `config.rs`): a certificate the CA vouches for is accepted
//! and never recorded; a plain key that no plain line lists is refused in `strict` *and*
//! `accept-new` (recording it would bypass the CA), with advice to give the server a
//! `HostCertificate` rather than to use `accept-new`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::PublicKeyOrCertificate;
use russh::keys::ssh_key::{Certificate, PublicKey};

use super::known_hosts::{self, CertRefusal, KnownHostsStore, Verdict};
use super::{HostKeyChecking, SshError, Target};

/// Why the host key was refused, shared by a connection's handler and `connect`.
#[derive(Clone, Default)]
pub(super) struct Refusal(Arc<Mutex<Option<SshError>>>);

impl Refusal {
    /// The reason recorded by the handler, if it refused the key.
    pub(super) fn take(&self) -> Option<SshError> {
        self.slot().take()
    }

    fn record(&self, why: SshError) {
        *self.slot() = Some(why);
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<SshError>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// russh callbacks for one connection: host key verification and a debug line after kex.
pub(super) struct ClientHandler {
    check: HostKeyCheck,
    /// Why the host key was refused, for `connect` to report instead of russh's generic error.
    refusal: Refusal,
}

impl ClientHandler {
    /// A handler judging `target`'s host key against `store`; a refusal's reason goes to
    /// `refusal`.
    pub(super) fn new(
        store: Arc<KnownHostsStore>,
        target: &Target,
        refusal: Refusal,
    ) -> ClientHandler {
        ClientHandler {
            check: HostKeyCheck {
                store,
                known_hosts: target.known_hosts.clone(),
                host: target.known_hosts_name().0.to_string(),
                port: target.known_hosts_name().1,
                mode: target.host_key_checking,
                member: target.name.clone(),
            },
            refusal,
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let judged = match server_key {
            PublicKeyOrCertificate::Certificate(cert) => {
                self.check.judge_certificate(cert, unix_now())
            }
            PublicKeyOrCertificate::PublicKey { key, .. } => self.check.judge(key),
        };
        match judged {
            Ok(()) => Ok(true),
            Err(why) => {
                tracing::debug!(member = %self.check.member, "host key refused: {why}");
                self.refusal.record(why);
                Ok(false)
            }
        }
    }

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        names: &russh::Names,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(
            member = %self.check.member,
            kex = names.kex.as_ref(),
            host_key = names.key.as_str(),
            cipher = names.cipher.as_ref(),
            "key exchange done"
        );
        Ok(())
    }
}

/// Seconds since the epoch, for certificate validity.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything needed to judge one member's host key.
struct HostKeyCheck {
    store: Arc<KnownHostsStore>,
    known_hosts: PathBuf,
    host: String,
    port: u16,
    mode: HostKeyChecking,
    member: String,
}

impl HostKeyCheck {
    fn judge(&self, key: &PublicKey) -> Result<(), SshError> {
        let name = known_hosts::lookup_name(&self.host, self.port);
        let got = known_hosts::fingerprint(key);
        let verdict = self
            .store
            .check(&self.known_hosts, &self.host, self.port, key);
        match (verdict, self.mode) {
            (Verdict::Known, _) => Ok(()),
            (Verdict::Revoked { path, line }, _) => {
                tracing::warn!(
                    "member {}: host key {got} is revoked at {}:{line}",
                    self.member,
                    path.display()
                );
                Err(SshError::HostKeyRevoked {
                    host: name,
                    fingerprint: got,
                })
            }
            (Verdict::Changed { path, line, .. }, HostKeyChecking::Off) => {
                tracing::warn!(
                    "member {}: host key {got} differs from {}:{line}; accepted because host_key_checking = \"off\"",
                    self.member,
                    path.display()
                );
                Ok(())
            }
            (
                Verdict::Changed {
                    expected,
                    path,
                    line,
                },
                _,
            ) => Err(SshError::HostKeyChanged {
                host: name,
                expected: known_hosts::fingerprint(&expected),
                got,
                file: path,
                line,
            }),
            (Verdict::Unknown, HostKeyChecking::Off) => Ok(()),
            (Verdict::Unknown, mode) => {
                // A host a CA vouches for must present a certificate: its raw key is neither
                // accepted nor, under accept-new, recorded (that would bypass the CA).
                let authorities = self
                    .store
                    .authorities(&self.known_hosts, &self.host, self.port);
                if let Some((path, line, _)) = authorities.first() {
                    return Err(SshError::HostKeyUnknown {
                        host: name,
                        fingerprint: got,
                        cert_authority: Some(format!(
                            "@cert-authority at {}:{line}",
                            path.display()
                        )),
                    });
                }
                if mode == HostKeyChecking::AcceptNew {
                    return self.learn(key, name, got);
                }
                Err(SshError::HostKeyUnknown {
                    host: name,
                    fingerprint: got,
                    cert_authority: None,
                })
            }
        }
    }

    /// A host certificate is accepted when a `@cert-authority` line vouches for it (see
    /// `known_hosts::check_certificate`); it is never recorded. One that fails is, as in
    /// OpenSSH, judged again as its plain key: accepted if known_hosts lists that key (with a
    /// warning saying why the certificate was not enough), refused otherwise; revocation of
    /// the key or of its CA refuses it in every mode, and `off` accepts the rest with a warning.
    fn judge_certificate(&self, cert: &Certificate, now: u64) -> Result<(), SshError> {
        let name = known_hosts::lookup_name(&self.host, self.port);
        let key = PublicKey::new(cert.public_key().clone(), "");
        let got = known_hosts::fingerprint(&key);
        let refusal =
            match self
                .store
                .check_certificate(&self.known_hosts, &self.host, self.port, cert, now)
            {
                Ok((path, line)) => {
                    tracing::debug!(
                        member = %self.member,
                        "host certificate {got} (id {:?}) accepted: signed by the CA at {}:{line}",
                        cert.key_id(),
                        path.display()
                    );
                    return Ok(());
                }
                Err(refusal) => refusal,
            };
        let revoked = |fingerprint: String| {
            Err(SshError::HostKeyRevoked {
                host: name.clone(),
                fingerprint,
            })
        };
        match (
            &refusal,
            self.store
                .check(&self.known_hosts, &self.host, self.port, &key),
        ) {
            (CertRefusal::KeyRevoked { .. }, _) | (_, Verdict::Revoked { .. }) => revoked(got),
            (CertRefusal::AuthorityRevoked { .. }, _) => Err(SshError::HostCertificate {
                host: name,
                fingerprint: got,
                why: refusal.to_string(),
            }),
            (_, Verdict::Known) => {
                tracing::warn!(
                    "member {}: host certificate refused ({refusal}); accepted its key {got}, which known_hosts lists for {name}",
                    self.member
                );
                Ok(())
            }
            (_, _) if self.mode == HostKeyChecking::Off => {
                tracing::warn!(
                    "member {}: host certificate refused ({refusal}); accepted because host_key_checking = \"off\"",
                    self.member
                );
                Ok(())
            }
            (_, _) => Err(SshError::HostCertificate {
                host: name,
                fingerprint: got,
                why: refusal.to_string(),
            }),
        }
    }

    fn learn(&self, key: &PublicKey, name: String, got: String) -> Result<(), SshError> {
        match self
            .store
            .learn(&self.known_hosts, &self.host, self.port, key)
        {
            Ok(Verdict::Known) => {
                tracing::info!(
                    "member {}: added host key {got} for {name} to {}",
                    self.member,
                    self.known_hosts.display()
                );
                Ok(())
            }
            Ok(Verdict::Changed {
                expected,
                path,
                line,
            }) => Err(SshError::HostKeyChanged {
                host: name,
                expected: known_hosts::fingerprint(&expected),
                got,
                file: path,
                line,
            }),
            Ok(Verdict::Revoked { .. }) => Err(SshError::HostKeyRevoked {
                host: name,
                fingerprint: got,
            }),
            Ok(Verdict::Unknown) => Err(SshError::HostKeyUnknown {
                host: name,
                fingerprint: got,
                cert_authority: None,
            }),
            Err(why) => {
                tracing::warn!(
                    "member {}: {why}; trusting host key {got} for this run only",
                    self.member
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWBqk/tHvt7FfSRQ65YIkQyLrUQBNEij3+lHZbOOMA1";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOyGyDXyR+5t8eVMmlVSLGAK3C3FqqBh2AdDylwbi1Du";

    /// The handler for web1:22 under `mode`, known_hosts (`dir/known_hosts`) holding `recorded`.
    fn handler(dir: &std::path::Path, recorded: &str, mode: HostKeyChecking) -> ClientHandler {
        let path = dir.join("known_hosts");
        std::fs::write(&path, recorded).unwrap();
        let store = Arc::new(KnownHostsStore::load([path.as_path()], None).unwrap());
        let target = Target {
            name: "w".into(),
            host: "web1".into(),
            port: 22,
            user: "op".into(),
            known_hosts: path,
            host_key_checking: mode,
            connect_timeout: Duration::from_secs(1),
            ..Target::default()
        };
        ClientHandler::new(store, &target, Refusal::default())
    }

    /// The verdict on `offered` for web1:22 under `mode`, known_hosts holding `recorded`.
    fn judge(recorded: &str, mode: HostKeyChecking, offered: &str) -> Result<(), SshError> {
        let dir = tempfile::tempdir().unwrap();
        handler(dir.path(), recorded, mode)
            .check
            .judge(&PublicKey::from_openssh(offered).unwrap())
    }

    #[test]
    fn a_plain_key_of_a_host_under_a_cert_authority_is_never_accepted_new_nor_recorded() {
        use HostKeyChecking::{AcceptNew, Off, Strict};
        let recorded = format!("@cert-authority web* {KEY_B}\n");
        for mode in [Strict, AcceptNew] {
            let dir = tempfile::tempdir().unwrap();
            let h = handler(dir.path(), &recorded, mode);
            let err = h
                .check
                .judge(&PublicKey::from_openssh(KEY_A).unwrap())
                .unwrap_err();
            let message = err.to_string();
            assert_eq!(
                message,
                format!(
                    "host key for web1 is not in known_hosts (server offered the plain key {}, no certificate); known_hosts trusts a certificate authority for web1 (@cert-authority at {}:1), so the server should present a host certificate signed by it (`HostCertificate` in its sshd_config)",
                    known_hosts::fingerprint(&PublicKey::from_openssh(KEY_A).unwrap()),
                    dir.path().join("known_hosts").display()
                ),
                "{mode:?}"
            );
            assert!(!message.contains("accept-new"), "{message}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("known_hosts")).unwrap(),
                recorded,
                "{mode:?} must record nothing"
            );
        }
        // Without a CA line the advice still offers accept-new.
        let plain = judge("", Strict, KEY_A).unwrap_err().to_string();
        assert!(
            plain.ends_with("or opt in with host_key_checking = \"accept-new\""),
            "{plain}"
        );
        // A plain line for the host still vouches for its key; `off` accepts anything.
        assert!(judge(&format!("{recorded}web1 {KEY_A}\n"), Strict, KEY_A).is_ok());
        assert!(judge(&recorded, Off, KEY_A).is_ok());
    }

    #[test]
    fn host_certificates_are_judged_against_the_cert_authority_and_never_recorded() {
        use super::super::known_hosts::tests::{NOW, Signer, VALIDITY};
        use HostKeyChecking::{AcceptNew, Off, Strict};
        let s = Signer::new();
        let ca = s.key("ca");
        let host = s.key("host");
        let good = s.sign("ca", "host", &["-h", "-n", "web1", "-V", VALIDITY]);
        let recorded = format!("@cert-authority web1 {ca}\n");
        for mode in [Strict, AcceptNew, Off] {
            let dir = tempfile::tempdir().unwrap();
            let h = handler(dir.path(), &recorded, mode);
            assert!(h.check.judge_certificate(&good, NOW).is_ok(), "{mode:?}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("known_hosts")).unwrap(),
                recorded,
                "{mode:?}: an accepted certificate is not recorded"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let judge_cert = |recorded: &str, mode, now| {
            handler(dir.path(), recorded, mode)
                .check
                .judge_certificate(&good, now)
        };
        let late = good.valid_before() + 1;
        match judge_cert(&recorded, Strict, late) {
            Err(SshError::HostCertificate {
                host: name,
                fingerprint,
                why,
            }) => {
                assert_eq!(name, "web1");
                assert_eq!(
                    fingerprint,
                    known_hosts::fingerprint(&PublicKey::from_openssh(&host).unwrap())
                );
                assert!(why.starts_with("it expired at 2026-01-01T"), "{why}");
            }
            other => panic!("expected HostCertificate, got {other:?}"),
        }
        assert!(matches!(
            judge_cert(&recorded, AcceptNew, late),
            Err(SshError::HostCertificate { .. })
        ));
        // As in OpenSSH: a certificate that fails is judged as its plain key.
        assert!(judge_cert(&format!("{recorded}web1 {host}\n"), Strict, late).is_ok());
        assert!(judge_cert(&recorded, Off, late).is_ok());
        // Revocation refuses in every mode, plain line or not.
        let revoked_ca = format!("{recorded}web1 {host}\n@revoked * {ca}\n");
        let revoked_key = format!("{recorded}@revoked * {host}\n");
        for mode in [Strict, AcceptNew, Off] {
            let err = judge_cert(&revoked_ca, mode, NOW).unwrap_err().to_string();
            assert!(err.contains("which is revoked at"), "{mode:?}: {err}");
            assert!(
                matches!(
                    judge_cert(&revoked_key, mode, NOW),
                    Err(SshError::HostKeyRevoked { .. })
                ),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn each_mode_judges_unknown_changed_and_revoked_keys() {
        use HostKeyChecking::{AcceptNew, Off, Strict};
        let known = format!("web1 {KEY_A}\n");
        let revoked = format!("web1 {KEY_A}\n@revoked * {KEY_A}\n");
        for mode in [Strict, AcceptNew, Off] {
            assert!(judge(&known, mode, KEY_A).is_ok(), "{mode:?}");
            assert!(
                matches!(
                    judge(&revoked, mode, KEY_A),
                    Err(SshError::HostKeyRevoked { .. })
                ),
                "{mode:?}"
            );
        }
        assert!(matches!(
            judge(&known, Strict, KEY_B),
            Err(SshError::HostKeyChanged { .. })
        ));
        assert!(matches!(
            judge(&known, AcceptNew, KEY_B),
            Err(SshError::HostKeyChanged { .. })
        ));
        assert!(judge(&known, Off, KEY_B).is_ok());
        assert!(matches!(
            judge("", Strict, KEY_A),
            Err(SshError::HostKeyUnknown { .. })
        ));
        assert!(judge("", AcceptNew, KEY_A).is_ok());
        assert!(judge("", Off, KEY_A).is_ok());
    }

    #[test]
    fn under_a_host_key_alias_the_alias_is_the_name_and_the_principal() {
        use super::super::known_hosts::tests::{NOW, Signer, VALIDITY};
        let s = Signer::new();
        let ca = s.key("ca");
        s.key("host");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, format!("@cert-authority web1 {ca}\n")).unwrap();
        let store = Arc::new(KnownHostsStore::load([path.as_path()], None).unwrap());
        let target = Target {
            name: "w".into(),
            host: "10.0.0.9".into(),
            port: 2222,
            host_key_alias: Some("web1".into()),
            known_hosts: path,
            ..Target::default()
        };
        let h = ClientHandler::new(store, &target, Refusal::default());
        let for_alias = s.sign("ca", "host", &["-h", "-n", "web1", "-V", VALIDITY]);
        assert!(h.check.judge_certificate(&for_alias, NOW).is_ok());
        let for_address = s.sign("ca", "host", &["-h", "-n", "10.0.0.9", "-V", VALIDITY]);
        let err = h
            .check
            .judge_certificate(&for_address, NOW)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("refused: it is valid for 10.0.0.9, not for web1"),
            "{err}"
        );
    }

    #[test]
    fn a_refusal_is_handed_to_connect_once() {
        let refusal = Refusal::default();
        refusal.clone().record(SshError::Auth("x".into()));
        assert!(matches!(refusal.take(), Some(SshError::Auth(_))));
        assert!(refusal.take().is_none());
    }
}
