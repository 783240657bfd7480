//! Where the keys pushed to members come from, on the operator's side.
//!
//! A provider may accept several kinds of key (`[[keys]]` in its definition: a Claude API key or
//! a setup-token, a Codex API key or personal access token, …); the kind decides the variable it
//! is installed into and the shape it must have. First found wins: the local encrypted store
//! (`fleetauth auth set`, which records the kind), the operator's environment (each kind's
//! variable, e.g. `ANTHROPIC_API_KEY` then `CLAUDE_CODE_OAUTH_TOKEN`), then a hidden prompt —
//! asked at most once per provider per run, only on a terminal and never with `--no-input`; a
//! prompted key takes the kind its shape matches. A store that cannot be unlocked in this run
//! (no `FLEETAUTH_PASSPHRASE`, no terminal) yields to an exported variable: the operator set it
//! for this run, and failing instead would make a CI job that exports its keys depend on whether
//! someone once ran `auth set` on that machine. A wrong passphrase is an error, never skipped. A key of no known shape is refused unless the
//! run names the provider in `--allow-key-shape`. A key never travels through argv: it is read
//! from the store, the environment or the terminal and held as a [`SecretString`] until it is
//! written to an SSH channel's stdin.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use crate::mask;
use crate::provider::{Install, Provider, PushKey};
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
    /// The push kind (`[[keys]]` `kind`) it is installed as.
    pub kind: String,
    /// Let through by `--allow-key-shape` although it matches no known shape.
    pub shape_unchecked: bool,
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
    /// How this key is installed: its kind's entry in the provider's `[[keys]]`.
    pub fn push_key<'p>(&self, provider: &'p Provider) -> &'p PushKey {
        provider
            .push_key(&self.kind)
            .or(provider.keys.first())
            .expect("a key is collected only for a provider with [[keys]]")
    }
    /// `GEMINI_API_KEY AIz…7x2f`
    pub fn label(&self, provider: &Provider) -> String {
        format!("{} {}", self.push_key(provider).target(), self.masked())
    }
    /// What `--check` says it would do.
    pub fn describe(&self, provider: &Provider, env_file: &str) -> String {
        match &self.push_key(provider).install {
            Install::EnvFile { var } => format!(
                "{var}={} (from {}) into {env_file}",
                self.masked(),
                self.source.as_str()
            ),
            Install::LoginCommand { args } => format!(
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
    /// Providers whose keys may have a shape no `pattern` knows (`--allow-key-shape`, this run).
    allow_shape: BTreeSet<String>,
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
            allow_shape: BTreeSet::new(),
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

    /// Let keys of `providers` through although their shape matches no pattern (this run only).
    pub fn allow_key_shape(mut self, providers: impl IntoIterator<Item = String>) -> KeyBroker {
        self.allow_shape.extend(providers);
        self
    }

    fn in_store(&self, provider: &Provider) -> bool {
        self.index.iter().any(|e| e.provider == provider.name)
    }

    /// The first kind whose operator variable is set, and its value.
    fn from_env(provider: &Provider) -> Option<(&PushKey, SecretString)> {
        provider.keys.iter().find_map(|k| {
            std::env::var(&k.env)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (k, SecretString::from(v)))
        })
    }

    pub fn availability(&self, provider: &Provider, may_prompt: bool) -> KeyAvailability {
        if provider.keys.is_empty() {
            KeyAvailability::None
        } else if self.in_store(provider) {
            KeyAvailability::Store
        } else if provider
            .keys
            .iter()
            .any(|k| std::env::var_os(&k.env).is_some_and(|v| !v.is_empty()))
        {
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
        if provider.keys.is_empty() {
            return Err(KeyError::Unpushable(provider.name.clone()));
        }
        let allow = self.allow_shape.contains(&provider.name);
        if self.in_store(provider) {
            let pass = match self.passphrase() {
                Ok(pass) => Some(pass),
                // Locked (no passphrase can be had here): a key the operator exported for this
                // run says what they want; a wrong passphrase is an error, never skipped.
                Err(KeyError::StoreLocked) if Self::from_env(provider).is_some() => {
                    tracing::warn!(
                        "{}: the local store is locked ({PASSPHRASE_ENV} unset, no terminal): using the key exported in the environment",
                        provider.name
                    );
                    None
                }
                Err(e) => return Err(e),
            };
            if let Some(pass) = pass {
                let store = self.store.as_ref().expect("index implies store");
                match store.load(&pass).map(|mut all| all.remove(&provider.name)) {
                    Ok(Some(c)) => {
                        return checked(provider, Some(&c.kind), c.value, KeySource::Store, allow);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(KeyError::Store {
                            provider: provider.name.clone(),
                            why: e.to_string(),
                        });
                    }
                }
            }
        }
        if let Some((k, value)) = Self::from_env(provider) {
            return checked(provider, Some(&k.kind), value, KeySource::Env, allow);
        }
        if may_prompt && self.interactive {
            let kinds: Vec<&str> = provider
                .keys
                .iter()
                .map(|k| k.description.as_str())
                .collect();
            let value = rpassword::prompt_password(format!(
                "{} key for {} members ({}; input hidden): ",
                provider.display_name,
                provider.name,
                kinds.join(" or ")
            ))
            .map_err(|e| KeyError::Terminal(format!("the key: {e}")))?;
            let value = SecretString::from(value.trim().to_string());
            return checked(provider, None, value, KeySource::Prompt, allow);
        }
        if !may_prompt && self.interactive {
            return Err(KeyError::WouldPrompt);
        }
        Err(KeyError::NoKey {
            provider: provider.name.clone(),
            exports: env_remedy(provider),
        })
    }
}

/// Why no key could be had for a provider. Never carries the key: at most its masked form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "fleetauth pushes no key for {0} (`keys = []` in its definition): log in on the member"
    )]
    Unpushable(String),
    #[error("the local credential store is encrypted: set {PASSPHRASE_ENV} or run on a terminal")]
    StoreLocked,
    #[error("cannot read {0}")]
    Terminal(String),
    #[error("cannot read the {provider} key from the store: {why}")]
    Store { provider: String, why: String },
    #[error("the key would be asked at a prompt (not in --check)")]
    WouldPrompt,
    #[error("no {provider} key: run `fleetauth auth set {provider}` or {exports}")]
    NoKey { provider: String, exports: String },
    #[error(
        "the {provider} key from {} ({masked}) does not look like a {expected} (expected {pattern}); refusing to push it{hint}",
        from.as_str()
    )]
    Malformed {
        provider: String,
        from: KeySource,
        masked: String,
        /// `Claude Code API key`
        expected: String,
        pattern: String,
        /// What to do instead (another kind it does match, or the override).
        hint: String,
    },
    #[error("the {provider} key from {from} ({masked}) is {reason}; refusing to push it")]
    Refused {
        provider: String,
        from: &'static str,
        masked: String,
        reason: String,
    },
}

/// `` `export ANTHROPIC_API_KEY=…` or `export CLAUDE_CODE_OAUTH_TOKEN=…` ``: every operator
/// variable a provider's key may come from.
pub fn env_remedy(provider: &Provider) -> String {
    let mut vars: Vec<&str> = Vec::new();
    for k in &provider.keys {
        if !vars.contains(&k.env.as_str()) {
            vars.push(&k.env);
        }
    }
    vars.iter()
        .map(|v| format!("`export {v}=…`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Decide the kind of a key and refuse one that does not look like it, before it goes anywhere.
///
/// `named` is the kind the key was given as (stored with, or whose variable held it); kinds
/// installed the same way (copilot's `gho_` and `github_pat_` both go into
/// `COPILOT_GITHUB_TOKEN`) accept each other's shapes. Without a kind (a prompt, or a stored
/// kind this provider no longer has) every kind is tried, in order. A shape listed in a kind's
/// `refuse` is refused even with `allow_shape`; otherwise `allow_shape` (`--allow-key-shape`)
/// lets an unknown shape through as the named (else the default) kind.
pub fn checked(
    provider: &Provider,
    named: Option<&str>,
    value: SecretString,
    source: KeySource,
    allow_shape: bool,
) -> Result<CollectedKey, KeyError> {
    let first = named.and_then(|k| provider.push_key(k));
    let candidates: Vec<&PushKey> = match first {
        Some(f) => std::iter::once(f)
            .chain(provider.keys.iter().filter(|k| {
                k.kind != f.kind && k.target() == f.target() && same_method(&k.install, &f.install)
            }))
            .collect(),
        None => provider.keys.iter().collect(),
    };
    let secret = value.expose_secret();
    for k in &candidates {
        if let Some((_, reason)) = k.refuse.iter().find(|(re, _)| re.is_match(secret)) {
            return Err(KeyError::Refused {
                provider: provider.name.clone(),
                from: source.as_str(),
                masked: mask::mask(&value),
                reason: reason.clone(),
            });
        }
    }
    let ok = |k: &PushKey, unchecked: bool, value: SecretString| CollectedKey {
        value,
        source,
        kind: k.kind.clone(),
        shape_unchecked: unchecked,
    };
    if let Some(k) = candidates
        .iter()
        .find(|k| k.pattern.as_ref().is_none_or(|p| p.is_match(secret)))
    {
        return Ok(ok(k, false, value));
    }
    let Some(&chosen) = candidates.first() else {
        return Err(KeyError::Unpushable(provider.name.clone()));
    };
    if allow_shape {
        return Ok(ok(chosen, true, value));
    }
    let what = if candidates.len() == 1 {
        chosen.description.clone()
    } else {
        "key".to_string()
    };
    let pattern = candidates
        .iter()
        .filter_map(|k| k.pattern.as_ref().map(|p| p.as_str()))
        .collect::<Vec<_>>()
        .join(" or ");
    let hint = match provider.key_kind_of(secret) {
        Some(other) => format!(
            "; it has the shape of the {} kind ({}): store it with `fleetauth auth set {} --kind {}` or export {}",
            other.kind,
            other.description,
            provider.name,
            other.kind.replace('_', "-"),
            other.env
        ),
        None => format!(
            "; if {} now issues keys of a new shape, pass `--allow-key-shape {}` for this run",
            provider.display_name, provider.name
        ),
    };
    Err(KeyError::Malformed {
        provider: provider.name.clone(),
        from: source,
        masked: mask::mask(&value),
        expected: format!("{} {what}", provider.display_name),
        pattern,
        hint,
    })
}

fn same_method(a: &Install, b: &Install) -> bool {
    matches!(
        (a, b),
        (Install::EnvFile { .. }, Install::EnvFile { .. })
            | (Install::LoginCommand { .. }, Install::LoginCommand { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Registry;

    fn builtin(name: &str) -> Provider {
        Registry::builtin().unwrap().get(name).unwrap().clone()
    }

    fn kind_of(
        p: &Provider,
        named: Option<&str>,
        key: &str,
        allow: bool,
    ) -> Result<(String, bool), KeyError> {
        checked(
            p,
            named,
            SecretString::from(key.to_string()),
            KeySource::Env,
            allow,
        )
        .map(|k| (k.kind, k.shape_unchecked))
    }

    const TAIL: &str = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r";

    #[test]
    fn the_kind_decides_where_a_key_goes() {
        let claude = builtin("claude");
        let setup = format!("sk-ant-oat01-{TAIL}");
        let (kind, unchecked) = kind_of(&claude, Some("oauth_token"), &setup, false).unwrap();
        assert_eq!((kind.as_str(), unchecked), ("oauth_token", false));
        assert_eq!(
            claude.push_key(&kind).unwrap().target(),
            "CLAUDE_CODE_OAUTH_TOKEN"
        );
        // Without a kind (a prompt), the shape picks it.
        assert_eq!(
            kind_of(&claude, None, &setup, false).unwrap().0,
            "oauth_token"
        );
        // A setup-token given as an API key is refused, and the error says where it belongs.
        match kind_of(&claude, Some("api_key"), &setup, false) {
            Err(e @ KeyError::Malformed { .. }) => {
                let t = e.to_string();
                assert!(t.contains("Claude Code API key"), "{t}");
                assert!(t.contains("--kind oauth-token"), "{t}");
                assert!(!t.contains(TAIL), "{t}");
            }
            other => panic!("{other:?}"),
        }
        // A stored kind the provider no longer has: classified by shape.
        assert_eq!(
            kind_of(&claude, Some("gone"), &setup, false).unwrap().0,
            "oauth_token"
        );
        let codex = builtin("codex");
        let at = format!("at-{TAIL}");
        assert_eq!(
            kind_of(&codex, Some("access_token"), &at, false).unwrap().0,
            "access_token"
        );
        // The API key is installed by the login command, the access token into the env file:
        // they never accept each other's shapes.
        assert!(kind_of(&codex, Some("api_key"), &at, false).is_err());
    }

    #[test]
    fn kinds_sharing_a_variable_accept_each_others_shapes() {
        let copilot = builtin("copilot");
        let pat = format!("github_pat_{TAIL}");
        assert_eq!(
            kind_of(&copilot, Some("api_key"), &pat, false).unwrap().0,
            "fine_grained_pat"
        );
        let gho = format!("gho_{TAIL}");
        assert_eq!(
            kind_of(&copilot, Some("fine_grained_pat"), &gho, false)
                .unwrap()
                .0,
            "api_key"
        );
    }

    #[test]
    fn refused_shapes_stay_refused_and_the_override_is_for_new_shapes_only() {
        let copilot = builtin("copilot");
        let classic = format!("ghp_{TAIL}");
        for allow in [false, true] {
            match kind_of(&copilot, None, &classic, allow) {
                Err(e @ KeyError::Refused { .. }) => {
                    let t = e.to_string();
                    assert!(t.contains("classic personal access token"), "{t}");
                    assert!(!t.contains(TAIL), "{t}");
                }
                other => panic!("allow={allow}: {other:?}"),
            }
        }
        let claude = builtin("claude");
        let novel = "sk-ant-api04-short";
        match kind_of(&claude, Some("api_key"), novel, false) {
            Err(e @ KeyError::Malformed { .. }) => {
                assert!(e.to_string().contains("--allow-key-shape claude"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            kind_of(&claude, Some("api_key"), novel, true).unwrap(),
            ("api_key".to_string(), true)
        );
        // From a prompt, an unknown shape goes in as the default kind.
        assert_eq!(kind_of(&claude, None, novel, true).unwrap().0, "api_key");
    }

    #[test]
    fn the_remedy_names_every_operator_variable() {
        assert_eq!(
            env_remedy(&builtin("claude")),
            "`export ANTHROPIC_API_KEY=…` or `export CLAUDE_CODE_OAUTH_TOKEN=…`"
        );
        assert_eq!(
            env_remedy(&builtin("copilot")),
            "`export COPILOT_GITHUB_TOKEN=…`"
        );
    }
}
