//! Authentication: identity files, ssh-agent, passphrases.
//!
//! [`Credentials`] are gathered once per run, when the transport is built, so that connecting
//! is network work only:
//! - **every distinct identity file is loaded and decrypted once**. An encrypted file is opened
//!   with the passphrase in `TransportOptions::passphrase_env` if set, else from a hidden prompt
//!   (three tries) when the options allow it and stdin is a terminal; a passphrase that worked is
//!   tried first on the next encrypted file, so a fleet sharing one passphrase asks once. A file
//!   that cannot be loaded is a [`SetupError`] saying what to do, before any member is contacted;
//! - **a target without identities uses ssh-agent**, whose keys are offered in turn until
//!   one is accepted, then (as OpenSSH does) its default identities `~/.ssh/id_ed25519`,
//!   `id_ecdsa`, `id_rsa` that exist ([`Target::default_identities`]); a default identity that
//!   cannot be loaded (encrypted without a passphrase at hand) is skipped with a debug line.
//!   Certificates the agent holds are offered like its keys;
//! - **user certificates** are read once per run too: `K-cert.pub` beside each loaded identity
//!   file `K` (OpenSSH's rule) and every target's `CertificateFile`. With identity `K`, the
//!   certificates certifying `K`'s public key are offered first, then the plain key. A
//!   `CertificateFile` that is missing or unparseable is skipped with a warning (as OpenSSH
//!   does; `inventory check` reports it), and RSA certificates are not offered (see
//!   `load_certificates`).
//!
//! A connection that dies while keys are being tried is reported as a network fault, not a
//! refused key, so the operator is not sent to authorized_keys for nothing.

use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::PrivateKeyWithHashAlg;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, PrivateKey};
use secrecy::{ExposeSecret, SecretString};

use super::config::is_rsa;
use super::connect::russh_error;
use super::host_key::ClientHandler;
use super::known_hosts;
use super::{Agent, SetupError, SshError, Target, TransportOptions};

/// The identities of one run: decrypted identity files, and the ssh-agent for targets without
/// one.
pub(super) struct Credentials {
    identities: HashMap<PathBuf, Arc<PrivateKey>>,
    /// User certificates by file: `K-cert.pub` beside each loaded identity `K`, and ssh_config's
    /// `CertificateFile`s (those that could be read).
    certificates: HashMap<PathBuf, Certificate>,
    agent_socket: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identities", &self.identities.keys().collect::<Vec<_>>())
            .field(
                "certificates",
                &self.certificates.keys().collect::<Vec<_>>(),
            )
            .field("agent_socket", &self.agent_socket)
            .finish()
    }
}

impl Credentials {
    /// Load each distinct identity file of `targets` once. Encrypted files are decrypted with a
    /// passphrase from `opts.passphrase_env` if set, else from a hidden prompt when allowed; a
    /// passphrase that worked is tried first on the next encrypted file.
    pub(super) fn load(
        targets: &[Target],
        opts: &TransportOptions,
    ) -> Result<Credentials, SetupError> {
        let mut identities = HashMap::new();
        let mut passphrases: Vec<SecretString> = Vec::new();
        let explicit = targets
            .iter()
            .flat_map(|t| t.identities.iter().map(|p| (p, true)));
        let defaults = targets
            .iter()
            .flat_map(|t| t.default_identities.iter().map(|p| (p, false)));
        for (path, required) in explicit.chain(defaults) {
            if identities.contains_key(path) {
                continue;
            }
            let key = if required {
                load_identity(path, opts, &mut passphrases)?
            } else {
                let quiet = TransportOptions {
                    interactive: false,
                    ..opts.clone()
                };
                match load_identity(path, &quiet, &mut passphrases) {
                    Ok(key) => key,
                    Err(e) => {
                        tracing::debug!("default identity skipped: {e}");
                        continue;
                    }
                }
            };
            tracing::debug!(
                path = %path.display(),
                algorithm = key.algorithm().as_str(),
                fingerprint = %known_hosts::fingerprint(key.public_key()),
                "loaded identity"
            );
            identities.insert(path.to_path_buf(), Arc::new(key));
        }
        let certificates = load_certificates(targets, identities.keys());
        Ok(Credentials {
            identities,
            certificates,
            agent_socket: opts.agent_socket.clone(),
        })
    }

    /// The certificates to offer with the identity in `path` for `target`, in order: `path`'s
    /// `-cert.pub`, then the target's `CertificateFile`s, each only if it certifies `key` (and is
    /// not RSA, see [`load_certificates`]).
    fn certificates_for<'a>(
        &'a self,
        target: &'a Target,
        path: &Path,
        key: &PrivateKey,
    ) -> Vec<(&'a Path, &'a Certificate)> {
        let beside = certificate_beside(path);
        let mut out: Vec<(&Path, &Certificate)> = Vec::new();
        for candidate in std::iter::once(&beside).chain(&target.certificate_files) {
            if let Some((stored, cert)) = self.certificates.get_key_value(candidate)
                && cert.public_key() == key.public_key().key_data()
                && !out.iter().any(|(p, _)| *p == stored.as_path())
            {
                out.push((stored.as_path(), cert));
            }
        }
        out
    }

    /// The agent socket `target` uses (ssh_config `IdentityAgent`, else the run's).
    fn agent_for<'a>(&'a self, target: &'a Target) -> Option<&'a Path> {
        match &target.agent {
            Agent::Default => self.agent_socket.as_deref(),
            Agent::Disabled => None,
            Agent::Socket(path) => Some(path),
        }
    }

    /// Log in as `target.user` on the connection `handle` to `addr` (`host:port`, for messages).
    pub(super) async fn authenticate(
        &self,
        handle: &mut Handle<ClientHandler>,
        target: &Target,
        addr: &str,
    ) -> Result<(), SshError> {
        if !target.identities.is_empty() {
            return self
                .authenticate_with_files(handle, target, addr, &target.identities)
                .await;
        }
        let defaults: Vec<PathBuf> = target
            .default_identities
            .iter()
            .filter(|p| self.identities.contains_key(*p))
            .cloned()
            .collect();
        if defaults.is_empty() {
            return self.authenticate_with_agent(handle, target, addr).await;
        }
        if self.agent_for(target).is_some() {
            match self.authenticate_with_agent(handle, target, addr).await {
                Ok(()) => return Ok(()),
                Err(SshError::Auth(why)) => {
                    tracing::debug!(member = %target.name, "ssh-agent: {why}; trying default identities")
                }
                Err(e) => return Err(e),
            }
        }
        self.authenticate_with_files(handle, target, addr, &defaults)
            .await
    }

    /// Offer each of `paths` in turn until one is accepted.
    async fn authenticate_with_files(
        &self,
        handle: &mut Handle<ClientHandler>,
        target: &Target,
        addr: &str,
        paths: &[PathBuf],
    ) -> Result<(), SshError> {
        let mut last = None;
        for path in paths {
            match self
                .authenticate_with_file(handle, target, addr, path)
                .await
            {
                Ok(()) => return Ok(()),
                Err(SshError::Auth(why)) => last = Some(why),
                Err(e) => return Err(e),
            }
        }
        match (paths.len(), last) {
            (1, Some(why)) => Err(SshError::Auth(why)),
            (_, _) => Err(SshError::Auth(format!(
                "{}@{addr} refused all {} identities ({}); add one of them to the member's \
                 ~/.ssh/authorized_keys or fix `user`/`identity_file` in the inventory",
                target.user,
                paths.len(),
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    async fn authenticate_with_file(
        &self,
        handle: &mut Handle<ClientHandler>,
        target: &Target,
        addr: &str,
        path: &Path,
    ) -> Result<(), SshError> {
        let key = self.identities.get(path).ok_or_else(|| {
            SshError::Auth(format!(
                "identity file {} was not loaded when the transport was set up; \
                 pass member {} to RusshTransport::new",
                path.display(),
                target.name
            ))
        })?;
        let certificates = self.certificates_for(target, path, key);
        for (cert_path, cert) in &certificates {
            let result = handle
                .authenticate_openssh_cert(&target.user, key.clone(), (*cert).clone())
                .await
                .map_err(|e| russh_error(addr, e))?;
            if result.success() {
                tracing::debug!(
                    member = %target.name,
                    method = "publickey",
                    key = %path.display(),
                    certificate = %cert_path.display(),
                    "authenticated"
                );
                return Ok(());
            }
            if handle.is_closed() {
                return Err(lost_during_auth(addr));
            }
            tracing::debug!(
                member = %target.name,
                "{}@{addr} refused the certificate {}; trying the plain key",
                target.user,
                cert_path.display()
            );
        }
        let hash = rsa_hash_for(handle, &key.algorithm(), addr).await?;
        let result = handle
            .authenticate_publickey(&target.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(|e| russh_error(addr, e))?;
        if result.success() {
            tracing::debug!(member = %target.name, method = "publickey", key = %path.display(), "authenticated");
            return Ok(());
        }
        if handle.is_closed() {
            return Err(lost_during_auth(addr));
        }
        let certified = match certificates.as_slice() {
            [] => String::new(),
            list => format!(
                " and its certificate{} {}",
                if list.len() == 1 { "" } else { "s" },
                list.iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Err(SshError::Auth(format!(
            "{}@{addr} refused the key in {} ({}){certified}; add its public key to the member's \
             ~/.ssh/authorized_keys or fix `user`/`identity_file` in the inventory",
            target.user,
            path.display(),
            known_hosts::fingerprint(key.public_key())
        )))
    }

    async fn authenticate_with_agent(
        &self,
        handle: &mut Handle<ClientHandler>,
        target: &Target,
        addr: &str,
    ) -> Result<(), SshError> {
        let socket = self.agent_for(target).ok_or_else(|| {
            let why = match target.agent {
                Agent::Disabled => "ssh_config says `IdentityAgent none`",
                _ => "no ssh-agent is available (SSH_AUTH_SOCK is not set)",
            };
            SshError::Auth(format!(
                "member {} has no identity_file, no default identity (~/.ssh/id_ed25519, id_ecdsa, \
                 id_rsa) and {why}; set identity_file in the inventory, or start ssh-agent and \
                 ssh-add your key",
                target.name
            ))
        })?;
        let agent_error = |e: &dyn std::fmt::Display| {
            SshError::Auth(format!(
                "cannot use ssh-agent at {}: {e}; check SSH_AUTH_SOCK, or set identity_file in the inventory",
                socket.display()
            ))
        };
        let mut agent = AgentClient::connect_uds(socket)
            .await
            .map_err(|e| agent_error(&e))?;
        let identities = agent
            .request_identities()
            .await
            .map_err(|e| agent_error(&e))?;
        if identities.is_empty() {
            return Err(SshError::Auth(format!(
                "ssh-agent at {} holds no keys; ssh-add the key authorized on {addr}, or set identity_file",
                socket.display()
            )));
        }
        for identity in &identities {
            let key = identity.public_key().into_owned();
            let hash = rsa_hash_for(handle, &key.algorithm(), addr).await?;
            let result = match identity {
                AgentIdentity::PublicKey { .. } => {
                    handle
                        .authenticate_publickey_with(&target.user, key.clone(), hash, &mut agent)
                        .await
                }
                AgentIdentity::Certificate { certificate, .. } => {
                    handle
                        .authenticate_certificate_with(
                            &target.user,
                            certificate.clone(),
                            hash,
                            &mut agent,
                        )
                        .await
                }
            };
            match result {
                Ok(r) if r.success() => {
                    tracing::debug!(
                        member = %target.name,
                        method = "ssh-agent",
                        key = %known_hosts::fingerprint(&key),
                        "authenticated"
                    );
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(member = %target.name, "ssh-agent could not sign: {e}"),
            }
            if handle.is_closed() {
                return Err(lost_during_auth(addr));
            }
        }
        Err(SshError::Auth(format!(
            "{}@{addr} refused all {} key(s) offered by ssh-agent; add one of them to the \
             member's ~/.ssh/authorized_keys or fix `user` in the inventory",
            target.user,
            identities.len()
        )))
    }
}

/// `K-cert.pub` for the identity file `K` (OpenSSH's rule).
fn certificate_beside(identity: &Path) -> PathBuf {
    let mut name = identity.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// Read an OpenSSH certificate file (`ssh-keygen -s` output, `*-cert.pub`). The error says
/// which file and why.
pub fn read_certificate(path: &Path) -> Result<Certificate, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read certificate {}: {e}", path.display()))?;
    Certificate::from_openssh(text.trim()).map_err(|e| {
        format!(
            "{} is not an OpenSSH certificate ({e}); expected the `*-cert.pub` file `ssh-keygen -s` writes",
            path.display()
        )
    })
}

/// Load each distinct certificate file once: `K-cert.pub` beside each of `identities` (when it
/// exists), then every target's `CertificateFile`. As OpenSSH does, one that is missing or
/// unparseable is skipped with a warning (silently, for a `K-cert.pub` that does not exist).
/// RSA certificates are skipped too: russh can only offer them as `ssh-rsa-cert-v01@openssh.com`,
/// which OpenSSH's `PubkeyAcceptedAlgorithms` leaves out by default since 8.8.
fn load_certificates<'a>(
    targets: &[Target],
    identities: impl Iterator<Item = &'a PathBuf>,
) -> HashMap<PathBuf, Certificate> {
    let beside = identities.map(|p| (certificate_beside(p), false));
    let configured = targets
        .iter()
        .flat_map(|t| t.certificate_files.iter().map(|p| (p.clone(), true)));
    let mut seen = std::collections::HashSet::new();
    let mut out = HashMap::new();
    for (path, configured) in beside.collect::<Vec<_>>().into_iter().chain(configured) {
        if !seen.insert(path.clone()) || (!configured && !path.exists()) {
            continue;
        }
        match read_certificate(&path) {
            Ok(cert) if is_rsa(&cert.algorithm()) => tracing::warn!(
                "certificate {} is for an RSA key: not offered (fleetauth can only offer it as \
                 ssh-rsa-cert-v01@openssh.com, which OpenSSH refuses by default since 8.8); \
                 certify an Ed25519 or ECDSA key instead",
                path.display()
            ),
            Ok(cert) => {
                tracing::debug!(
                    path = %path.display(),
                    id = cert.key_id(),
                    principals = ?cert.valid_principals(),
                    "loaded certificate"
                );
                out.insert(path, cert);
            }
            Err(why) if configured => {
                tracing::warn!("CertificateFile skipped: {why}")
            }
            Err(why) => tracing::warn!("certificate skipped: {why}"),
        }
    }
    out
}

/// A connection that died while keys were being tried: a network fault, not a refused key,
/// so the operator is not sent to authorized_keys for nothing.
fn lost_during_auth(addr: &str) -> SshError {
    SshError::Network(format!(
        "{addr} closed the connection during authentication"
    ))
}

/// The hash to sign with for an RSA user key (`rsa-sha2-512` unless the server says otherwise).
async fn rsa_hash_for(
    handle: &Handle<ClientHandler>,
    algorithm: &Algorithm,
    addr: &str,
) -> Result<Option<HashAlg>, SshError> {
    if !is_rsa(algorithm) {
        return Ok(None);
    }
    match handle.best_supported_rsa_hash().await {
        Ok(Some(hash)) => Ok(hash),
        Ok(None) => Ok(Some(HashAlg::Sha512)),
        Err(e) => Err(russh_error(addr, e)),
    }
}

fn load_identity(
    path: &Path,
    opts: &TransportOptions,
    passphrases: &mut Vec<SecretString>,
) -> Result<PrivateKey, SetupError> {
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => return Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => {
            return Err(SetupError(format!(
                "cannot load identity file {}: {e}; check `identity_file` in the inventory",
                path.display()
            )));
        }
    }
    let decrypt =
        |pass: &SecretString| russh::keys::load_secret_key(path, Some(pass.expose_secret()));
    for pass in passphrases.iter() {
        if let Ok(key) = decrypt(pass) {
            return Ok(key);
        }
    }
    let env = &opts.passphrase_env;
    if let Some(pass) = std::env::var(env)
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from)
    {
        return match decrypt(&pass) {
            Ok(key) => {
                passphrases.push(pass);
                Ok(key)
            }
            Err(e) => Err(SetupError(format!(
                "identity file {} is encrypted and the passphrase in {env} does not decrypt it ({e}); \
                 fix {env}, or unset it and run on a terminal to be asked",
                path.display()
            ))),
        };
    }
    if opts.interactive && io::stdin().is_terminal() {
        for _ in 0..3 {
            let prompt = format!("Enter passphrase for {}: ", path.display());
            let pass = SecretString::from(rpassword::prompt_password(prompt).map_err(|e| {
                SetupError(format!(
                    "cannot read the passphrase for {} from the terminal: {e}",
                    path.display()
                ))
            })?);
            if let Ok(key) = decrypt(&pass) {
                passphrases.push(pass);
                return Ok(key);
            }
            eprintln!("Wrong passphrase for {}.", path.display());
        }
        return Err(SetupError(format!(
            "identity file {}: wrong passphrase, 3 attempts",
            path.display()
        )));
    }
    Err(SetupError(format!(
        "identity file {} is encrypted: set {env} or run on a terminal \
         (or load the key into ssh-agent and drop identity_file)",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_for_an_identity_beside_it_first_then_configured_ones_that_certify_it() {
        use super::super::known_hosts::tests::{Signer, VALIDITY};
        let s = Signer::new();
        s.key("ca");
        s.key("id");
        s.key("other");
        let dir = s.dir.path();
        let id = dir.join("id");
        s.sign("ca", "id", &["-n", "op", "-V", VALIDITY]); // id-cert.pub, beside id
        s.sign("ca", "other", &["-n", "op", "-V", VALIDITY]); // certifies another key
        let configured = dir.join("configured-cert.pub");
        std::fs::copy(dir.join("id-cert.pub"), &configured).unwrap();
        let target = Target {
            identities: vec![id.clone()],
            certificate_files: vec![
                dir.join("missing-cert.pub"),
                dir.join("other-cert.pub"),
                configured.clone(),
                dir.join("id-cert.pub"),
            ],
            ..Target::default()
        };
        let opts = TransportOptions {
            agent_socket: None,
            ..TransportOptions::default()
        };
        let creds = Credentials::load(std::slice::from_ref(&target), &opts).unwrap();
        // The missing file is skipped; the others are loaded once each.
        assert_eq!(creds.certificates.len(), 3, "{creds:?}");
        let key = creds.identities[&id].clone();
        let offered: Vec<&Path> = creds
            .certificates_for(&target, &id, &key)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            offered,
            [dir.join("id-cert.pub").as_path(), configured.as_path()]
        );
        // Another target without CertificateFiles still gets the one beside the identity.
        let bare = Target {
            identities: vec![id.clone()],
            ..Target::default()
        };
        assert_eq!(creds.certificates_for(&bare, &id, &key).len(), 1);
    }

    #[test]
    fn missing_encrypted_or_plain_identity_errors_say_what_to_do() {
        let dir = std::env::temp_dir().join(format!("fleetauth-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("nope");
        let err =
            load_identity(&missing, &TransportOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(
            err.message().contains(&missing.display().to_string()),
            "{err}"
        );
        assert!(err.message().contains("identity_file"), "{err}");

        let key = dir.join("id_enc");
        let _ = std::fs::remove_file(&key);
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "correct horse", "-C", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen must be installed for this test");
        assert!(status.success());
        let opts = TransportOptions {
            passphrase_env: "FLEETAUTH_TEST_PASSPHRASE_THAT_IS_NEVER_SET".into(),
            interactive: false,
            ..TransportOptions::default()
        };
        let err = load_identity(&key, &opts, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.message(),
            format!(
                "identity file {} is encrypted: set FLEETAUTH_TEST_PASSPHRASE_THAT_IS_NEVER_SET or run on a terminal (or load the key into ssh-agent and drop identity_file)",
                key.display()
            )
        );
        // A passphrase that already worked for another file is tried first.
        let mut known = vec![SecretString::from("correct horse".to_string())];
        let loaded = load_identity(&key, &opts, &mut known).unwrap();
        assert_eq!(loaded.algorithm(), Algorithm::Ed25519);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
