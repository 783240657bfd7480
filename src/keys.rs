//! Where the keys pushed to members come from, on the operator's side.
//!
//! First found wins: the local encrypted store (`fleetauth auth set`), the operator's
//! environment (the provider's variable, e.g. `GEMINI_API_KEY`), then a hidden prompt — asked
//! at most once per provider per run, only on a terminal and never with `--no-input`. A key
//! never travels through argv: it is read from the store, the environment or the terminal and
//! held as a [`SecretString`] until it is written to an SSH channel's stdin.

use std::io::IsTerminal;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use crate::mask;
use crate::provider::Provider;
use crate::store::{IndexEntry, Store};

/// Environment variable holding the store's passphrase for non-interactive runs.
pub const PASSPHRASE_ENV: &str = "FLEETAUTH_PASSPHRASE";

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Store,
    Env,
    Prompt,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Store => "store",
            KeySource::Env => "env",
            KeySource::Prompt => "prompt",
        }
    }
}

/// A key ready to push. `Debug` shows only the masked form.
pub struct CollectedKey {
    pub value: SecretString,
    pub source: KeySource,
}

impl std::fmt::Debug for CollectedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CollectedKey({}, {})",
            self.masked(),
            self.source.as_str()
        )
    }
}

impl CollectedKey {
    pub fn masked(&self) -> String {
        mask::mask(&self.value)
    }
    pub fn fingerprint(&self) -> String {
        mask::fingerprint(&self.value)
    }
    /// `GEMINI_API_KEY AIz…7x2f`
    pub fn label(&self, provider: &Provider) -> String {
        format!("{} {}", provider.key_env, self.masked())
    }
    /// What `--check` says it would do.
    pub fn describe(&self, provider: &Provider, env_file: &str) -> String {
        match &provider.install {
            crate::provider::Install::EnvFile { var } => format!(
                "{var}={} (from {}) into {env_file}",
                self.masked(),
                self.source.as_str()
            ),
            crate::provider::Install::LoginCommand { args } => format!(
                "{} (from {}) with `{} {}`",
                self.label(provider),
                self.source.as_str(),
                provider.binary,
                args.join(" ")
            ),
        }
    }
}

/// Whether a key for a provider can be had, decided without asking for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAvailability {
    Store,
    Env,
    Prompt,
    None,
}

impl KeyAvailability {
    pub fn is_available(&self) -> bool {
        *self != KeyAvailability::None
    }
}

/// Hands out keys for one run.
pub struct KeyBroker {
    store: Option<Store>,
    index: Vec<IndexEntry>,
    store_problem: Option<String>,
    passphrase: Option<SecretString>,
    interactive: bool,
}

impl KeyBroker {
    /// `interactive` = may prompt (a terminal and no `--no-input`).
    pub fn new(store_dir: Option<PathBuf>, interactive: bool) -> KeyBroker {
        let interactive = interactive && std::io::stdin().is_terminal();
        let mut broker = KeyBroker {
            store: None,
            index: Vec::new(),
            store_problem: None,
            passphrase: None,
            interactive,
        };
        let Some(dir) = store_dir else { return broker };
        if !dir.exists() {
            return broker;
        }
        match Store::open(dir).and_then(|s| s.index().map(|i| (s, i))) {
            Ok((store, index)) => {
                broker.store = Some(store);
                broker.index = index;
            }
            Err(e) => broker.store_problem = Some(e.to_string()),
        }
        broker
    }

    fn in_store(&self, provider: &Provider) -> bool {
        self.index.iter().any(|e| e.provider == provider.name)
    }

    fn from_env(provider: &Provider) -> Option<SecretString> {
        std::env::var(&provider.key_env)
            .ok()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    }

    pub fn availability(&self, provider: &Provider, may_prompt: bool) -> KeyAvailability {
        if self.in_store(provider) {
            KeyAvailability::Store
        } else if std::env::var_os(&provider.key_env).is_some_and(|v| !v.is_empty()) {
            KeyAvailability::Env
        } else if self.interactive && may_prompt {
            KeyAvailability::Prompt
        } else {
            KeyAvailability::None
        }
    }

    fn passphrase(&mut self) -> Result<SecretString, KeyError> {
        if let Some(p) = &self.passphrase {
            return Ok(p.clone());
        }
        let p = match std::env::var(PASSPHRASE_ENV) {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ if self.interactive => rpassword::prompt_password("fleetauth store passphrase: ")
                .map(SecretString::from)
                .map_err(|e| KeyError::Terminal(format!("the store passphrase: {e}")))?,
            _ => return Err(KeyError::StoreLocked),
        };
        self.passphrase = Some(p.clone());
        Ok(p)
    }

    /// Get the key for `provider`: store, environment, then (if `may_prompt`) a hidden prompt.
    /// The error says what the operator can do; it never contains the key.
    pub fn collect(
        &mut self,
        provider: &Provider,
        may_prompt: bool,
    ) -> Result<CollectedKey, KeyError> {
        if let Some(problem) = &self.store_problem {
            tracing::warn!("local credential store not used: {problem}");
        }
        if self.in_store(provider) {
            let pass = self.passphrase()?;
            let store = self.store.as_ref().expect("index implies store");
            match store.get(&provider.name, &pass) {
                Ok(Some(value)) => return checked(provider, value, KeySource::Store),
                Ok(None) => {}
                Err(e) => {
                    return Err(KeyError::Store {
                        provider: provider.name.clone(),
                        why: e.to_string(),
                    });
                }
            }
        }
        if let Some(value) = Self::from_env(provider) {
            return checked(provider, value, KeySource::Env);
        }
        if may_prompt && self.interactive {
            let value = rpassword::prompt_password(format!(
                "{} key for {} members ({}; input hidden): ",
                provider.display_name, provider.name, provider.key_env
            ))
            .map_err(|e| KeyError::Terminal(format!("the key: {e}")))?;
            let value = SecretString::from(value.trim().to_string());
            return checked(provider, value, KeySource::Prompt);
        }
        if !may_prompt && self.interactive {
            return Err(KeyError::WouldPrompt);
        }
        Err(KeyError::NoKey {
            provider: provider.name.clone(),
            key_env: provider.key_env.clone(),
        })
    }
}

/// Why no key could be had for a provider. Never carries the key: at most its masked form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the local credential store is encrypted: set {PASSPHRASE_ENV} or run on a terminal")]
    StoreLocked,
    #[error("cannot read {0}")]
    Terminal(String),
    #[error("cannot read the {provider} key from the store: {why}")]
    Store { provider: String, why: String },
    #[error("the key would be asked at a prompt (not in --check)")]
    WouldPrompt,
    #[error("no {provider} key: run `fleetauth auth set {provider}` or `export {key_env}=…`")]
    NoKey { provider: String, key_env: String },
    #[error(
        "the {provider} key from {from} ({masked}) does not look like a {display} key (expected {pattern}); refusing to push it"
    )]
    Malformed {
        provider: String,
        from: &'static str,
        masked: String,
        display: String,
        pattern: String,
    },
}

/// Refuse a key that does not look like the provider's before it goes anywhere.
fn checked(
    provider: &Provider,
    value: SecretString,
    source: KeySource,
) -> Result<CollectedKey, KeyError> {
    if let Some(pattern) = &provider.key_pattern
        && !pattern.is_match(value.expose_secret())
    {
        return Err(KeyError::Malformed {
            provider: provider.name.clone(),
            from: source.as_str(),
            masked: mask::mask(&value),
            display: provider.display_name.clone(),
            pattern: pattern.as_str().to_string(),
        });
    }
    Ok(CollectedKey { value, source })
}
