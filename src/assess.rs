//! Turning what a member said into a verdict: which credential a CLI will really use, whether
//! it is usable, what it hides, and the row state that follows.
//!
//! This is pure code over [`crate::probe`] observations and a provider definition, with the
//! clock passed in, so every combination is a unit test. The order matters and follows the
//! CLIs' own precedence: a settings value that selects an auth type beats everything (gemini's
//! `security.auth.selectedType`); otherwise the first present credential in the provider's list
//! wins and every other present one is *shadowed* — the trap where a freshly installed key is
//! silently ignored because a stale one sits higher.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use secrecy::ExposeSecret;

use crate::probe::{EnvFileObservation, FileObservation, KeychainStatus, ProviderObservation};
use crate::provider::{
    Credential, CredentialKind, ExpiryUnit, FileFormat, Outcome, Provider, SettingScope, ShortLived,
};
pub use crate::row::State;
use crate::row::{CredentialHome, Source};

/// The default of `--valid-for`: how long a credential must stay usable to be `ready`.
pub const DEFAULT_VALID_FOR: Duration = Duration::from_secs(3600);

/// What renews a login's access token when it lapses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// No refresh token: the login ends when its token expires.
    None,
    /// A refresh token, usable for this long (`None`: no known end).
    Refresh(Option<Duration>),
}

/// Where a credential was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The member's own environment (sshd, shell rc files).
    Ambient,
    /// fleetauth's env file on the member.
    EnvFile,
    /// A file in the CLI's config home (or a system or home file the provider names).
    File,
    /// The OS keychain.
    Keychain,
}

/// How usable a credential looks without asking the vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredStatus {
    Present,
    /// The token is valid for this long; what renews it then.
    Valid(Duration, Renewal),
    /// Expired this long ago, but a refresh token is there (usable for the second duration,
    /// when the file says).
    Refreshable(Duration, Option<Duration>),
    /// A token of a kind known to lapse soon after it was issued (a GitHub `ghu_` token).
    ShortLived(ShortLived),
    Expired(Duration),
    /// Expired this long ago, and its refresh token expired too (claude `refreshTokenExpiresAt`).
    RefreshExpired(Duration),
    /// Token and refresh token emptied: what a CLI leaves after a failed refresh.
    Blanked,
    Malformed(String),
    Unreadable,
    /// A setting that selects this auth type.
    Selects(String),
    /// The keychain holding it is locked (macOS over SSH).
    Locked,
    /// The keychain answered something else (`security` exit status).
    KeychainFailed(String),
}

/// One credential seen on the member.
#[derive(Debug, Clone)]
pub struct Found<'p> {
    pub credential: &'p Credential,
    pub origin: Origin,
    pub status: CredStatus,
    /// The keychain service actually looked up (claude's depends on `CLAUDE_CONFIG_DIR`).
    pub service: Option<String>,
}

impl Found<'_> {
    /// `GEMINI_API_KEY (env file)`, `.claude/.credentials.json`.
    pub fn label(&self) -> String {
        match (self.credential, self.origin) {
            (Credential::Env { var, .. }, Origin::EnvFile) => format!("{var} (env file)"),
            (Credential::Env { var, .. }, _) => format!("{var} (environment)"),
            (Credential::Setting { file, pointer, .. }, _) => {
                format!(
                    "{file} {}",
                    pointer.trim_start_matches('/').replace('/', ".")
                )
            }
            (
                Credential::KeyFile {
                    file,
                    pointer,
                    any_value,
                    ..
                },
                _,
            ) => {
                let at = pointer.trim_start_matches('/').replace('/', ".");
                if *any_value {
                    format!("{file} {at}.*")
                } else {
                    format!("{file} {at}")
                }
            }
            (Credential::Keychain { service, .. }, _) => {
                let service = self.service.as_deref().unwrap_or(service);
                format!("keychain service \"{service}\"")
            }
            (c, _) => c
                .file()
                .or_else(|| c.presence_file())
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The `source` column for a row this credential makes ready.
    pub fn source(&self) -> Source {
        match (self.credential, self.origin) {
            (Credential::Env { .. }, Origin::EnvFile) => Source::EnvFile,
            (Credential::Env { .. }, _) => Source::Env,
            (Credential::Setting { .. }, _) => Source::Setting,
            (Credential::OauthFile { .. }, _) => Source::OauthFile,
            (Credential::KeyFile { .. } | Credential::PresentFile { .. }, _) => Source::KeyFile,
            (Credential::Keychain { .. }, _) => Source::Keychain,
        }
    }
}

/// Which credential the CLI will use and which ones it hides.
#[derive(Debug, Clone, Default)]
pub struct Resolution<'p> {
    pub effective: Option<Found<'p>>,
    pub shadowed: Vec<Found<'p>>,
    /// Set when a setting selects a credential that is not there.
    pub selected_missing: Option<String>,
    /// The setting that decided, if one did.
    pub setting: Option<Found<'p>>,
    /// Credentials the CLI does not read because another file exists (`unless_exists`), as
    /// notes for the detail column.
    pub ignored: Vec<String>,
}

impl Resolution<'_> {
    /// `GEMINI_API_KEY (env file) is hidden by …` and `… is not read: …` notes for the detail
    /// column.
    pub fn shadow_note(&self) -> Option<String> {
        let ignored = (!self.ignored.is_empty()).then(|| self.ignored.join("; "));
        let parts: Vec<String> = [self.hidden_note(), ignored]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn hidden_note(&self) -> Option<String> {
        if self.shadowed.is_empty() {
            return None;
        }
        let hidden: Vec<String> = self.shadowed.iter().map(Found::label).collect();
        let by = match (&self.setting, &self.effective) {
            (Some(s), _) => match &s.status {
                CredStatus::Selects(v) => format!("{}={v}", s.label()),
                _ => s.label(),
            },
            (None, Some(e)) => e.label(),
            (None, None) => return None,
        };
        Some(format!("{by} shadows {}", hidden.join(", ")))
    }
}

/// The verdict for one member × provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub source: Option<Source>,
    pub version: Option<String>,
    pub detail: String,
}

fn now_secs(now: SystemTime) -> f64 {
    now.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Why a credential file could not be read as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum FileError {
    #[error("unreadable")]
    Unreadable,
    #[error("not valid JSON (line {0}, column {1})")]
    NotJson(usize, usize),
    #[error("not valid {0}")]
    Invalid(&'static str),
}

fn file_json(
    obs: &ProviderObservation,
    file: &str,
    format: FileFormat,
) -> Option<Result<serde_json::Value, FileError>> {
    match obs.files.get(file)? {
        FileObservation::Unreadable => Some(Err(FileError::Unreadable)),
        FileObservation::Present(bytes) => Some(parse_file(bytes.expose_secret(), format)),
    }
}

/// A credential or settings file as a JSON value, whatever its format. Error messages never
/// quote the file (it holds secrets).
fn parse_file(bytes: &[u8], format: FileFormat) -> Result<serde_json::Value, FileError> {
    match format {
        FileFormat::Json => {
            serde_json::from_slice(bytes).map_err(|e| FileError::NotJson(e.line(), e.column()))
        }
        FileFormat::Toml => {
            let text = std::str::from_utf8(bytes).map_err(|_| FileError::Invalid("TOML"))?;
            let value: toml::Value =
                toml::from_str(text).map_err(|_| FileError::Invalid("TOML"))?;
            serde_json::to_value(value).map_err(|_| FileError::Invalid("TOML"))
        }
        FileFormat::Yaml => {
            let text = std::str::from_utf8(bytes).map_err(|_| FileError::Invalid("YAML"))?;
            let docs = yaml_rust2::YamlLoader::load_from_str(text)
                .map_err(|_| FileError::Invalid("YAML"))?;
            Ok(docs
                .first()
                .map(yaml_to_json)
                .unwrap_or(serde_json::Value::Null))
        }
        FileFormat::Dotenv => Ok(dotenv_to_json(&String::from_utf8_lossy(bytes))),
    }
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> serde_json::Value {
    use serde_json::Value as J;
    use yaml_rust2::Yaml as Y;
    match y {
        Y::String(s) | Y::Real(s) => J::String(s.clone()),
        Y::Integer(i) => J::from(*i),
        Y::Boolean(b) => J::Bool(*b),
        Y::Array(items) => J::Array(items.iter().map(yaml_to_json).collect()),
        Y::Hash(map) => J::Object(
            map.iter()
                .filter_map(|(k, v)| {
                    let key = match k {
                        Y::String(s) | Y::Real(s) => s.clone(),
                        Y::Integer(i) => i.to_string(),
                        Y::Boolean(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((key, yaml_to_json(v)))
                })
                .collect(),
        ),
        _ => J::Null,
    }
}

/// `NAME=value` lines (an `export ` prefix, surrounding quotes and ` #` comments dropped) as a
/// flat object; the last assignment of a name wins.
fn dotenv_to_json(text: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !crate::shell::is_identifier(name) {
            continue;
        }
        let value = value.trim();
        let value = if let Some(q) = value.strip_prefix('"') {
            q.split('"').next().unwrap_or_default()
        } else if let Some(q) = value.strip_prefix('\'') {
            q.split('\'').next().unwrap_or_default()
        } else {
            value.split(" #").next().unwrap_or_default().trim()
        };
        map.insert(
            name.to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    serde_json::Value::Object(map)
}

/// Any non-empty string at or under `v` (an object keyed by account).
fn any_non_empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Object(map) => map.values().any(any_non_empty),
        serde_json::Value::Array(items) => items.iter().any(any_non_empty),
        _ => false,
    }
}

fn non_empty_str(v: Option<&serde_json::Value>) -> bool {
    matches!(v, Some(serde_json::Value::String(s)) if !s.is_empty())
}

/// Seconds since the epoch at which the token expires, per the provider's unit.
fn expiry_of(value: &serde_json::Value, unit: ExpiryUnit) -> Option<f64> {
    match unit {
        ExpiryUnit::Ms => number(value).map(|n| n / 1000.0),
        ExpiryUnit::S => number(value),
        ExpiryUnit::Rfc3339 => value
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis() as f64 / 1000.0),
        ExpiryUnit::Jwt => {
            let payload = value.as_str()?.split('.').nth(1)?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()?;
            let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            claims.get("exp").and_then(number)
        }
    }
}

fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn oauth_status(
    json: &serde_json::Value,
    token_pointer: &str,
    expiry: Option<(&str, ExpiryUnit)>,
    refresh_pointer: Option<&str>,
    refresh_expiry_pointer: Option<&str>,
    now: SystemTime,
) -> Option<CredStatus> {
    let token = json.pointer(token_pointer);
    if token.is_none() || token == Some(&serde_json::Value::Null) {
        return None;
    }
    let empty = |v: Option<&serde_json::Value>| {
        matches!(v, None | Some(serde_json::Value::Null))
            || matches!(v, Some(serde_json::Value::String(s)) if s.is_empty())
    };
    // A failed refresh leaves `accessToken ""`, `refreshToken ""`, `expiresAt 0`.
    if matches!(token, Some(serde_json::Value::String(s)) if s.is_empty())
        && refresh_pointer.is_none_or(|p| empty(json.pointer(p)))
    {
        return Some(CredStatus::Blanked);
    }
    if !non_empty_str(token) {
        return Some(CredStatus::Malformed(format!(
            "{token_pointer} is not a token"
        )));
    }
    let Some((ptr, unit)) = expiry else {
        return Some(CredStatus::Present);
    };
    let exp_source = if unit == ExpiryUnit::Jwt {
        token
    } else {
        json.pointer(ptr)
    };
    let Some(exp) = exp_source.and_then(|v| expiry_of(v, unit)) else {
        return Some(CredStatus::Present);
    };
    let left = exp - now_secs(now);
    let has_refresh = refresh_pointer.is_some_and(|p| non_empty_str(json.pointer(p)));
    // Seconds the refresh token has left (negative: dead), when the file says.
    let refresh_left = refresh_expiry_pointer
        .and_then(|p| json.pointer(p))
        .and_then(|v| expiry_of(v, unit))
        .filter(|rexp| *rexp > 0.0)
        .map(|rexp| rexp - now_secs(now));
    if left <= 0.0
        && has_refresh
        && let Some(rleft) = refresh_left.filter(|r| *r <= 0.0)
    {
        return Some(CredStatus::RefreshExpired(Duration::from_secs(
            (-rleft) as u64,
        )));
    }
    let refresh_for = refresh_left.map(|r| Duration::from_secs(r.max(0.0) as u64));
    Some(if left > 0.0 {
        let renewal = match has_refresh {
            true => Renewal::Refresh(refresh_for),
            false => Renewal::None,
        };
        CredStatus::Valid(Duration::from_secs(left as u64), renewal)
    } else if has_refresh {
        CredStatus::Refreshable(Duration::from_secs((-left) as u64), refresh_for)
    } else {
        CredStatus::Expired(Duration::from_secs((-left) as u64))
    })
}

/// Evaluate one credential; None when it is absent.
fn evaluate<'p>(
    c: &'p Credential,
    obs: &ProviderObservation,
    env: &EnvFileObservation,
    now: SystemTime,
) -> Option<Found<'p>> {
    let found = |origin, status| {
        Some(Found {
            credential: c,
            origin,
            status,
            service: None,
        })
    };
    match c {
        Credential::Env { var, .. } => {
            let in_file = matches!(env, EnvFileObservation::Present(n) if n.contains(var));
            let (origin, prefixes) = if in_file {
                (Origin::EnvFile, &obs.env_file_prefixes)
            } else if obs.ambient.contains(var) {
                (Origin::Ambient, &obs.ambient_prefixes)
            } else {
                return None;
            };
            let short = prefixes
                .get(var)
                .and_then(|p| c.short_lived().iter().find(|s| &s.prefix == p));
            match short {
                Some(s) => found(origin, CredStatus::ShortLived(s.clone())),
                None => found(origin, CredStatus::Present),
            }
        }
        Credential::Setting { file, pointer, .. } => match file_json(obs, file, c.format())? {
            Err(e) => found(Origin::File, CredStatus::Malformed(e.to_string())),
            Ok(json) => {
                let v = json.pointer(pointer)?.as_str()?.to_string();
                found(Origin::File, CredStatus::Selects(v))
            }
        },
        Credential::OauthFile {
            file,
            token_pointer,
            expiry_pointer,
            expiry_unit,
            refresh_pointer,
            refresh_expiry_pointer,
            ..
        } => match file_json(obs, file, FileFormat::Json)? {
            Err(FileError::Unreadable) => found(Origin::File, CredStatus::Unreadable),
            Err(e) => found(Origin::File, CredStatus::Malformed(e.to_string())),
            Ok(json) => {
                let expiry = match (expiry_pointer.as_deref(), *expiry_unit) {
                    (Some(p), u) => Some((p, u)),
                    (None, ExpiryUnit::Jwt) => Some(("", ExpiryUnit::Jwt)),
                    (None, _) => None,
                };
                let status = oauth_status(
                    &json,
                    token_pointer,
                    expiry,
                    refresh_pointer.as_deref(),
                    refresh_expiry_pointer.as_deref(),
                    now,
                )?;
                found(Origin::File, status)
            }
        },
        Credential::KeyFile {
            file,
            pointer,
            any_value,
            format,
            ..
        } => match file_json(obs, file, *format)? {
            Err(FileError::Unreadable) => found(Origin::File, CredStatus::Unreadable),
            Err(e) => found(Origin::File, CredStatus::Malformed(e.to_string())),
            Ok(json) if non_empty_str(json.pointer(pointer)) => {
                found(Origin::File, CredStatus::Present)
            }
            Ok(json) if *any_value && json.pointer(pointer).is_some_and(any_non_empty) => {
                found(Origin::File, CredStatus::Present)
            }
            Ok(_) => None,
        },
        Credential::PresentFile { file, .. } => obs
            .present_files
            .iter()
            .any(|f| f == file)
            .then(|| found(Origin::File, CredStatus::Present))
            .flatten(),
        Credential::Keychain { id, .. } => {
            let k = obs.keychains.get(id)?;
            let status = match &k.status {
                KeychainStatus::Present => CredStatus::Present,
                KeychainStatus::Locked => CredStatus::Locked,
                KeychainStatus::Failed(why) => CredStatus::KeychainFailed(why.clone()),
                KeychainStatus::Absent | KeychainStatus::Unavailable => return None,
            };
            Some(Found {
                credential: c,
                origin: Origin::Keychain,
                status,
                service: Some(k.service.clone()),
            })
        }
    }
}

fn requires_selection(c: &Credential) -> bool {
    c.requires_selection()
}

/// Decide which credential the CLI uses, following its precedence.
pub fn resolve<'p>(
    provider: &'p Provider,
    obs: &ProviderObservation,
    env: &EnvFileObservation,
    now: SystemTime,
) -> Resolution<'p> {
    let mut all: Vec<Found<'p>> = Vec::new();
    let mut ignored = Vec::new();
    for found in provider
        .credentials
        .iter()
        .filter_map(|c| evaluate(c, obs, env, now))
    {
        // gemini loads only the first `.env` file it finds: a key in a later one is not read.
        if let Some(guard) = found
            .credential
            .unless_exists()
            .filter(|g| obs.files.contains_key(*g) || obs.present_files.iter().any(|f| f == g))
        {
            ignored.push(format!(
                "{} is not read: {guard} exists, and {} loads only the first of them",
                found.label(),
                provider.binary
            ));
            continue;
        }
        // Two credentials read from one broken file (codex's auth.json holds a key *or* a
        // login) are one problem, not one shadowing the other.
        let broken = matches!(
            found.status,
            CredStatus::Malformed(_) | CredStatus::Unreadable
        );
        let same_file_seen = all.iter().any(|f| {
            f.credential.file().is_some() && f.credential.file() == found.credential.file()
        });
        if !(broken && same_file_seen) {
            all.push(found);
        }
    }
    let index_of = |c: &Credential| {
        provider
            .credentials
            .iter()
            .position(|x| std::ptr::eq(x, c))
            .unwrap_or(usize::MAX)
    };
    let is_setting = |f: &Found| matches!(f.credential, Credential::Setting { .. });
    // System settings come before the user's in the data: the first that selects decides.
    let setting = all
        .iter()
        .find(|f| is_setting(f) && matches!(f.status, CredStatus::Selects(_)));
    if let Some(setting) = setting {
        let (Credential::Setting { selects, scope, .. }, CredStatus::Selects(value)) =
            (setting.credential, &setting.status)
        else {
            unreachable!("filtered above")
        };
        let at = index_of(setting.credential);
        // A store choice (scope below) yields to what is listed above it, and a value it does
        // not list leaves the order as it is.
        let applies = match scope {
            SettingScope::All => true,
            SettingScope::Below => {
                selects.contains_key(value)
                    && !all.iter().any(|f| {
                        index_of(f.credential) < at
                            && !is_setting(f)
                            && !requires_selection(f.credential)
                    })
            }
        };
        if applies {
            let others = |keep: &dyn Fn(&Found) -> bool| -> Vec<Found<'p>> {
                all.iter()
                    .filter(|f| !is_setting(f) && keep(f))
                    .cloned()
                    .collect()
            };
            return match selects.get(value) {
                Some(targets) => {
                    let present: Vec<&Found<'p>> = targets
                        .iter()
                        .filter_map(|t| all.iter().find(|f| f.credential.id() == t))
                        .collect();
                    let effective = pick(&present).cloned();
                    let selected_missing = effective.is_none().then(|| {
                        let what: Vec<String> =
                            targets.iter().map(|t| describe(provider, obs, t)).collect();
                        let what = match what.as_slice() {
                            [one] => format!("{one} is missing"),
                            many => format!("none of {} is present", many.join(", ")),
                        };
                        format!("{} selects {value} but {what}", setting.label())
                    });
                    let effective_id = effective.as_ref().map(|e| e.credential.id().to_string());
                    Resolution {
                        shadowed: others(&|f| {
                            Some(f.credential.id()) != effective_id.as_deref()
                                && f.status != CredStatus::Locked
                        }),
                        effective,
                        selected_missing,
                        setting: Some(setting.clone()),
                        ignored: ignored.clone(),
                    }
                }
                // A selected type fleetauth has no credential for (vertex-ai, …): the setting decides.
                None => Resolution {
                    shadowed: others(&|_| true),
                    effective: Some(setting.clone()),
                    selected_missing: None,
                    setting: Some(setting.clone()),
                    ignored: ignored.clone(),
                },
            };
        }
    }
    let candidates: Vec<Found<'p>> = all
        .into_iter()
        .filter(|f| !requires_selection(f.credential) && !is_setting(f))
        .collect();
    let refs: Vec<&Found<'p>> = candidates.iter().collect();
    let effective = pick(&refs).cloned();
    let effective_id = effective.as_ref().map(|e| e.credential.id().to_string());
    let shadowed = candidates
        .iter()
        .filter(|f| {
            Some(f.credential.id()) != effective_id.as_deref() && f.status != CredStatus::Locked
        })
        .cloned()
        .collect();
    Resolution {
        effective,
        shadowed,
        ignored,
        ..Default::default()
    }
}

/// The first credential in precedence order, except that a locked keychain yields to a later
/// credential: over SSH the CLI cannot read the keychain and falls back to its file (claude
/// writes `.credentials.json` when logged in inside an SSH session).
fn pick<'a, 'p>(present: &[&'a Found<'p>]) -> Option<&'a Found<'p>> {
    present
        .iter()
        .find(|f| f.status != CredStatus::Locked)
        .or_else(|| present.first())
        .copied()
}

/// How a credential is named in "… is missing": its variable, file or keychain service.
fn describe(provider: &Provider, obs: &ProviderObservation, id: &str) -> String {
    match provider.credentials.iter().find(|c| c.id() == id) {
        Some(Credential::Env { var, .. }) => var.clone(),
        Some(Credential::Keychain { service, .. }) => {
            let k = obs.keychains.get(id);
            let service = k.map_or(service.as_str(), |k| k.service.as_str());
            match k.map(|k| &k.status) {
                Some(KeychainStatus::Unavailable) | None => format!(
                    "keychain service \"{service}\" (no `security` or `secret-tool` on the member to check it)"
                ),
                _ => format!("keychain service \"{service}\""),
            }
        }
        Some(other) => other
            .file()
            .or_else(|| other.presence_file())
            .unwrap_or(id)
            .to_string(),
        None => id.to_string(),
    }
}

fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

fn join_detail(parts: impl IntoIterator<Item = Option<String>>) -> String {
    parts
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why `found` will not stay usable for `valid_for` (`--valid-for`), if it will not: a login
/// whose token expires within the window and cannot be refreshed, or whose refresh token expires
/// within it too, or a token of a kind known to be short-lived. `None`: it lasts, as far as can
/// be seen without asking the vendor. A credential that lasts exactly `valid_for` lasts.
pub fn lapse(found: &Found, valid_for: Duration) -> Option<String> {
    let window = format!("--valid-for {}", human(valid_for));
    match &found.status {
        CredStatus::Valid(left, renewal) if *left < valid_for => match renewal {
            Renewal::None => Some(format!(
                "oauth token expires in {}, within {window}, and cannot be refreshed (no refresh token)",
                human(*left)
            )),
            Renewal::Refresh(Some(r)) if *r < valid_for => Some(format!(
                "oauth token expires in {} and its refresh token in {}, within {window}",
                human(*left),
                human(*r)
            )),
            Renewal::Refresh(_) => None,
        },
        CredStatus::Refreshable(ago, Some(r)) if *r < valid_for => Some(format!(
            "oauth token expired {} ago and its refresh token expires in {}, within {window}",
            human(*ago),
            human(*r)
        )),
        CredStatus::ShortLived(s) if s.lifetime <= valid_for => Some(format!(
            "{} is a {} token, which lapses within {} of being issued and cannot be refreshed: it lapses within {window}",
            found.label(),
            s.prefix,
            human(s.lifetime)
        )),
        CredStatus::ShortLived(s) => Some(format!(
            "{} is a {} token, which lapses within {} of being issued and cannot be refreshed; when it was issued cannot be seen, so it may lapse within {window}",
            found.label(),
            s.prefix,
            human(s.lifetime)
        )),
        _ => None,
    }
}

/// Judge the credential alone (no prompt run).
fn judge_credential(
    provider: &Provider,
    obs: &ProviderObservation,
    res: &Resolution,
    valid_for: Duration,
) -> Verdict {
    let shadow = res.shadow_note();
    let v = |state, source: Option<Source>, detail: String| Verdict {
        state,
        source,
        version: None,
        detail: join_detail([Some(detail), shadow.clone()]),
    };
    let Some(eff) = &res.effective else {
        if let Some(missing) = &res.selected_missing {
            return v(State::NeedsAuth, None, missing.clone());
        }
        if obs.status_rc == Some(0) {
            let cmd = provider
                .status
                .as_ref()
                .map(|s| s.args.join(" "))
                .unwrap_or_default();
            return v(
                State::Ready,
                Some(Source::Status),
                format!(
                    "`{} {cmd}` reports a login (presence only; --deep proves it)",
                    provider.binary
                ),
            );
        }
        return v(
            State::NeedsAuth,
            None,
            format!("no credential found; {}", remedy_hint(provider)),
        );
    };
    let label = eff.label();
    let kind_note = |c: &Credential| match c {
        Credential::Env {
            kind: CredentialKind::Backend,
            ..
        }
        | Credential::KeyFile {
            kind: CredentialKind::Backend,
            ..
        } => " selects another backend (not checked without --deep)",
        _ => "",
    };
    // The data's note qualifies a credential that looks usable; a dead one needs no more.
    let note = eff.credential.note().map(str::to_string);
    let v = |state, source: Option<Source>, detail: String| Verdict {
        state,
        source,
        version: None,
        detail: join_detail([
            Some(detail),
            note.clone().filter(|_| state == State::Ready),
            shadow.clone(),
        ]),
    };
    if let Some(why) = lapse(eff, valid_for) {
        let remedy = match &eff.status {
            CredStatus::ShortLived(_) => remedy_hint(provider),
            _ => "log in again on this member, or push a non-rotating credential (`fleetauth provision`)".to_string(),
        };
        return v(State::NeedsAuth, None, format!("{why}; {remedy}"));
    }
    match &eff.status {
        CredStatus::Present if eff.origin == Origin::Keychain => v(
            State::Ready,
            Some(eff.source()),
            format!(
                "{label} present in the {} (presence only; --deep proves it)",
                keychain_name(obs, eff.credential)
            ),
        ),
        CredStatus::Present if matches!(eff.credential, Credential::PresentFile { .. }) => v(
            State::Ready,
            Some(eff.source()),
            format!("{label} present (encrypted: presence only; --deep proves it)"),
        ),
        CredStatus::Present => v(
            State::Ready,
            Some(eff.source()),
            format!("{label} set{}", kind_note(eff.credential)),
        ),
        CredStatus::Valid(left, _) if *left >= valid_for => v(
            State::Ready,
            Some(eff.source()),
            format!("oauth token valid for {}", human(*left)),
        ),
        // Within the window, but the CLI refreshes it (`lapse` above ruled out the rest).
        CredStatus::Valid(left, _) => v(
            State::Ready,
            Some(eff.source()),
            format!("oauth token expiring: {} left", human(*left)),
        ),
        CredStatus::ShortLived(_) => unreachable!("a short-lived token always lapses"),
        CredStatus::Refreshable(ago, _) => v(
            State::Ready,
            Some(eff.source()),
            format!(
                "oauth token expired {} ago, refreshable (refresh token present)",
                human(*ago)
            ),
        ),
        CredStatus::Expired(ago) => v(
            State::NeedsAuth,
            None,
            format!("oauth token expired {} ago, no refresh token", human(*ago)),
        ),
        CredStatus::RefreshExpired(ago) => v(
            State::NeedsAuth,
            None,
            format!(
                "login expired: the refresh token itself expired {} ago ({label}); log in again on this member",
                human(*ago)
            ),
        ),
        CredStatus::Blanked => v(
            State::NeedsAuth,
            None,
            format!(
                "login lost (blanked after a failed refresh): {label}; log in again on this member"
            ),
        ),
        CredStatus::Locked => v(
            State::NeedsAuth,
            None,
            format!(
                "{label}: the login keychain is locked (normal over SSH), so {} cannot read its login; push a non-rotating credential (`fleetauth provision`), or log in once inside an SSH session so the CLI writes its file",
                provider.binary
            ),
        ),
        CredStatus::KeychainFailed(why) => v(
            State::Error,
            None,
            format!("{label}: the keychain answered {why}"),
        ),
        CredStatus::Malformed(why) => v(
            State::NeedsAuth,
            None,
            format!("{label} is malformed: {why}"),
        ),
        CredStatus::Unreadable => v(
            State::Error,
            None,
            format!("{label} exists but cannot be read (permissions?)"),
        ),
        CredStatus::Selects(value) => v(
            State::Ready,
            Some(Source::Setting),
            format!("{label} selects {value} (not checked without --deep)"),
        ),
    }
}

/// `macOS keychain` or `Secret Service (libsecret)`, by the tool that answered.
fn keychain_name(obs: &ProviderObservation, c: &Credential) -> &'static str {
    match obs.keychains.get(c.id()).map(|k| k.tool.as_str()) {
        Some("secret-tool") => "Secret Service (libsecret)",
        _ => "macOS keychain",
    }
}

/// What an operator types to fix a provider with no credential.
pub fn remedy_hint(provider: &Provider) -> String {
    if provider.keys.is_empty() {
        return format!(
            "log in with `{}` on the member (fleetauth has no {} credential to push)",
            provider.binary, provider.name
        );
    }
    format!(
        "run `fleetauth auth set {}` or `export {}=…`, then `fleetauth provision`",
        provider.name, provider.key_env
    )
}

/// Where the credential the CLI will use lives, for the provisioning decision.
pub fn credential_home(
    provider: &Provider,
    obs: Option<&ProviderObservation>,
    env: &EnvFileObservation,
    now: SystemTime,
) -> CredentialHome {
    let empty = ProviderObservation::default();
    match resolve(provider, obs.unwrap_or(&empty), env, now).effective {
        Some(Found {
            origin: Origin::EnvFile,
            ..
        }) => CredentialHome::EnvFile,
        Some(_) => CredentialHome::MemberLogin,
        None => CredentialHome::Unknown,
    }
}

/// Seconds from `now` until the credential the CLI uses expires (negative: expired that long
/// ago), where it carries an expiry fleetauth reads (an OAuth login); None otherwise.
pub fn credential_expiry(
    provider: &Provider,
    obs: Option<&ProviderObservation>,
    env: &EnvFileObservation,
    now: SystemTime,
) -> Option<i64> {
    let empty = ProviderObservation::default();
    let obs = obs.unwrap_or(&empty);
    // A CLI that is not there uses no credential.
    obs.binary.as_ref()?;
    let secs = |d: &Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    match resolve(provider, obs, env, now).effective?.status {
        CredStatus::Valid(left, _) => Some(secs(&left)),
        CredStatus::Refreshable(ago, _) | CredStatus::Expired(ago) => Some(-secs(&ago)),
        _ => None,
    }
}

/// Where the key a CLI uses lives, when it is a key fleetauth can replace (`--rotate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    /// This variable of fleetauth's env file.
    EnvFile(String),
    /// The key file the provider's login command writes (codex `login --with-api-key`).
    LoginCommand,
}

/// The key the CLI will use, if fleetauth can replace it: a variable of its env file, or the
/// key file a provider's login command writes. With its fingerprint when known: computed on the
/// member for the env file, here for a file the probe sent back.
pub fn key_in_use(
    provider: &Provider,
    obs: Option<&ProviderObservation>,
    env: &EnvFileObservation,
    now: SystemTime,
) -> Option<(KeyPlace, Option<String>)> {
    let empty = ProviderObservation::default();
    let obs = obs.unwrap_or(&empty);
    let eff = resolve(provider, obs, env, now).effective?;
    match (eff.credential, eff.origin) {
        (Credential::Env { var, .. }, Origin::EnvFile) => Some((
            KeyPlace::EnvFile(var.clone()),
            obs.env_fingerprints.get(var).cloned(),
        )),
        (
            Credential::KeyFile {
                file,
                pointer,
                format,
                kind: CredentialKind::ApiKey,
                any_value: false,
                ..
            },
            _,
        ) if provider
            .keys
            .iter()
            .any(|k| matches!(k.install, crate::provider::Install::LoginCommand { .. })) =>
        {
            let fingerprint = match file_json(obs, file, *format) {
                Some(Ok(json)) => json
                    .pointer(pointer)
                    .and_then(|v| v.as_str())
                    .map(|k| crate::mask::fingerprint_bytes(k.as_bytes())),
                _ => None,
            };
            Some((KeyPlace::LoginCommand, fingerprint))
        }
        _ => None,
    }
}

/// The verdict for one provider on one reachable member.
pub fn assess(
    provider: &Provider,
    obs: Option<&ProviderObservation>,
    env: &EnvFileObservation,
    prompt_timeout: Duration,
    valid_for: Duration,
    now: SystemTime,
) -> Verdict {
    let empty = ProviderObservation::default();
    let obs = obs.unwrap_or(&empty);
    if obs.binary.is_none() {
        return Verdict {
            state: State::NotInstalled,
            source: None,
            version: None,
            detail: format!(
                "`{}` not found on PATH or in {}",
                provider.binary,
                provider.search_paths.join(", ")
            ),
        };
    }
    let version = crate::probe::observed_version(provider, obs);
    let res = resolve(provider, obs, env, now);
    let mut verdict = match &obs.prompt {
        None => judge_credential(provider, obs, &res, valid_for),
        // A hang proves nothing about a credential, so it never makes a row ready. But when the
        // member has no usable credential at all, the hang is the CLI waiting for a login
        // (codex does that), and the honest verdict is still the credential's: needs_auth.
        Some(p) if p.timed_out() => {
            let without_prompt = judge_credential(provider, obs, &res, valid_for);
            let hung = format!(
                "prompt timed out after {} (vendor unreachable, or the CLI is waiting for input)",
                human(prompt_timeout)
            );
            if without_prompt.state == State::NeedsAuth {
                Verdict {
                    detail: format!("{}; {hung}", without_prompt.detail),
                    ..without_prompt
                }
            } else {
                Verdict {
                    state: State::Error,
                    source: None,
                    version: None,
                    detail: hung,
                }
            }
        }
        Some(p) => {
            let (outcome, reason) =
                crate::provider::classify(provider, Some(p.rc), &p.stdout, &p.stderr);
            let via = res.effective.as_ref().map(|e| format!("via {}", e.label()));
            let shadow = res.shadow_note();
            match outcome {
                // The prompt proves the credential now, not for the window.
                Outcome::Ready => match res.effective.as_ref().and_then(|e| lapse(e, valid_for)) {
                    Some(why) => Verdict {
                        state: State::NeedsAuth,
                        source: None,
                        version: None,
                        detail: join_detail([
                            Some(format!("prompt answered, but {why}")),
                            via,
                            shadow,
                        ]),
                    },
                    None => Verdict {
                        state: State::Ready,
                        source: Some(Source::Probe),
                        version: None,
                        detail: join_detail([Some("prompt answered".to_string()), via, shadow]),
                    },
                },
                Outcome::NeedsAuth => Verdict {
                    state: State::NeedsAuth,
                    source: None,
                    version: None,
                    detail: join_detail([Some(reason), via, shadow]),
                },
                Outcome::Error => Verdict {
                    state: State::Error,
                    source: None,
                    version: None,
                    detail: join_detail([Some(reason), shadow]),
                },
            }
        }
    };
    verdict.version = version;
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::PromptObservation;
    use crate::provider::Registry;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    struct Case {
        obs: ProviderObservation,
        env: EnvFileObservation,
    }

    fn installed() -> Case {
        Case {
            obs: ProviderObservation {
                binary: Some("/usr/bin/x".into()),
                version_out: "0.61.0\n".into(),
                ..Default::default()
            },
            env: EnvFileObservation::Absent,
        }
    }

    impl Case {
        fn file(mut self, path: &str, text: &str) -> Self {
            self.obs.files.insert(
                path.into(),
                FileObservation::Present(text.as_bytes().to_vec().into()),
            );
            self
        }
        fn env_file(mut self, names: &[&str]) -> Self {
            self.env = EnvFileObservation::Present(names.iter().map(|s| s.to_string()).collect());
            self
        }
        fn ambient(mut self, name: &str) -> Self {
            self.obs.ambient.push(name.into());
            self
        }
        fn prompt(mut self, rc: i32, stdout: &str, stderr: &str) -> Self {
            self.obs.prompt = Some(PromptObservation {
                rc,
                stdout: stdout.into(),
                stderr: stderr.into(),
            });
            self
        }
        fn judge(&self, provider: &str) -> Verdict {
            self.judge_for(provider, DEFAULT_VALID_FOR)
        }
        fn judge_for(&self, provider: &str, valid_for: Duration) -> Verdict {
            let reg = Registry::builtin().unwrap();
            let p = reg.get(provider).unwrap();
            assess(
                p,
                Some(&self.obs),
                &self.env,
                Duration::from_secs(45),
                valid_for,
                now(),
            )
        }
    }

    fn gemini_oauth(expiry_offset_s: i64, refresh: bool) -> String {
        let exp = (NOW as i64 + expiry_offset_s) * 1000;
        let refresh = if refresh {
            r#","refresh_token":"1//r""#
        } else {
            ""
        };
        format!(r#"{{"access_token":"ya29.a","expiry_date":{exp}{refresh}}}"#)
    }

    const OAUTH_SELECTED: &str = r#"{"security":{"auth":{"selectedType":"oauth-personal"}}}"#;

    #[test]
    fn missing_binary_is_not_installed() {
        let v = Case {
            obs: ProviderObservation::default(),
            env: EnvFileObservation::Absent,
        }
        .judge("gemini");
        assert_eq!(v.state, State::NotInstalled);
        assert!(v.detail.contains("gemini"));
    }

    #[test]
    fn nothing_found_needs_auth_with_remedy() {
        let v = installed().judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail.contains("fleetauth auth set gemini"),
            "{}",
            v.detail
        );
        assert!(v.detail.contains("GEMINI_API_KEY"));
        assert_eq!(v.version.as_deref(), Some("0.61.0"));
    }

    const MIN: u64 = 60;

    fn claude_login(expires_in_s: i64, refresh: Option<Option<i64>>) -> String {
        let exp = (NOW as i64 + expires_in_s) * 1000;
        let refresh = match refresh {
            None => String::new(),
            Some(None) => r#","refreshToken":"sk-ant-ort01-r""#.to_string(),
            Some(Some(r)) => format!(
                r#","refreshToken":"sk-ant-ort01-r","refreshTokenExpiresAt":{}"#,
                (NOW as i64 + r) * 1000
            ),
        };
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-a"{refresh},"expiresAt":{exp},"scopes":["user:inference"]}}}}"#
        )
    }

    fn claude_for(login: &str, valid_for_s: u64) -> Verdict {
        installed()
            .file(".credentials.json", login)
            .judge_for("claude", Duration::from_secs(valid_for_s))
    }

    /// `--valid-for`: a login that cannot be refreshed must outlast the window; exactly at the
    /// boundary it does, a second less it does not.
    #[test]
    fn valid_for_boundaries_of_a_login_without_refresh_token() {
        let login = claude_login(30 * MIN as i64, None);
        let at = |w| claude_for(&login, w);
        assert_eq!(at(10 * MIN).state, State::Ready, "{}", at(10 * MIN).detail);
        assert!(
            at(10 * MIN).detail.contains("valid for 30m"),
            "{}",
            at(10 * MIN).detail
        );
        assert_eq!(at(30 * MIN).state, State::Ready, "exactly at the boundary");
        let inside = at(30 * MIN + 1);
        assert_eq!(inside.state, State::NeedsAuth, "{}", inside.detail);
        let hour = at(3600);
        assert_eq!(hour.state, State::NeedsAuth);
        assert!(
            hour.detail
                .contains("expires in 30m, within --valid-for 1h")
                && hour.detail.contains("cannot be refreshed"),
            "{}",
            hour.detail
        );
        assert_eq!(hour.source, None);
    }

    #[test]
    fn valid_for_a_refreshable_login_stays_ready_unless_its_refresh_token_lapses() {
        let w = 3600;
        let plain = claude_for(&claude_login(30 * MIN as i64, Some(None)), w);
        assert_eq!(plain.state, State::Ready, "{}", plain.detail);
        assert!(
            plain.detail.contains("expiring: 30m left"),
            "{}",
            plain.detail
        );
        let long = claude_for(&claude_login(30 * MIN as i64, Some(Some(2 * 3600))), w);
        assert_eq!(long.state, State::Ready, "{}", long.detail);
        let boundary = claude_for(&claude_login(30 * MIN as i64, Some(Some(3600))), w);
        assert_eq!(
            boundary.state,
            State::Ready,
            "refresh token lasting exactly the window"
        );
        let short = claude_for(&claude_login(30 * MIN as i64, Some(Some(50 * 60))), w);
        assert_eq!(short.state, State::NeedsAuth);
        assert!(
            short
                .detail
                .contains("expires in 30m and its refresh token in 50m, within --valid-for 1h"),
            "{}",
            short.detail
        );
        // The access token outlasts the window: its refresh token's end does not matter yet.
        let outlasts = claude_for(&claude_login(2 * 3600, Some(Some(50 * 60))), w);
        assert_eq!(outlasts.state, State::Ready, "{}", outlasts.detail);
        // Expired, refreshable, but the refresh token lapses within the window.
        let expired = claude_for(&claude_login(-3600, Some(Some(20 * 60))), w);
        assert_eq!(expired.state, State::NeedsAuth);
        assert!(
            expired.detail.contains(
                "expired 1h ago and its refresh token expires in 20m, within --valid-for 1h"
            ),
            "{}",
            expired.detail
        );
        assert_eq!(
            claude_for(&claude_login(-3600, Some(Some(20 * 60))), 10 * MIN).state,
            State::Ready
        );
    }

    #[test]
    fn valid_for_also_holds_when_the_prompt_answers() {
        let login = claude_login(30 * MIN as i64, None);
        let case = installed().file(".credentials.json", &login).prompt(
            0,
            r#"{"type":"result","is_error":false,"result":"OK"}"#,
            "",
        );
        let short = case.judge_for("claude", Duration::from_secs(10 * MIN));
        assert_eq!(short.state, State::Ready, "{}", short.detail);
        let long = case.judge_for("claude", Duration::from_secs(3600));
        assert_eq!(long.state, State::NeedsAuth);
        assert!(
            long.detail
                .starts_with("prompt answered, but oauth token expires in 30m"),
            "{}",
            long.detail
        );
    }

    #[test]
    fn a_short_lived_github_token_is_never_ready() {
        let mut case = installed().env_file(&["COPILOT_GITHUB_TOKEN"]);
        case.obs
            .env_file_prefixes
            .insert("COPILOT_GITHUB_TOKEN".into(), "ghu_".into());
        let v = case.judge("copilot");
        assert_eq!(v.state, State::NeedsAuth, "{}", v.detail);
        assert!(
            v.detail
                .contains("COPILOT_GITHUB_TOKEN (env file) is a ghu_ token")
                && v.detail.contains("within 8h of being issued")
                && v.detail.contains("may lapse within --valid-for 1h")
                && v.detail.contains("fleetauth auth set copilot"),
            "{}",
            v.detail
        );
        let long = case.judge_for("copilot", Duration::from_secs(8 * 3600));
        assert!(
            long.detail.contains("it lapses within --valid-for 8h"),
            "{}",
            long.detail
        );
        // A prefix the data does not declare, or none, is a plain token.
        case.obs
            .env_file_prefixes
            .insert("COPILOT_GITHUB_TOKEN".into(), "gho_".into());
        assert_eq!(case.judge("copilot").state, State::Ready);
        // In the member's own environment too.
        let mut amb = installed().ambient("GH_TOKEN");
        amb.obs
            .ambient_prefixes
            .insert("GH_TOKEN".into(), "ghu_".into());
        let v = amb.judge("copilot");
        assert!(
            v.state == State::NeedsAuth && v.detail.contains("GH_TOKEN (environment) is a ghu_"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn oauth_states_by_expiry() {
        let at = |off, refresh| {
            installed()
                .file(".gemini/settings.json", OAUTH_SELECTED)
                .file(".gemini/oauth_creds.json", &gemini_oauth(off, refresh))
                .judge("gemini")
        };
        let valid = at(5 * 3600, true);
        assert_eq!(
            (valid.state, valid.source.map(Source::as_str)),
            (State::Ready, Some("oauth_file"))
        );
        assert!(valid.detail.contains("valid for 5h"), "{}", valid.detail);
        let expiring = at(30 * 60, true);
        assert_eq!(expiring.state, State::Ready);
        assert!(
            expiring.detail.contains("expiring: 30m left"),
            "{}",
            expiring.detail
        );
        let refreshable = at(-2 * 3600, true);
        assert_eq!(refreshable.state, State::Ready);
        assert!(
            refreshable.detail.contains("refreshable"),
            "{}",
            refreshable.detail
        );
        let expired = at(-2 * 3600, false);
        assert_eq!(expired.state, State::NeedsAuth);
        assert!(
            expired.detail.contains("expired 2h ago, no refresh token"),
            "{}",
            expired.detail
        );
    }

    #[test]
    fn malformed_oauth_file_needs_auth() {
        let v = installed()
            .file(".gemini/settings.json", OAUTH_SELECTED)
            .file(".gemini/oauth_creds.json", "{not json")
            .judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(v.detail.contains("malformed"), "{}", v.detail);
    }

    #[test]
    fn gemini_oauth_file_without_selection_is_not_used() {
        let v = installed()
            .file(".gemini/oauth_creds.json", &gemini_oauth(3600 * 5, true))
            .judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
    }

    #[test]
    fn env_file_key_makes_ready_without_deep() {
        let v = installed()
            .env_file(&["FOO", "GEMINI_API_KEY"])
            .judge("gemini");
        assert_eq!(
            (v.state, v.source.map(Source::as_str)),
            (State::Ready, Some("env_file"))
        );
        let v = installed().ambient("GEMINI_API_KEY").judge("gemini");
        assert_eq!(
            (v.state, v.source.map(Source::as_str)),
            (State::Ready, Some("env"))
        );
    }

    #[test]
    fn gemini_setting_shadows_api_key() {
        let v = installed()
            .file(".gemini/settings.json", OAUTH_SELECTED)
            .file(".gemini/oauth_creds.json", &gemini_oauth(-3600, false))
            .env_file(&["GEMINI_API_KEY"])
            .judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail
                .contains("selectedType=oauth-personal shadows GEMINI_API_KEY (env file)"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn setting_selecting_a_missing_credential_says_so() {
        let v = installed()
            .file(".gemini/settings.json", OAUTH_SELECTED)
            .judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail.contains("selects oauth-personal but"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn claude_stale_api_key_shadows_oauth_token() {
        let case = installed().env_file(&["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]);
        let v = case.judge("claude");
        assert_eq!(v.state, State::Ready);
        assert!(
            v.detail.contains(
                "ANTHROPIC_API_KEY (env file) shadows CLAUDE_CODE_OAUTH_TOKEN (env file)"
            ),
            "{}",
            v.detail
        );
        let deep = case
            .prompt(1, r#"{"type":"result","is_error":true,"result":"Invalid API key · Fix external API key"}"#, "")
            .judge("claude");
        assert_eq!(deep.state, State::NeedsAuth);
        assert!(deep.detail.contains("Invalid API key"), "{}", deep.detail);
        assert!(
            deep.detail.contains("shadows CLAUDE_CODE_OAUTH_TOKEN"),
            "{}",
            deep.detail
        );
    }

    #[test]
    fn claude_oauth_credentials_file() {
        let exp = (NOW + 8 * 3600) * 1000;
        let v = installed()
            .file(
                ".credentials.json",
                &format!(r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-x","refreshToken":"r","expiresAt":{exp}}}}}"#),
            )
            .judge("claude");
        assert_eq!(
            (v.state, v.source.map(Source::as_str)),
            (State::Ready, Some("oauth_file"))
        );
    }

    #[test]
    fn one_malformed_file_is_reported_once() {
        let v = installed().file("auth.json", "{broken").judge("codex");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(v.detail.contains("malformed"), "{}", v.detail);
        assert!(!v.detail.contains("shadows"), "{}", v.detail);
    }

    #[test]
    fn codex_jwt_expiry_and_key_file() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |exp: u64| format!("{}.{}.sig", b64("{}"), b64(&format!("{{\"exp\":{exp}}}")));
        let chatgpt = |exp, refresh: &str| {
            format!(
                r#"{{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{{"access_token":"{}","refresh_token":"{refresh}"}}}}"#,
                jwt(exp)
            )
        };
        let v = installed()
            .file("auth.json", &chatgpt(NOW + 3 * 3600, "rt"))
            .judge("codex");
        assert_eq!(
            (v.state, v.source.map(Source::as_str)),
            (State::Ready, Some("oauth_file")),
            "{}",
            v.detail
        );
        let v = installed()
            .file("auth.json", &chatgpt(NOW - 3600, ""))
            .judge("codex");
        assert_eq!(v.state, State::NeedsAuth, "{}", v.detail);
        let v = installed()
            .file(
                "auth.json",
                r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-proj-x"}"#,
            )
            .judge("codex");
        assert_eq!(
            (v.state, v.source.map(Source::as_str)),
            (State::Ready, Some("key_file"))
        );
    }

    #[test]
    fn deep_prompt_decides() {
        let ok = installed()
            .env_file(&["GEMINI_API_KEY"])
            .prompt(0, r#"{"response":"OK"}"#, "")
            .judge("gemini");
        assert_eq!(
            (ok.state, ok.source.map(Source::as_str)),
            (State::Ready, Some("probe"))
        );
        let hung = installed()
            .env_file(&["GEMINI_API_KEY"])
            .prompt(124, "", "Attempt 1 failed")
            .judge("gemini");
        assert_eq!(hung.state, State::Error);
        assert!(
            hung.detail.contains("timed out after 45s"),
            "{}",
            hung.detail
        );
        let rejected = installed()
            .env_file(&["GEMINI_API_KEY"])
            .prompt(1, "", r#"{"error":{"message":"[API Error: API key not valid. Please pass a valid API key.]"}}"#)
            .judge("gemini");
        assert_eq!(rejected.state, State::NeedsAuth);
        let onboarding = installed()
            .env_file(&["ANTHROPIC_API_KEY"])
            .prompt(0, "", "")
            .judge("claude");
        assert_eq!(onboarding.state, State::Error);
    }

    #[test]
    fn status_command_alone_is_presence() {
        let mut case = installed();
        case.obs.status_rc = Some(0);
        let v = case.judge("claude");
        assert_eq!(
            (v.state, v.source.map(Source::as_str)),
            (State::Ready, Some("status"))
        );
    }

    fn keychain(mut case: Case, id: &str, status: KeychainStatus, service: &str) -> Case {
        case.obs.keychains.insert(
            id.into(),
            crate::probe::KeychainObservation {
                status,
                service: service.into(),
                tool: "security".into(),
            },
        );
        case
    }

    #[test]
    fn claude_blanked_login_is_lost_not_malformed() {
        let v = installed()
            .file(
                ".credentials.json",
                r#"{"claudeAiOauth":{"accessToken":"","refreshToken":"","expiresAt":0}}"#,
            )
            .judge("claude");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail
                .contains("login lost (blanked after a failed refresh): .credentials.json"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn claude_refresh_token_expiry_kills_the_login() {
        let exp = (NOW - 7200) * 1000;
        let rexp = (NOW - 3600) * 1000;
        let v = installed()
            .file(
                ".credentials.json",
                &format!(r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-a","refreshToken":"sk-ant-ort01-r","expiresAt":{exp},"refreshTokenExpiresAt":{rexp}}}}}"#),
            )
            .judge("claude");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail.contains("refresh token itself expired 1h ago"),
            "{}",
            v.detail
        );
        // Before refreshTokenExpiresAt the refresh token still works.
        let rexp = (NOW + 3600) * 1000;
        let v = installed()
            .file(
                ".credentials.json",
                &format!(r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-a","refreshToken":"sk-ant-ort01-r","expiresAt":{exp},"refreshTokenExpiresAt":{rexp}}}}}"#),
            )
            .judge("claude");
        assert_eq!(v.state, State::Ready);
        assert!(v.detail.contains("refreshable"), "{}", v.detail);
    }

    #[test]
    fn locked_keychain_names_the_remedy_and_yields_to_the_file() {
        let locked = keychain(
            installed(),
            "keychain",
            KeychainStatus::Locked,
            "Claude Code-credentials",
        );
        let v = locked.judge("claude");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail
                .contains("keychain service \"Claude Code-credentials\""),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("push a non-rotating credential"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("log in once inside an SSH session"),
            "{}",
            v.detail
        );
        // A login written inside an SSH session is what claude reads then.
        let v = keychain(installed(), "keychain", KeychainStatus::Locked, "Claude Code-credentials")
            .file(
                ".credentials.json",
                &format!(r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-a","refreshToken":"r","expiresAt":{}}}}}"#, (NOW + 7200) * 1000),
            )
            .judge("claude");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::OauthFile)));
        assert!(!v.detail.contains("shadows"), "{}", v.detail);
        // Present: ready from the keychain, presence only.
        let v = keychain(
            installed(),
            "keychain",
            KeychainStatus::Present,
            "Claude Code-credentials-1a2b3c4d",
        )
        .judge("claude");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::Keychain)));
        assert!(
            v.detail
                .contains("\"Claude Code-credentials-1a2b3c4d\" present in the macOS keychain"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn claude_settings_env_block_and_api_key_helper() {
        let v = installed()
            .file(
                "/etc/claude-code/managed-settings.json",
                r#"{"apiKeyHelper":"/usr/local/bin/get-key"}"#,
            )
            .judge("claude");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::KeyFile)));
        assert!(
            v.detail
                .starts_with("/etc/claude-code/managed-settings.json apiKeyHelper set"),
            "{}",
            v.detail
        );
        let v = installed()
            .file("settings.json", r#"{"env":{"ANTHROPIC_API_KEY":"sk-ant-api03-x"}}"#)
            .file(".credentials.json", &format!(r#"{{"claudeAiOauth":{{"accessToken":"a","refreshToken":"r","expiresAt":{}}}}}"#, (NOW + 7200) * 1000))
            .judge("claude");
        assert!(
            v.detail
                .starts_with("settings.json env.ANTHROPIC_API_KEY set"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains("shadows .credentials.json"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn gemini_dotenv_system_settings_and_oauth_note() {
        let v = installed()
            .file(".env", "# mine\nexport GEMINI_API_KEY=\"AIza123\"\n")
            .judge("gemini");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::KeyFile)));
        assert!(
            v.detail.starts_with(".env GEMINI_API_KEY set"),
            "{}",
            v.detail
        );
        // An empty value is no key.
        let v = installed()
            .file(".gemini/.env", "GEMINI_API_KEY=\n")
            .judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
        // oauth-personal: presence, with the 2026-06 refusal spelled out.
        let v = installed()
            .file(".gemini/settings.json", OAUTH_SELECTED)
            .file(".gemini/oauth_creds.json", &gemini_oauth(7200, true))
            .judge("gemini");
        assert_eq!(v.state, State::Ready);
        assert!(v.detail.contains("since 2026-06-18"), "{}", v.detail);
        assert!(v.detail.contains("--deep tells"), "{}", v.detail);
        // The system settings override the user's.
        let v = installed()
            .file(".gemini/settings.json", OAUTH_SELECTED)
            .file(".gemini/oauth_creds.json", &gemini_oauth(7200, true))
            .file(
                "/etc/gemini-cli/settings.json",
                r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
            )
            .file(".gemini/.env", "GEMINI_API_KEY=AIza1\n")
            .judge("gemini");
        assert_eq!(v.state, State::Ready);
        assert!(
            v.detail.starts_with(".gemini/.env GEMINI_API_KEY set"),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains(
                "/etc/gemini-cli/settings.json security.auth.selectedType=gemini-api-key shadows"
            ),
            "{}",
            v.detail
        );
        // An administrator's enforcedType wins over every selectedType, the system one included.
        let v = installed()
            .file(".gemini/settings.json", OAUTH_SELECTED)
            .file(".gemini/oauth_creds.json", &gemini_oauth(7200, true))
            .file(
                "/etc/gemini-cli/settings.json",
                r#"{"security":{"auth":{"selectedType":"oauth-personal","enforcedType":"gemini-api-key"}}}"#,
            )
            .file(".gemini/.env", "GEMINI_API_KEY=AIza1\n")
            .judge("gemini");
        assert_eq!(v.state, State::Ready);
        assert!(
            v.detail.starts_with(".gemini/.env GEMINI_API_KEY set")
                && v.detail
                    .contains("security.auth.enforcedType=gemini-api-key"),
            "{}",
            v.detail
        );
        // The CLI's own encrypted key store: presence counts.
        let mut c = installed().file(
            ".gemini/settings.json",
            r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
        );
        c.obs
            .present_files
            .push(".gemini/gemini-credentials.json".into());
        let v = c.judge("gemini");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::KeyFile)));
        assert!(
            v.detail
                .contains(".gemini/gemini-credentials.json present (encrypted"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn gemini_loads_only_the_first_dotenv_file() {
        let ignored = ".env GEMINI_API_KEY is not read: .gemini/.env exists, and gemini loads only the first of them";
        // ~/.env alone is read.
        let v = installed()
            .file(".env", "GEMINI_API_KEY=AIza1\n")
            .judge("gemini");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::KeyFile)));
        assert!(
            v.detail.starts_with(".env GEMINI_API_KEY set"),
            "{}",
            v.detail
        );
        // ~/.gemini/.env without the key still hides ~/.env: nothing usable, and the detail
        // says why the key in ~/.env does not count.
        let v = installed()
            .file(".gemini/.env", "GOOGLE_CLOUD_PROJECT=p\n")
            .file(".env", "GEMINI_API_KEY=AIza1\n")
            .judge("gemini");
        assert_eq!((v.state, v.source), (State::NeedsAuth, None));
        assert!(v.detail.starts_with("no credential found"), "{}", v.detail);
        assert!(v.detail.ends_with(ignored), "{}", v.detail);
        // Both hold a key: the first is used, the second is not read (not "shadowed").
        let v = installed()
            .file(".gemini/.env", "GEMINI_API_KEY=AIza1\n")
            .file(".env", "GEMINI_API_KEY=AIza2\n")
            .judge("gemini");
        assert_eq!(v.state, State::Ready);
        assert_eq!(
            v.detail,
            format!(".gemini/.env GEMINI_API_KEY set; {ignored}")
        );
        // A key in the env file wins over both (a variable already set is never overridden).
        let v = installed()
            .env_file(&["GEMINI_API_KEY"])
            .file(".gemini/.env", "GEMINI_API_KEY=AIza1\n")
            .file(".env", "GEMINI_API_KEY=AIza2\n")
            .judge("gemini");
        assert_eq!(v.source, Some(Source::EnvFile));
        assert!(
            v.detail.contains("shadows .gemini/.env GEMINI_API_KEY") && v.detail.contains(ignored),
            "{}",
            v.detail
        );
    }

    #[test]
    fn gemini_login_moved_by_force_encrypted_storage() {
        // GEMINI_FORCE_ENCRYPTED_FILE_STORAGE deletes oauth_creds.json: the keychain entry, else
        // the encrypted file, holds the login; neither is needs_auth for lack of the file.
        let mut c = installed().file(".gemini/settings.json", OAUTH_SELECTED);
        c.obs
            .present_files
            .push(".gemini/gemini-credentials.json".into());
        let v = c.judge("gemini");
        assert_eq!(
            (v.state, v.source),
            (State::Ready, Some(Source::KeyFile)),
            "{}",
            v.detail
        );
        assert!(
            v.detail.contains(
                "the login GEMINI_FORCE_ENCRYPTED_FILE_STORAGE moved out of oauth_creds.json"
            ),
            "{}",
            v.detail
        );
    }

    #[test]
    fn gemini_probe_texts_and_exit_codes() {
        let oauth = || {
            installed()
                .file(".gemini/settings.json", OAUTH_SELECTED)
                .file(".gemini/oauth_creds.json", &gemini_oauth(7200, true))
        };
        let v = oauth()
            .prompt(1, "", "IneligibleTierError: This client is no longer supported for Gemini Code Assist for individuals. To continue using Gemini, please migrate to the Antigravity suite of products")
            .judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail.contains("API key") && v.detail.contains("`agy`"),
            "{}",
            v.detail
        );
        let v = oauth()
            .prompt(1, "", "GaxiosError: invalid_grant")
            .judge("gemini");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(v.detail.contains("invalid_grant"), "{}", v.detail);
        for (rc, state, text) in [
            (42, State::Error, "exit 42"),
            (44, State::Error, "exit 44"),
            (52, State::Error, "exit 52"),
            (53, State::Ready, "prompt answered"),
            (54, State::Ready, "prompt answered"),
            (55, State::Error, "exit 55"),
        ] {
            let v = oauth().prompt(rc, "", "").judge("gemini");
            assert_eq!(v.state, state, "exit {rc}: {}", v.detail);
            assert!(v.detail.contains(text), "exit {rc}: {}", v.detail);
        }
    }

    #[test]
    fn codex_stores_and_auth_json_kinds() {
        // keyring store, auth.json gone: not "no login".
        let c = installed().file("config.toml", "cli_auth_credentials_store = \"keyring\"\n");
        let v = c.judge("codex");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(v.detail.contains("config.toml cli_auth_credentials_store selects keyring but keychain service \"Codex Auth\""), "{}", v.detail);
        assert!(
            v.detail.contains("no `security` or `secret-tool`"),
            "{}",
            v.detail
        );
        let v = keychain(
            installed().file("config.toml", "cli_auth_credentials_store = \"keyring\"\n"),
            "keyring",
            KeychainStatus::Present,
            "Codex Auth",
        )
        .judge("codex");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::Keychain)));
        // A static token above the store still wins.
        let v = installed()
            .file("config.toml", "cli_auth_credentials_store = \"keyring\"\n")
            .ambient("CODEX_ACCESS_TOKEN")
            .judge("codex");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::Env)));
        // file store: the order as usual.
        let v = installed()
            .file("config.toml", "cli_auth_credentials_store = \"file\"\n")
            .file(
                "auth.json",
                r#"{"auth_mode":"personalAccessToken","personal_access_token":"at-1"}"#,
            )
            .judge("codex");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::KeyFile)));
        assert!(
            v.detail.starts_with("auth.json personal_access_token set"),
            "{}",
            v.detail
        );
        let v = installed()
            .file(
                "auth.json",
                r#"{"auth_mode":"agentIdentity","agent_identity":{"token":"j.w.t"}}"#,
            )
            .judge("codex");
        assert_eq!(v.state, State::Ready, "{}", v.detail);
        let v = installed()
            .file("auth.json", r#"{"auth_mode":"bedrock","bedrock_access_keys":{"access_key_id":"A","secret_access_key":"B"}}"#)
            .judge("codex");
        assert_eq!(v.state, State::Ready, "{}", v.detail);
        assert!(v.detail.contains("selects another backend"), "{}", v.detail);
    }

    #[test]
    fn copilot_tokens_keychain_and_gh_login() {
        let v = installed()
            .file("config.json", r#"{"copilot_tokens":{"https://github.com:octo":"gho_abc"},"last_logged_in_user":{"host":"https://github.com","login":"octo"}}"#)
            .judge("copilot");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::KeyFile)));
        assert!(
            v.detail.starts_with("config.json copilot_tokens.* set"),
            "{}",
            v.detail
        );
        // The old, invented field is not a login.
        let v = installed()
            .file("config.json", r#"{"github_token":"gho_abc"}"#)
            .judge("copilot");
        assert_eq!(v.state, State::NeedsAuth);
        let v = installed()
            .file(
                "~/.config/gh/hosts.yml",
                "github.com:\n    oauth_token: gho_x\n    user: octo\n    git_protocol: https\n",
            )
            .judge("copilot");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::KeyFile)));
        assert!(
            v.detail
                .starts_with("~/.config/gh/hosts.yml github.com.oauth_token set"),
            "{}",
            v.detail
        );
        let v = keychain(
            installed(),
            "keychain",
            KeychainStatus::Present,
            "copilot-cli",
        )
        .judge("copilot");
        assert_eq!((v.state, v.source), (State::Ready, Some(Source::Keychain)));
        let v = installed()
            .ambient("COPILOT_PROVIDER_BASE_URL")
            .judge("copilot");
        assert!(v.detail.contains("selects another backend"), "{}", v.detail);
        let v = installed()
            .env_file(&["COPILOT_GITHUB_TOKEN"])
            .prompt(
                1,
                "",
                "Error: Token (classic) rejected. Use a fine-grained token.",
            )
            .judge("copilot");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(
            v.detail.contains("classic personal access token"),
            "{}",
            v.detail
        );
    }

    #[test]
    fn claude_locked_keychain_text_from_the_prompt() {
        let v = installed()
            .prompt(1, r#"{"type":"result","is_error":true,"result":"Not logged in · login keychain is locked · Please run /login"}"#, "")
            .judge("claude");
        assert_eq!(v.state, State::NeedsAuth);
        assert!(v.detail.contains("keychain is locked"), "{}", v.detail);
    }
}
