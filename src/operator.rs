//! The operator's own credentials: what the machine running fleetauth holds for each provider.
//!
//! `auth status` and `matrix` need to know whether the operator is logged in to a CLI
//! themselves. Rather than a second set of rules, this reads the operator's files and
//! environment with the same provider definitions and judges them with the same
//! [`crate::assess::resolve`] used for members — so "valid", "expired" and "shadowed" mean the
//! same thing on both sides.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::assess::{CredStatus, Found, resolve};
use crate::probe::{EnvFileObservation, FileObservation, ProviderObservation};
use crate::provider::{Credential, Provider};

/// What the operator's own CLI login for a provider looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnLogin {
    /// `oauth_token` or `api_key`.
    pub kind: &'static str,
    /// `present`, `expired`, `unreadable`, …
    pub status: &'static str,
    /// Human description (`~/.gemini/oauth_creds.json, valid for 3h`).
    pub detail: String,
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), path == "~", dirs::home_dir()) {
        (Some(rest), _, Some(home)) => home.join(rest),
        (None, true, Some(home)) => home,
        _ => PathBuf::from(path),
    }
}

/// The operator's config home for a provider (the same rule as on members).
pub fn config_home(provider: &Provider) -> PathBuf {
    if let Some(var) = &provider.config_home.env
        && let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty())
    {
        return PathBuf::from(v);
    }
    expand_home(&provider.config_home.default)
}

/// Read the operator's credential files and environment as a member observation.
fn observe_locally(provider: &Provider) -> ProviderObservation {
    let home = config_home(provider);
    let mut obs = ProviderObservation {
        binary: Some(provider.binary.clone()),
        ..Default::default()
    };
    for c in &provider.credentials {
        match c {
            Credential::Env { var, .. } => {
                if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
                    obs.ambient.push(var.clone());
                }
            }
            other => {
                let Some(file) = other.file() else { continue };
                // `~/…` is the home, absolute stays absolute, else under the config home.
                let path = if file.starts_with("~/") {
                    expand_home(file)
                } else {
                    home.join(file)
                };
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        obs.files
                            .insert(file.to_string(), FileObservation::Present(bytes.into()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(_) => {
                        obs.files
                            .insert(file.to_string(), FileObservation::Unreadable);
                    }
                }
            }
        }
    }
    obs
}

/// The operator's own login for `provider`, if any: a credential *file* the CLI would use
/// (environment variables are reported separately as the `env` source).
pub fn own_login(provider: &Provider) -> Option<OwnLogin> {
    let obs = observe_locally(provider);
    let res = resolve(
        provider,
        &obs,
        &EnvFileObservation::Absent,
        SystemTime::now(),
    );
    let all = res.effective.iter().chain(res.shadowed.iter());
    let login: &Found = all.into_iter().find(|f| {
        matches!(
            f.credential,
            Credential::OauthFile { .. } | Credential::KeyFile { .. }
        )
    })?;
    let home = config_home(provider);
    let path = home.join(login.credential.file().unwrap_or_default());
    let kind = match login.credential {
        Credential::OauthFile { .. } => "oauth_token",
        _ => "api_key",
    };
    let (status, note) = match &login.status {
        CredStatus::Present => ("present", String::new()),
        CredStatus::Valid(d, _) => (
            "present",
            format!(", valid for {}", humantime::format_duration(*d)),
        ),
        CredStatus::Refreshable(..) => ("present", ", expired but refreshable".to_string()),
        CredStatus::Expired(_) | CredStatus::RefreshExpired(_) => ("expired", String::new()),
        CredStatus::Blanked => ("expired", ", blanked after a failed refresh".to_string()),
        CredStatus::Locked | CredStatus::KeychainFailed(_) => return None,
        CredStatus::Malformed(_) => ("unreadable", ", malformed".to_string()),
        CredStatus::Unreadable => ("unreadable", String::new()),
        CredStatus::Selects(_) | CredStatus::ShortLived(_) => return None,
    };
    Some(OwnLogin {
        kind,
        status,
        detail: format!("{}{note}", path.display()),
    })
}

/// The operator's own OAuth login file, ready to copy to members (`--share-oauth`).
pub struct SharedLogin {
    /// Path relative to the provider's config home (the same on the member).
    pub rel: String,
    pub bytes: secrecy::SecretSlice<u8>,
    /// `sha256:` + 12 hex digits of the file.
    pub fingerprint: String,
}

/// Why the operator's own login cannot be shared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("--share-oauth: you have no usable {0} OAuth login on this machine to share")]
    NoLogin(String),
    #[error("--share-oauth: {0} disappeared")]
    Disappeared(String),
    #[error("--share-oauth: cannot read {what}: {why}")]
    Unreadable { what: String, why: String },
}

/// Read the operator's OAuth login for `provider`, if it has a usable one.
pub fn shared_login(provider: &Provider) -> Result<SharedLogin, ShareError> {
    let login = own_login(provider).filter(|l| l.kind == "oauth_token");
    let Some(login) = login.filter(|l| l.status == "present") else {
        return Err(ShareError::NoLogin(provider.name.clone()));
    };
    let rel = provider
        .credentials
        .iter()
        .find_map(|c| match c {
            Credential::OauthFile { file, .. } if config_home(provider).join(file).is_file() => {
                Some(file.clone())
            }
            _ => None,
        })
        .ok_or_else(|| ShareError::Disappeared(login.detail.clone()))?;
    let bytes =
        std::fs::read(config_home(provider).join(&rel)).map_err(|e| ShareError::Unreadable {
            what: login.detail.clone(),
            why: e.to_string(),
        })?;
    let fingerprint = crate::mask::fingerprint_bytes(&bytes);
    Ok(SharedLogin {
        rel,
        bytes: bytes.into(),
        fingerprint,
    })
}
