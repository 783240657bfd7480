//! No futile pushes: would a key take effect on a member, decided before it is pushed.
//!
//! A CLI reads its credentials in a fixed precedence, and [`crate::assess::resolve`] already
//! says which one wins on a member as observed. Here the member is replayed as it would be
//! *after* the push — the key's variable in fleetauth's env file, or the file its login command
//! writes — and resolved again. When the installed credential does not win, the push cannot take
//! effect: every run would push, fail verification, restore and log another failure. Provisioning
//! then writes nothing and reports `blocked`, naming what wins and how to remove it.
//!
//! Some obstacles fleetauth can remove safely (`provision --fix-shadowing`): another variable in
//! the env file it manages, and a settings value in a JSON settings file in the CLI's own config
//! home that can be set to the value selecting the pushed key (gemini's user `selectedType`).
//! They are applied to the replay one at a time until the key wins, or until an obstacle remains
//! that only the member's owner or administrator can remove: a variable in the member's own
//! environment, a system or managed settings file, a keychain entry, another CLI's file.
//!
//! Pure code over observations, with the clock passed in, like `assess`.

use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretSlice};

use crate::assess::{CredStatus, Found, Origin, resolve};
use crate::probe::{EnvFileObservation, FileObservation, ProviderObservation};
use crate::provider::{Credential, FileFormat, Install, Provider, PushKey};

/// A change `--fix-shadowing` makes on the member, in the push's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Remove the assignment of this variable from fleetauth's env file.
    DropEnvVar(String),
    /// Set the string at `pointer` in the JSON settings file `file` (relative to the CLI's
    /// config home) to `value`.
    SetSetting {
        file: String,
        pointer: String,
        value: String,
    },
}

/// Something higher in the CLI's precedence than the key about to be pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obstacle {
    /// What wins: `~/.gemini/settings.json security.auth.selectedType=oauth-personal`.
    pub what: String,
    /// What to change on the member, in the operator's terms.
    pub remedy: String,
    /// How `--fix-shadowing` removes it, if it can do so safely.
    pub fix: Option<Fix>,
}

/// Whether a push would take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shadowing {
    /// Nothing wins over the pushed key (or fleetauth cannot tell: no credential describes it).
    Clear,
    /// The key wins once these obstacles are removed, and `--fix-shadowing` can remove each.
    Fixable(Vec<Obstacle>),
    /// `by` wins over the key and fleetauth cannot remove it safely; `fixable` are the
    /// obstacles before it that `--fix-shadowing` could remove.
    Blocked {
        fixable: Vec<Obstacle>,
        by: Obstacle,
    },
}

impl Shadowing {
    /// The fixes `--fix-shadowing` makes when the key wins after them.
    pub fn fixes(&self) -> Vec<&Fix> {
        match self {
            Shadowing::Fixable(obstacles) => {
                obstacles.iter().filter_map(|o| o.fix.as_ref()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The `blocked` detail for a push of `target`, or None when the push goes ahead (nothing
    /// in the way, or only what `--fix-shadowing`, given, removes).
    pub fn blocked_detail(&self, target: &str, fix_shadowing: bool) -> Option<String> {
        match self {
            Shadowing::Clear => None,
            Shadowing::Fixable(_) if fix_shadowing => None,
            Shadowing::Fixable(obstacles) => {
                let first = obstacles.first()?;
                let more = obstacles[1..]
                    .iter()
                    .map(|o| format!("; then {} would win: {}", o.what, o.remedy))
                    .collect::<String>();
                Some(format!(
                    "blocked: {target} would be shadowed by {}; {}{more} — or run `fleetauth provision --fix-shadowing`, which does it in the push's transaction and undoes it if the key does not verify",
                    first.what, first.remedy
                ))
            }
            Shadowing::Blocked { fixable, by } => {
                let also = match fixable.as_slice() {
                    [] => String::new(),
                    fixes => format!(
                        " (after {}, which --fix-shadowing would change)",
                        fixes
                            .iter()
                            .map(|o| o.what.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                Some(format!(
                    "blocked: {target} would be shadowed by {}{also}; {} (fleetauth does not change it, not even with --fix-shadowing)",
                    by.what, by.remedy
                ))
            }
        }
    }
}

/// The credential `key` becomes once installed, by id.
fn target_id<'p>(provider: &'p Provider, key: &'p PushKey) -> Option<&'p str> {
    if let Some(id) = &key.credential {
        return Some(id);
    }
    match &key.install {
        Install::EnvFile { var } => provider.credentials.iter().find_map(|c| match c {
            Credential::Env { var: v, id, .. } if v == var => Some(id.as_str()),
            _ => None,
        }),
        Install::LoginCommand { .. } => None,
    }
}

/// The member as observed, with changes applied: what `resolve` reads.
struct Replay {
    obs: ProviderObservation,
    env: EnvFileObservation,
}

impl Replay {
    fn of(obs: &ProviderObservation, env: &EnvFileObservation) -> Replay {
        let files = obs
            .files
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    FileObservation::Present(b) => {
                        FileObservation::Present(b.expose_secret().to_vec().into())
                    }
                    FileObservation::Unreadable => FileObservation::Unreadable,
                };
                (k.clone(), v)
            })
            .collect();
        Replay {
            obs: ProviderObservation {
                ambient: obs.ambient.clone(),
                ambient_in: obs.ambient_in.clone(),
                files,
                present_files: obs.present_files.clone(),
                keychains: obs.keychains.clone(),
                ..Default::default()
            },
            env: env.clone(),
        }
    }

    fn set_env_name(&mut self, var: &str, present: bool) {
        let mut names = match &self.env {
            EnvFileObservation::Present(n) => n.clone(),
            _ => Vec::new(),
        };
        names.retain(|n| n != var);
        if present {
            names.push(var.to_string());
        }
        self.env = EnvFileObservation::Present(names);
    }

    /// Install the key as `target` would hold it. False when fleetauth cannot replay it.
    fn install(&mut self, target: &Credential) -> bool {
        match target {
            Credential::Env { var, .. } => {
                self.set_env_name(var, true);
                true
            }
            // A login command writes the file anew (codex: {"auth_mode":"apikey","OPENAI_API_KEY":…}).
            Credential::KeyFile {
                file,
                pointer,
                format: FileFormat::Json,
                ..
            } => {
                let mut v = serde_json::Value::String("pushed".into());
                for part in pointer.trim_start_matches('/').split('/').rev() {
                    let mut m = serde_json::Map::new();
                    m.insert(part.replace("~1", "/").replace("~0", "~"), v);
                    v = serde_json::Value::Object(m);
                }
                self.obs.files.insert(
                    file.clone(),
                    FileObservation::Present(v.to_string().into_bytes().into()),
                );
                true
            }
            _ => false,
        }
    }

    /// Apply a fix; false when it cannot be applied to what was observed.
    fn apply(&mut self, fix: &Fix) -> bool {
        match fix {
            Fix::DropEnvVar(var) => {
                self.set_env_name(var, false);
                true
            }
            Fix::SetSetting {
                file,
                pointer,
                value,
            } => {
                let Some(FileObservation::Present(bytes)) = self.obs.files.get(file) else {
                    return false;
                };
                match set_json_string(bytes.expose_secret(), pointer, value) {
                    Some(new) => {
                        self.obs
                            .files
                            .insert(file.clone(), FileObservation::Present(new.into()));
                        true
                    }
                    None => false,
                }
            }
        }
    }
}

/// Decide whether pushing `key` to a member observed as `obs` (its env file as `env`, at
/// `env_file`) would take effect, and what `--fix-shadowing` could remove.
pub fn check(
    provider: &Provider,
    key: &PushKey,
    obs: &ProviderObservation,
    env: &EnvFileObservation,
    env_file: &str,
    now: SystemTime,
) -> Shadowing {
    let Some(target_id) = target_id(provider, key) else {
        return Shadowing::Clear;
    };
    let Some(target) = provider.credentials.iter().find(|c| c.id() == target_id) else {
        return Shadowing::Clear;
    };
    let mut replay = Replay::of(obs, env);
    if !replay.install(target) {
        return Shadowing::Clear;
    }
    let mut fixable: Vec<Obstacle> = Vec::new();
    for _ in 0..=provider.credentials.len() {
        let res = resolve(provider, &replay.obs, &replay.env, now);
        let wins = res
            .effective
            .as_ref()
            .is_some_and(|e| e.credential.id() == target_id);
        if wins {
            break;
        }
        // A setting that decided is the obstacle, whatever it selected; else what won.
        let Some(winner) = res.setting.as_ref().or(res.effective.as_ref()) else {
            break;
        };
        let obstacle = obstacle(provider, obs, winner, target_id, env_file);
        match obstacle.fix.clone() {
            Some(fix) if replay.apply(&fix) => fixable.push(obstacle),
            _ => {
                return Shadowing::Blocked {
                    fixable,
                    by: Obstacle {
                        fix: None,
                        ..obstacle
                    },
                };
            }
        }
    }
    match fixable.is_empty() {
        true => Shadowing::Clear,
        false => Shadowing::Fixable(fixable),
    }
}

/// A relative credential file as the operator finds it: `~/.gemini/settings.json`.
fn shown_path(provider: &Provider, file: &str) -> String {
    if file.starts_with('/') || file.starts_with('~') {
        return file.to_string();
    }
    let home = provider.config_home.default.trim_end_matches('/');
    format!("{home}/{file}")
}

fn obstacle(
    provider: &Provider,
    obs: &ProviderObservation,
    winner: &Found<'_>,
    target_id: &str,
    env_file: &str,
) -> Obstacle {
    let label = winner.label();
    let file = winner
        .credential
        .file()
        .or(winner.credential.presence_file());
    let (what, path) = match file {
        Some(f) if label.starts_with(f) => {
            let p = shown_path(provider, f);
            (format!("{p}{}", &label[f.len()..]), p)
        }
        Some(f) => (label.clone(), shown_path(provider, f)),
        None => (label.clone(), String::new()),
    };
    let mut fix = None;
    let remedy = match (winner.credential, winner.origin) {
        (Credential::Env { var, .. }, Origin::EnvFile) => {
            fix = Some(Fix::DropEnvVar(var.clone()));
            format!("remove {var} from {env_file} on the member")
        }
        (Credential::Env { var, .. }, _) => match obs.ambient_in.get(var.as_str()) {
            Some(files) if !files.is_empty() => format!(
                "{var} is set in the member's own environment, outside fleetauth's env file: remove it from {}",
                files.join(", ")
            ),
            _ => format!(
                "{var} is set in the member's own environment, outside fleetauth's env file, and no startup file \
                 fleetauth reads assigns it (~/.profile, ~/.bashrc, ~/.zshenv, ~/.ssh/environment, /etc/environment, \
                 /etc/profile.d/*, /etc/ssh/sshd_config): look for sshd SetEnv in another sshd configuration, or the \
                 environment sshd itself was started with, and unset it there"
            ),
        },
        (
            Credential::Setting {
                file,
                path_env,
                format,
                pointer,
                selects,
                ..
            },
            _,
        ) => {
            let current = match &winner.status {
                CredStatus::Selects(v) => v.clone(),
                _ => String::new(),
            };
            let wanted = selects
                .iter()
                .find(|(_, ids)| ids.iter().any(|i| i == target_id))
                .map(|(v, _)| v.clone());
            let at = pointer.trim_start_matches('/').replace('/', ".");
            let own_file = path_env.is_none() && !file.starts_with('/') && !file.starts_with('~');
            match wanted {
                Some(v) if own_file && *format == FileFormat::Json => {
                    fix = Some(Fix::SetSetting {
                        file: file.clone(),
                        pointer: pointer.clone(),
                        value: v.clone(),
                    });
                    format!("set {at} to \"{v}\" in {path}")
                }
                Some(v) if !own_file => format!(
                    "an administrator's setting: change {at} to \"{v}\" (or remove it) in {path}"
                ),
                Some(v) => format!("set {at} to \"{v}\" in {path}"),
                None => format!(
                    "change {at} in {path} so that it no longer selects \"{current}\" (no value of it selects the pushed key)"
                ),
            }
        }
        (Credential::Keychain { .. }, _) => format!(
            "the {label} entry in the member's keychain wins: log out of it there, or remove the entry"
        ),
        (Credential::KeyFile { pointer, .. }, _) => format!(
            "remove {} from {path} on the member",
            pointer.trim_start_matches('/').replace('/', ".")
        ),
        (Credential::OauthFile { .. } | Credential::PresentFile { .. }, _) => {
            format!("log out of that login on the member (or remove {path})")
        }
    };
    let what = match &winner.status {
        CredStatus::Selects(v) => format!("{what}={v}"),
        _ => what,
    };
    Obstacle { what, remedy, fix }
}

/// `bytes` (a JSON document) with the string at `pointer` set to `value`, every other byte kept
/// where possible: each occurrence of the current value's JSON text is tried in turn, and the
/// first whose replacement parses to exactly the wanted document is taken. Else the document is
/// written anew (pretty, keys sorted). None when `bytes` is not JSON or `pointer` names no
/// string.
pub fn set_json_string(bytes: &[u8], pointer: &str, value: &str) -> Option<Vec<u8>> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let current = doc.pointer(pointer)?.as_str()?.to_string();
    let mut wanted = doc.clone();
    *wanted.pointer_mut(pointer)? = serde_json::Value::String(value.to_string());
    let old = serde_json::to_string(&current).ok()?;
    let new = serde_json::to_string(value).ok()?;
    let text = std::str::from_utf8(bytes).ok()?;
    for (at, _) in text.match_indices(&old) {
        let candidate = format!("{}{new}{}", &text[..at], &text[at + old.len()..]);
        if serde_json::from_str::<serde_json::Value>(&candidate)
            .ok()
            .as_ref()
            == Some(&wanted)
        {
            return Some(candidate.into_bytes());
        }
    }
    let mut out = serde_json::to_vec_pretty(&wanted).ok()?;
    out.push(b'\n');
    Some(out)
}

/// One settings file `--fix-shadowing` replaces: its path under the config home, the bytes the
/// probe read (the member checks the file still holds them) and the new bytes.
pub struct SettingsEdit {
    pub file: String,
    pub old: SecretSlice<u8>,
    pub new: SecretSlice<u8>,
}

/// The bytes `--fix-shadowing` writes to each settings file, from what was observed: one
/// entry per file, every fix to it applied. None when a fix cannot be applied (the file was not
/// read, or is no longer JSON).
pub fn settings_edits(fixes: &[&Fix], obs: &ProviderObservation) -> Option<Vec<SettingsEdit>> {
    let mut out: Vec<SettingsEdit> = Vec::new();
    for fix in fixes {
        let Fix::SetSetting {
            file,
            pointer,
            value,
        } = fix
        else {
            continue;
        };
        let idx = match out.iter().position(|e| &e.file == file) {
            Some(i) => i,
            None => {
                let Some(FileObservation::Present(b)) = obs.files.get(file) else {
                    return None;
                };
                let old: SecretSlice<u8> = b.expose_secret().to_vec().into();
                let same: SecretSlice<u8> = b.expose_secret().to_vec().into();
                out.push(SettingsEdit {
                    file: file.clone(),
                    old,
                    new: same,
                });
                out.len() - 1
            }
        };
        let new = set_json_string(out[idx].new.expose_secret(), pointer, value)?;
        out[idx].new = new.into();
    }
    Some(out)
}

/// Plain-words list of what the fixes change, for `--check` and the row's detail.
pub fn describe_fixes(fixes: &[&Fix], provider: &Provider, env_file: &str) -> String {
    fixes
        .iter()
        .map(|f| match f {
            Fix::DropEnvVar(var) => format!("remove {var} from {env_file}"),
            Fix::SetSetting {
                file,
                pointer,
                value,
            } => format!(
                "set {} to \"{value}\" in {}",
                pointer.trim_start_matches('/').replace('/', "."),
                shown_path(provider, file)
            ),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod tests;
