//! Provider definitions: what fleetauth knows about each agent CLI, as data.
//!
//! Vendors change flags, files and messages faster than we can release, so nothing about a
//! particular CLI lives in code. A definition says where the binary may be, how to ask its
//! version, how to run the cheapest prompt that proves a credential works and how to read the
//! result, which credentials the CLI reads (in its own precedence order), and how a key is
//! installed. Built-in definitions (`providers/*.toml`) are embedded at build time; files in
//! `--providers-dir` and the user's config dir override them by name or add new ones.
//!
//! The on-disk format is documented in `providers/README.md`. [`parse_provider`] reads one file
//! into a fully validated [`Provider`] (regexes compiled, durations parsed, references between
//! credentials checked), so probing code never meets a malformed definition; every mistake comes
//! back as a [`ConfigError`] pointing at the key or value. [`Registry`] holds the merged set, and
//! [`classify`] applies a provider's rules to what its probe printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config_error::ConfigError;
use crate::config_toml::{Source, Table, Value, regex, valid_env_var};

/// One agent CLI, fully validated.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Short name used in inventories and on the command line (`gemini`).
    pub name: String,
    /// Human name for tables and messages (`Gemini CLI`).
    pub display_name: String,
    /// Executable name looked up on the member (`gemini`).
    pub binary: String,
    /// Extra directories searched after the non-interactive shell's PATH, in order. `~/` is the
    /// member's `$HOME`. `npm_global_bin = true` adds `$(npm prefix -g)/bin` when npm exists.
    pub search_paths: Vec<String>,
    pub npm_global_bin: bool,
    /// The npm package the CLI ships in (`@anthropic-ai/claude-code`): when the binary found
    /// resolves into `node_modules/<package>/`, the probe reads the version from that package's
    /// `package.json` instead of starting the CLI (a Node start-up: hundreds of ms of CPU).
    pub npm_package: Option<String>,
    /// Arguments that print the version, and the regex whose first group is the version.
    pub version_args: Vec<String>,
    pub version_regex: regex::Regex,
    /// A cheap local status command (`claude auth status`): presence, not validity.
    pub status: Option<StatusCheck>,
    /// The minimal prompt that proves a credential really works.
    pub probe: Probe,
    /// The CLI's own config directory: `$env` when set on the member, else `default`.
    /// Credential file paths are relative to it.
    pub config_home: ConfigHome,
    /// Every credential the CLI reads, highest precedence first.
    pub credentials: Vec<Credential>,
    /// How a key collected out of band is installed on a member.
    pub install: Install,
    /// The operator-side environment variable a key may come from (`GEMINI_API_KEY`).
    pub key_env: String,
    /// What a well-formed key looks like; a key that does not match is refused before any push.
    pub key_pattern: Option<regex::Regex>,
    /// Every kind of key fleetauth may push, the default first (`[[keys]]`; the old single-key
    /// form `key_env` / `key_pattern` / `[install]` is one kind, `api_key`). `key_env`,
    /// `key_pattern` and `install` above mirror the first.
    pub keys: Vec<PushKey>,
    /// Whether an OAuth login's refresh token rotates, by credential id (`rotates` on
    /// `type = "oauth_file"` credentials; absent = unknown).
    pub rotates: BTreeMap<String, bool>,
    /// How the CLI's own login runs on a member (`[login]`), for `fleetauth login`; None when
    /// the definition gives none.
    pub login: Option<crate::login_flow::LoginDef>,
}

/// One kind of key fleetauth may push for a provider (`[[keys]]`).
#[derive(Debug, Clone)]
pub struct PushKey {
    /// `api_key`, `oauth_token`, `access_token`, …: what `auth set --kind` names.
    pub kind: String,
    /// Human name (`setup-token (claude setup-token)`).
    pub description: String,
    /// The operator-side variable a key of this kind may come from.
    pub env: String,
    /// What a well-formed key of this kind looks like.
    pub pattern: Option<regex::Regex>,
    /// Shapes refused outright, with the reason (even with `--allow-key-shape`).
    pub refuse: Vec<(regex::Regex, String)>,
    /// How it is installed on a member.
    pub install: Install,
    /// The `[[credentials]]` id the installed key becomes on the member (`credential`): what
    /// must win the CLI's precedence for the push to take effect. Defaults, for an env-file
    /// install, to the `env` credential reading its `var`.
    pub credential: Option<String>,
}

impl PushKey {
    /// The variable the key ends up in on the member (for a login command: its `env`).
    pub fn target(&self) -> &str {
        match &self.install {
            Install::EnvFile { var } => var,
            Install::LoginCommand { .. } => &self.env,
        }
    }
}

impl Provider {
    /// The push kind named `kind` (`oauth-token` and `oauth_token` are the same).
    pub fn push_key(&self, kind: &str) -> Option<&PushKey> {
        let kind = kind.replace('-', "_");
        self.keys.iter().find(|k| k.kind == kind)
    }

    /// The first push kind whose pattern `value` matches.
    pub fn key_kind_of(&self, value: &str) -> Option<&PushKey> {
        self.keys
            .iter()
            .find(|k| k.pattern.as_ref().is_some_and(|p| p.is_match(value)))
    }

    /// Whether the provider's OAuth login rotates its refresh token: `Some(true)` if any of
    /// its `oauth_file` credentials says so, `Some(false)` if all say not, `None` if unknown.
    pub fn login_rotates(&self) -> Option<bool> {
        let files: Vec<&str> = self
            .credentials
            .iter()
            .filter(|c| matches!(c, Credential::OauthFile { .. }))
            .map(Credential::id)
            .collect();
        if files.is_empty() {
            return None;
        }
        let known: Vec<bool> = files
            .iter()
            .filter_map(|id| self.rotates.get(*id).copied())
            .collect();
        if known.contains(&true) {
            Some(true)
        } else if known.len() == files.len() {
            Some(false)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct StatusCheck {
    pub args: Vec<String>,
    /// Exit status that means "a credential is present".
    pub logged_in_exit: Vec<i32>,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub args: Vec<String>,
    /// Extra environment for the probe only (e.g. `GEMINI_CLI_TRUST_WORKSPACE=true`).
    pub env: BTreeMap<String, String>,
    /// How long the prompt may take before it is declared hung (vendor unreachable).
    pub timeout: Duration,
    /// Classification rules, first match wins. No match → `error` ("unrecognised result").
    pub rules: Vec<Rule>,
}

/// One row of a provider's classification table.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Exit statuses this rule applies to; empty = any.
    pub exit: Vec<i32>,
    /// Regex that must match `stream`; None = no output condition.
    pub matches: Option<regex::Regex>,
    /// Regex that must NOT match `stream`.
    pub not_matches: Option<regex::Regex>,
    pub stream: Stream,
    pub outcome: Outcome,
    /// Human reason shown in the row's detail (`not logged in`).
    pub reason: String,
}

crate::spelled! {
    /// Which output stream a probe rule reads.
    pub enum Stream {
        Stdout = "stdout",
        Stderr = "stderr",
        Any = "any",
    }
}

crate::spelled! {
    /// What a probe rule concludes.
    pub enum Outcome {
        Ready = "ready",
        NeedsAuth = "needs_auth",
        Error = "error",
    }
}

#[derive(Debug, Clone)]
pub struct ConfigHome {
    /// Variable that replaces the default when set on the member (`CODEX_HOME`), if any.
    pub env: Option<String>,
    /// Default, `~/`-relative (`~/.codex`).
    pub default: String,
}

crate::spelled! {
    /// What kind of secret a credential holds; decides how it is reported and shared.
    pub enum CredentialKind {
        ApiKey = "api_key",
        OauthToken = "oauth_token",
        /// Selects another backend (Bedrock, Vertex, …); fleetauth cannot judge it.
        Backend = "backend",
    }
}

crate::spelled! {
    /// How an expiry value is written.
    pub enum ExpiryUnit {
        /// Milliseconds since the epoch.
        Ms = "ms",
        /// Seconds since the epoch.
        S = "s",
        /// RFC 3339 timestamp.
        Rfc3339 = "rfc3339",
        /// The pointer names a JWT whose `exp` claim (seconds) is the expiry.
        Jwt = "jwt",
    }
}

crate::spelled! {
    /// How a credential or settings file is written.
    pub enum FileFormat {
        Json = "json",
        Yaml = "yaml",
        Toml = "toml",
        /// `NAME=value` lines (`export` allowed, quotes stripped), read as a flat object.
        Dotenv = "dotenv",
    }
}

crate::spelled! {
    /// Which credentials a setting's selection replaces.
    pub enum SettingScope {
        /// Every other credential (gemini's `selectedType`); a value not in `selects` decides alone.
        All = "all",
        /// Only the credentials listed after the setting (a store choice, codex's
        /// `cli_auth_credentials_store`); a value not in `selects` leaves the order as it is.
        Below = "below",
    }
}

/// A kind of token known to lapse soon after it was issued, told by its prefix
/// (`short_lived = [{ prefix = "ghu_", lifetime = "8h" }]` on an `env` credential). When it was
/// issued cannot be seen on a member, so such a token is judged as lapsing within `lifetime` at
/// the latest, and possibly any moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortLived {
    /// The value's first characters: letters, digits, `_` and `-` only.
    pub prefix: String,
    pub lifetime: std::time::Duration,
}

/// One credential a CLI reads. `id` is unique within the provider.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An environment variable (from the member's environment or its env file).
    Env {
        id: String,
        var: String,
        kind: CredentialKind,
        /// Token prefixes known to be short-lived (a GitHub `ghu_` token lives ~8 h): a value
        /// with one of them is never ready for a sprint ([`ShortLived`]).
        short_lived: Vec<ShortLived>,
    },
    /// A settings value that selects which other credential is used, overriding the order
    /// below it (gemini `security.auth.selectedType`). `selects` maps value → credential id.
    Setting {
        id: String,
        file: String,
        /// A variable naming the file's full path instead (`GEMINI_CLI_SYSTEM_SETTINGS_PATH`).
        path_env: Option<String>,
        format: FileFormat,
        pointer: String,
        /// Value → credential ids, the first present one is used.
        selects: BTreeMap<String, Vec<String>>,
        scope: SettingScope,
    },
    /// A JSON file holding an OAuth login.
    OauthFile {
        id: String,
        file: String,
        /// Pointer to the access token's presence check (must be a non-empty string).
        token_pointer: String,
        expiry_pointer: Option<String>,
        expiry_unit: ExpiryUnit,
        refresh_pointer: Option<String>,
        /// When the refresh token itself expires (same unit; claude `refreshTokenExpiresAt`).
        refresh_expiry_pointer: Option<String>,
        /// Used only when a `Setting` selects it (gemini's oauth file).
        requires_selection: bool,
        path_env: Option<String>,
        /// Added to the detail when this credential is the one used (without `--deep`).
        note: Option<String>,
    },
    /// A value in a file that holds a key or token (codex `auth.json` `OPENAI_API_KEY`, a
    /// settings file's `env` block, gh's `hosts.yml`, a `.env` file).
    KeyFile {
        id: String,
        file: String,
        pointer: String,
        requires_selection: bool,
        kind: CredentialKind,
        format: FileFormat,
        /// The pointer names an object keyed by account: any non-empty string under it counts.
        any_value: bool,
        path_env: Option<String>,
        /// A variable naming the file's directory instead; the file keeps its name (the GitHub
        /// CLI's `GH_CONFIG_DIR` for `hosts.yml`). Never together with `path_env`.
        dir_env: Option<String>,
        /// Another credential's file whose existence means this one is not read: the CLI loads
        /// only the first of several files it finds (gemini: `.gemini/.env` before `.env`).
        unless_exists: Option<String>,
        note: Option<String>,
    },
    /// A file whose presence is the credential (an encrypted store): never read.
    PresentFile {
        id: String,
        file: String,
        path_env: Option<String>,
        kind: CredentialKind,
        requires_selection: bool,
        note: Option<String>,
    },
    /// An OS keychain entry, tested for presence only (macOS `security`, Linux `secret-tool`).
    Keychain {
        id: String,
        service: String,
        /// When this variable is set on the member, the service is `SERVICE-<first 8 hex of
        /// sha256(value)>` (claude's `CLAUDE_CONFIG_DIR`).
        service_hash_env: Option<String>,
        kind: CredentialKind,
        requires_selection: bool,
        note: Option<String>,
    },
}

impl Credential {
    pub fn id(&self) -> &str {
        match self {
            Credential::Env { id, .. }
            | Credential::Setting { id, .. }
            | Credential::OauthFile { id, .. }
            | Credential::KeyFile { id, .. }
            | Credential::PresentFile { id, .. }
            | Credential::Keychain { id, .. } => id,
        }
    }
    /// The file whose contents this credential is read from: relative to the provider's config
    /// home, `~/…` (the member's home) or absolute. None for a variable, a keychain entry and a
    /// file that only needs to exist ([`Credential::presence_file`]).
    pub fn file(&self) -> Option<&str> {
        match self {
            Credential::Env { .. }
            | Credential::PresentFile { .. }
            | Credential::Keychain { .. } => None,
            Credential::Setting { file, .. }
            | Credential::OauthFile { file, .. }
            | Credential::KeyFile { file, .. } => Some(file),
        }
    }
    /// The short-lived token prefixes declared for this credential (`env` only).
    pub fn short_lived(&self) -> &[ShortLived] {
        match self {
            Credential::Env { short_lived, .. } => short_lived,
            _ => &[],
        }
    }
    /// The file that only needs to exist (`present_file`).
    pub fn presence_file(&self) -> Option<&str> {
        match self {
            Credential::PresentFile { file, .. } => Some(file),
            _ => None,
        }
    }
    /// The variable that, set on the member, names this credential's file instead.
    pub fn path_env(&self) -> Option<&str> {
        match self {
            Credential::Setting { path_env, .. }
            | Credential::OauthFile { path_env, .. }
            | Credential::KeyFile { path_env, .. }
            | Credential::PresentFile { path_env, .. } => path_env.as_deref(),
            _ => None,
        }
    }
    /// The variable that, set on the member, names the directory of this credential's file.
    pub fn dir_env(&self) -> Option<&str> {
        match self {
            Credential::KeyFile { dir_env, .. } => dir_env.as_deref(),
            _ => None,
        }
    }
    /// The file whose existence makes the CLI skip this credential's file.
    pub fn unless_exists(&self) -> Option<&str> {
        match self {
            Credential::KeyFile { unless_exists, .. } => unless_exists.as_deref(),
            _ => None,
        }
    }
    /// The data's note for this credential's detail.
    pub fn note(&self) -> Option<&str> {
        match self {
            Credential::OauthFile { note, .. }
            | Credential::KeyFile { note, .. }
            | Credential::PresentFile { note, .. }
            | Credential::Keychain { note, .. } => note.as_deref(),
            _ => None,
        }
    }
    /// Used only when a setting selects it.
    pub fn requires_selection(&self) -> bool {
        matches!(
            self,
            Credential::OauthFile {
                requires_selection: true,
                ..
            } | Credential::KeyFile {
                requires_selection: true,
                ..
            } | Credential::PresentFile {
                requires_selection: true,
                ..
            } | Credential::Keychain {
                requires_selection: true,
                ..
            }
        )
    }
    /// The format of [`Credential::file`].
    pub fn format(&self) -> FileFormat {
        match self {
            Credential::Setting { format, .. } | Credential::KeyFile { format, .. } => *format,
            _ => FileFormat::Json,
        }
    }
}

/// How an API key is installed on a member.
#[derive(Debug, Clone)]
pub enum Install {
    /// Written as `VAR='…'` into the member's env file.
    EnvFile { var: String },
    /// A login command that reads the key on stdin (`codex login --with-api-key`).
    LoginCommand { args: Vec<String> },
}

impl Rule {
    /// Whether this rule describes a probe that ended with `exit` and printed `stdout`/`stderr`.
    /// With `stream = any`, `matches` needs either stream to match and `not_matches` needs
    /// neither to match.
    pub fn applies(&self, exit: Option<i32>, stdout: &str, stderr: &str) -> bool {
        if !self.exit.is_empty() && !exit.is_some_and(|code| self.exit.contains(&code)) {
            return false;
        }
        let streams: &[&str] = match self.stream {
            Stream::Stdout => &[stdout],
            Stream::Stderr => &[stderr],
            Stream::Any => &[stdout, stderr],
        };
        let matches = |re: &regex::Regex| streams.iter().any(|s| re.is_match(s));
        self.matches.as_ref().is_none_or(matches) && !self.not_matches.as_ref().is_some_and(matches)
    }
}

/// Applies `provider`'s probe rules to a finished probe: the first matching rule gives the
/// outcome and its reason. No match is an `Error` ("unrecognised result (exit N)"), never
/// `Ready`. A probe that hit its deadline is the caller's to report; it never gets here.
pub fn classify(
    provider: &Provider,
    exit: Option<i32>,
    stdout: &str,
    stderr: &str,
) -> (Outcome, String) {
    match provider
        .probe
        .rules
        .iter()
        .find(|rule| rule.applies(exit, stdout, stderr))
    {
        Some(rule) => (rule.outcome, rule.reason.clone()),
        None => {
            let status = exit.map_or_else(|| "no exit status".to_string(), |c| format!("exit {c}"));
            (Outcome::Error, format!("unrecognised result ({status})"))
        }
    }
}

/// The provider definitions shipped with fleetauth, as (virtual path, text).
const BUILTIN: &[(&str, &str)] = &[
    (
        "providers/claude.toml",
        include_str!("../providers/claude.toml"),
    ),
    (
        "providers/codex.toml",
        include_str!("../providers/codex.toml"),
    ),
    (
        "providers/copilot.toml",
        include_str!("../providers/copilot.toml"),
    ),
    (
        "providers/gemini.toml",
        include_str!("../providers/gemini.toml"),
    ),
    ("providers/agy.toml", include_str!("../providers/agy.toml")),
    ("providers/amp.toml", include_str!("../providers/amp.toml")),
    (
        "providers/cursor.toml",
        include_str!("../providers/cursor.toml"),
    ),
    (
        "providers/droid.toml",
        include_str!("../providers/droid.toml"),
    ),
    (
        "providers/opencode-anthropic.toml",
        include_str!("../providers/opencode-anthropic.toml"),
    ),
    (
        "providers/opencode-openai.toml",
        include_str!("../providers/opencode-openai.toml"),
    ),
    (
        "providers/qwen.toml",
        include_str!("../providers/qwen.toml"),
    ),
];

/// Origin of a provider compiled into the binary.
pub const BUILTIN_ORIGIN: &str = "built-in";

/// The provider definitions in force: built-in ones, replaced or extended by files on disk.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// name → (definition, where it came from: [`BUILTIN_ORIGIN`] or a file path).
    providers: BTreeMap<String, (Provider, String)>,
}

impl Registry {
    /// The definitions embedded at build time (`providers/*.toml`).
    pub fn builtin() -> Result<Registry, ConfigError> {
        let mut registry = Registry::default();
        for (path, text) in BUILTIN {
            let provider = parse_provider(text, Path::new(path))?;
            registry.insert(provider, BUILTIN_ORIGIN.to_string());
        }
        Ok(registry)
    }

    /// The built-in definitions, then every `*.toml` file of each directory in `extra_dirs`,
    /// directory by directory and by file name within one. A definition replaces an earlier
    /// one with the same `name`; a directory that does not exist is skipped (the user's config
    /// dir usually does not). Two files in one directory defining the same name is an error.
    pub fn load(extra_dirs: &[PathBuf]) -> Result<Registry, ConfigError> {
        let mut registry = Registry::builtin()?;
        for dir in extra_dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ConfigError::new(
                        dir,
                        format!("cannot read the provider directory: {e}"),
                    )
                    .with_help("pass a directory of provider *.toml files with --providers-dir"));
                }
            };
            let mut files = Vec::new();
            for entry in entries {
                let path = entry
                    .map_err(|e| {
                        ConfigError::new(dir, format!("cannot read the provider directory: {e}"))
                    })?
                    .path();
                if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
                    files.push(path);
                }
            }
            files.sort();
            let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
            for path in files {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(&path, format!("cannot read the provider file: {e}"))
                })?;
                let provider = parse_provider(&text, &path)?;
                if let Some(first) = seen.get(&provider.name) {
                    return Err(ConfigError::new(
                        &path,
                        format!(
                            "provider `{}` is also defined in {}",
                            provider.name,
                            first.display()
                        ),
                    )
                    .with_help("keep one definition per provider name in a directory"));
                }
                seen.insert(provider.name.clone(), path.clone());
                registry.insert(provider, path.display().to_string());
            }
        }
        Ok(registry)
    }

    /// Adds `provider`, replacing any definition with the same name. `origin` is shown by
    /// `providers list` ([`BUILTIN_ORIGIN`] or a file path).
    pub fn insert(&mut self, provider: Provider, origin: String) {
        self.providers
            .insert(provider.name.clone(), (provider, origin));
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name).map(|(provider, _)| provider)
    }

    /// Provider names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// Every provider with its origin, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&Provider, &str)> {
        self.providers
            .values()
            .map(|(provider, origin)| (provider, origin.as_str()))
    }
}

const TOP_KEYS: &[&str] = &[
    "name",
    "display_name",
    "binary",
    "search_paths",
    "npm_global_bin",
    "npm_package",
    "key_env",
    "key_pattern",
    "version",
    "status",
    "probe",
    "config_home",
    "credentials",
    "install",
    "keys",
    "login",
];
const VERSION_KEYS: &[&str] = &["args", "regex"];
const STATUS_KEYS: &[&str] = &["args", "logged_in_exit"];
const PROBE_KEYS: &[&str] = &["args", "env", "timeout", "rules"];
const RULE_KEYS: &[&str] = &[
    "exit",
    "stream",
    "matches",
    "not_matches",
    "outcome",
    "reason",
];
const CONFIG_HOME_KEYS: &[&str] = &["env", "default"];
const CREDENTIAL_TYPES: &[&str] = &[
    "env",
    "setting",
    "oauth_file",
    "key_file",
    "present_file",
    "keychain",
];
const ENV_CREDENTIAL_KEYS: &[&str] = &["type", "id", "var", "kind", "short_lived"];
const SHORT_LIVED_KEYS: &[&str] = &["prefix", "lifetime"];
const SETTING_KEYS: &[&str] = &[
    "type", "id", "file", "path_env", "format", "pointer", "selects", "scope",
];
const OAUTH_FILE_KEYS: &[&str] = &[
    "type",
    "id",
    "file",
    "token_pointer",
    "expiry_pointer",
    "expiry_unit",
    "refresh_pointer",
    "refresh_expiry_pointer",
    "requires_selection",
    "rotates",
    "path_env",
    "note",
];
const KEY_FILE_KEYS: &[&str] = &[
    "type",
    "id",
    "file",
    "pointer",
    "requires_selection",
    "kind",
    "format",
    "any_value",
    "path_env",
    "dir_env",
    "unless_exists",
    "note",
];
const PRESENT_FILE_KEYS: &[&str] = &[
    "type",
    "id",
    "file",
    "path_env",
    "kind",
    "requires_selection",
    "note",
];
const KEYCHAIN_KEYS: &[&str] = &[
    "type",
    "id",
    "service",
    "service_hash_env",
    "kind",
    "requires_selection",
    "note",
];
const INSTALL_METHODS: &[&str] = &["env_file", "login_command"];
const ENV_FILE_INSTALL_KEYS: &[&str] = &["method", "var"];
const LOGIN_COMMAND_INSTALL_KEYS: &[&str] = &["method", "args"];
const PUSH_KEY_KEYS: &[&str] = &[
    "kind",
    "credential",
    "description",
    "env",
    "pattern",
    "refuse",
    "method",
    "var",
    "args",
];
const REFUSE_KEYS: &[&str] = &["pattern", "reason"];

const DEFAULT_VERSION_REGEX: &str = r"(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)";
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(45);
const PROBE_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(600));

/// Reads one provider definition (the format is in `providers/README.md`). `path` is used in
/// messages only.
pub fn parse_provider(text: &str, path: &Path) -> Result<Provider, ConfigError> {
    let src = Source::new(path, text);
    let doc = src.parse()?;
    let root = src.root(&doc);
    root.deny_unknown(TOP_KEYS)?;

    let name_value = root.required("name")?;
    let name = name_value.str()?;
    if !valid_provider_name(name) {
        return Err(name_value
            .error(format!("invalid provider name \"{name}\""))
            .with_help("a provider name is lowercase letters, digits, `_` and `-`, starting with a letter or digit"));
    }
    let display_name = match root.get("display_name") {
        Some(v) => v.non_empty_str()?.to_string(),
        None => name.to_string(),
    };
    let binary_value = root.required("binary")?;
    let binary = binary_value.non_empty_str()?;
    if binary.chars().any(char::is_whitespace) {
        return Err(binary_value.error(format!(
            "{} must not contain whitespace",
            binary_value.what()
        )));
    }
    let search_paths = match root.get("search_paths") {
        Some(v) => {
            let mut paths = Vec::new();
            for (p, item) in v.str_array()? {
                if !(p == "~" || p.starts_with("~/") || p.starts_with('/')) {
                    return Err(item
                        .error(format!(
                            "{} must be absolute or start with `~/`, found \"{p}\"",
                            item.what()
                        ))
                        .with_help("`~/` is the member's home directory"));
                }
                paths.push(p.to_string());
            }
            paths
        }
        None => Vec::new(),
    };
    let npm_global_bin = match root.get("npm_global_bin") {
        Some(v) => v.bool()?,
        None => false,
    };
    let npm_package = root
        .get("npm_package")
        .map(|v| npm_package(&v))
        .transpose()?;
    let keys_value = root.get("keys");
    if keys_value.is_some()
        && let Some(old) = ["key_env", "key_pattern", "install"]
            .into_iter()
            .find_map(|k| root.get(k))
    {
        return Err(old
            .key_error(format!(
                "`{}` next to `[[keys]]`: use one form",
                old.key()
            ))
            .with_help(
                "[[keys]] replaces key_env, key_pattern and [install]: move them into its entries (providers/README.md)",
            ));
    }
    let (key_env, key_pattern) = match &keys_value {
        Some(_) => (String::new(), None),
        None => (
            env_var(&root.required("key_env")?)?,
            root.get("key_pattern").map(|v| regex(&v)).transpose()?,
        ),
    };

    let (version_args, version_regex) = match root.get("version") {
        Some(v) => {
            let table = v.table("[version]")?;
            table.deny_unknown(VERSION_KEYS)?;
            let args = match table.get("args") {
                Some(args) => non_empty_args(&args)?,
                None => vec!["--version".to_string()],
            };
            let re = match table.get("regex") {
                Some(r) => {
                    let re = regex(&r)?;
                    if re.captures_len() < 2 {
                        return Err(r
                            .error(format!("{} has no capture group", r.what()))
                            .with_help(
                                "put the version in parentheses: its first group is the version",
                            ));
                    }
                    re
                }
                None => default_version_regex(),
            };
            (args, re)
        }
        None => (vec!["--version".to_string()], default_version_regex()),
    };

    let status = match root.get("status") {
        Some(v) => {
            let table = v.table("[status]")?;
            table.deny_unknown(STATUS_KEYS)?;
            let args = non_empty_args(&table.required("args")?)?;
            let logged_in_exit = match table.get("logged_in_exit") {
                Some(codes) => exit_codes(&codes)?,
                None => vec![0],
            };
            Some(StatusCheck {
                args,
                logged_in_exit,
            })
        }
        None => None,
    };

    let probe = probe(&root.required("probe")?.table("[probe]")?)?;

    let config_home = {
        let table = root.required("config_home")?.table("[config_home]")?;
        table.deny_unknown(CONFIG_HOME_KEYS)?;
        let env = table.get("env").map(|v| env_var(&v)).transpose()?;
        let default_value = table.required("default")?;
        let default = default_value.str()?;
        if !(default == "~" || default.starts_with("~/") || default.starts_with('/')) {
            return Err(default_value
                .error(format!(
                    "{} must be `~`, start with `~/` or be absolute, found \"{default}\"",
                    default_value.what()
                ))
                .with_help("`~` is the member's home directory"));
        }
        ConfigHome {
            env,
            default: default.to_string(),
        }
    };

    let credentials = match root.get("credentials") {
        Some(v) => credentials(&v)?,
        None => Vec::new(),
    };

    let install = match root.get("install") {
        Some(v) => {
            let table = v.table("[install]")?;
            let method = match table.get("method") {
                Some(m) => m.one_of(INSTALL_METHODS)?,
                None => "env_file",
            };
            if method == "env_file" {
                table.deny_unknown(ENV_FILE_INSTALL_KEYS)?;
                let var = match table.get("var") {
                    Some(var) => env_var(&var)?,
                    None => key_env.clone(),
                };
                Install::EnvFile { var }
            } else {
                table.deny_unknown(LOGIN_COMMAND_INSTALL_KEYS)?;
                Install::LoginCommand {
                    args: non_empty_args(&table.required("args")?)?,
                }
            }
        }
        None => Install::EnvFile {
            var: key_env.clone(),
        },
    };
    let rotates = match root.get("credentials") {
        Some(v) => rotations(&v)?,
        None => BTreeMap::new(),
    };
    let (keys, key_env, key_pattern, install) = match &keys_value {
        Some(v) => {
            // `keys = []`: a CLI that honours no key fleetauth could push (sweep and probe only).
            let ids: Vec<&str> = credentials.iter().map(Credential::id).collect();
            let keys = push_keys(v, &ids)?;
            match keys.first().cloned() {
                Some(first) => (keys, first.env, first.pattern, first.install),
                None => (
                    keys,
                    String::new(),
                    None,
                    Install::EnvFile { var: String::new() },
                ),
            }
        }
        None => (
            vec![PushKey {
                kind: "api_key".to_string(),
                description: "API key".to_string(),
                env: key_env.clone(),
                pattern: key_pattern.clone(),
                refuse: Vec::new(),
                install: install.clone(),
                credential: None,
            }],
            key_env,
            key_pattern,
            install,
        ),
    };

    let login = root
        .get("login")
        .map(|v| crate::login_flow::parse(&v))
        .transpose()?;

    Ok(Provider {
        name: name.to_string(),
        display_name,
        binary: binary.to_string(),
        search_paths,
        npm_global_bin,
        npm_package,
        version_args,
        version_regex,
        status,
        probe,
        config_home,
        credentials,
        install,
        key_env,
        key_pattern,
        keys,
        rotates,
        login,
    })
}

/// `[[keys]]`: the kinds of key fleetauth may push, the default first.
fn push_keys(value: &Value<'_, '_>, credential_ids: &[&str]) -> Result<Vec<PushKey>, ConfigError> {
    let items = value.array()?;
    let mut keys: Vec<PushKey> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let table = item.table(format!("[[keys]] item {}", i + 1))?;
        table.deny_unknown(PUSH_KEY_KEYS)?;
        let kind_value = table.required("kind")?;
        let kind = kind_value.str()?;
        let valid = kind.starts_with(|c: char| c.is_ascii_lowercase())
            && kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(kind_value
                .error(format!("invalid key kind \"{kind}\""))
                .with_help("a kind is lowercase letters, digits and `_`, starting with a letter (e.g. api_key)"));
        }
        if keys.iter().any(|k| k.kind == kind) {
            return Err(kind_value
                .error(format!("key kind \"{kind}\" is listed twice"))
                .with_help("give every [[keys]] entry its own kind"));
        }
        let method = match table.get("method") {
            Some(m) => m.one_of(INSTALL_METHODS)?,
            None => "env_file",
        };
        let install = if method == "env_file" {
            if let Some(a) = table.get("args") {
                return Err(a
                    .key_error(format!(
                        "`args` with method = \"env_file\" in {}",
                        table.name()
                    ))
                    .with_help("`args` is for method = \"login_command\""));
            }
            Install::EnvFile {
                var: env_var(&table.required("var")?)?,
            }
        } else {
            if let Some(v) = table.get("var") {
                return Err(v
                    .key_error(format!(
                        "`var` with method = \"login_command\" in {}",
                        table.name()
                    ))
                    .with_help(
                        "a login command stores the key itself; `var` is for method = \"env_file\"",
                    ));
            }
            Install::LoginCommand {
                args: non_empty_args(&table.required("args")?)?,
            }
        };
        let env = match table.get("env") {
            Some(v) => env_var(&v)?,
            None => match &install {
                Install::EnvFile { var } => var.clone(),
                Install::LoginCommand { .. } => {
                    return Err(table
                        .missing("env")
                        .with_help("name the operator variable a key of this kind may come from"));
                }
            },
        };
        let mut refuse = Vec::new();
        if let Some(list) = table.get("refuse") {
            for (j, r) in list.array()?.into_iter().enumerate() {
                let rt = r.table(format!("item {} of `refuse` in {}", j + 1, table.name()))?;
                rt.deny_unknown(REFUSE_KEYS)?;
                refuse.push((
                    regex(&rt.required("pattern")?)?,
                    rt.required("reason")?.non_empty_str()?.to_string(),
                ));
            }
        }
        keys.push(PushKey {
            kind: kind.to_string(),
            description: match table.get("description") {
                Some(d) => d.non_empty_str()?.to_string(),
                None => kind.replace('_', " "),
            },
            env,
            pattern: table.get("pattern").map(|v| regex(&v)).transpose()?,
            refuse,
            install,
            credential: match table.get("credential") {
                Some(c) => {
                    let id = c.str()?;
                    if !credential_ids.contains(&id) {
                        return Err(c
                            .error(format!("no [[credentials]] entry has id \"{id}\""))
                            .with_help(format!(
                                "`credential` names the entry the installed key becomes; ids: {}",
                                credential_ids.join(", ")
                            )));
                    }
                    Some(id.to_string())
                }
                None => None,
            },
        });
    }
    Ok(keys)
}

/// `rotates = true|false` on `type = "oauth_file"` credentials, by id (validated by
/// [`credentials`], which refuses the key on other types).
fn rotations(value: &Value<'_, '_>) -> Result<BTreeMap<String, bool>, ConfigError> {
    let mut out = BTreeMap::new();
    for (i, item) in value.array()?.into_iter().enumerate() {
        let table = item.table(format!("[[credentials]] item {}", i + 1))?;
        if let (Some(id), Some(r)) = (table.get("id"), table.get("rotates")) {
            out.insert(id.str()?.to_string(), r.bool()?);
        }
    }
    Ok(out)
}

fn default_version_regex() -> regex::Regex {
    regex::Regex::new(DEFAULT_VERSION_REGEX).expect("the default version regex compiles")
}

fn valid_provider_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// An npm package name: `name` or `@scope/name`, each part lowercase letters, digits and
/// `-._~`, not starting with `.` or `_` (npm's own rule for new packages).
fn npm_package(value: &Value<'_, '_>) -> Result<String, ConfigError> {
    let name = value.str()?;
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_'])
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    let ok = match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, pkg)| part_ok(scope) && part_ok(pkg)),
        None => part_ok(name),
    };
    if !ok || name.len() > 214 {
        return Err(value
            .error(format!(
                "invalid npm package name \"{name}\" for {}",
                value.what()
            ))
            .with_help("`name` or `@scope/name`: lowercase letters, digits and `-._~`"));
    }
    Ok(name.to_string())
}

/// An environment variable name (`^[A-Za-z_][A-Za-z0-9_]*$`).
fn env_var(value: &Value<'_, '_>) -> Result<String, ConfigError> {
    let name = value.str()?;
    if !valid_env_var(name) {
        return Err(value
            .error(format!(
                "invalid environment variable name \"{name}\" for {}",
                value.what()
            ))
            .with_help("a variable name is letters, digits and `_`, not starting with a digit"));
    }
    if crate::remote::is_reserved_name(name) {
        return Err(value
            .error(format!(
                "environment variable name \"{name}\" for {} is reserved",
                value.what()
            ))
            .with_help(format!(
                "fleetauth's member scripts use names starting with `fa_` or `FA_` and {}",
                crate::remote::DEFINITION_VARS.join(", ")
            )));
    }
    Ok(name.to_string())
}

fn non_empty_args(value: &Value<'_, '_>) -> Result<Vec<String>, ConfigError> {
    let args = value.strings()?;
    if args.is_empty() {
        return Err(value.error(format!("{} must not be empty", value.what())));
    }
    Ok(args)
}

/// An exit status or a list of them, each 0–255.
fn exit_codes(value: &Value<'_, '_>) -> Result<Vec<i32>, ConfigError> {
    let items = match value.integer() {
        Ok(_) => vec![value.integer_in(0..=255)?],
        Err(_) => {
            let mut codes = Vec::new();
            for item in value.array().map_err(|_| {
                value.error(format!(
                    "{} must be an exit status or an array of them",
                    value.what()
                ))
            })? {
                codes.push(item.integer_in(0..=255)?);
            }
            codes
        }
    };
    Ok(items.into_iter().map(|c| c as i32).collect())
}

fn probe(table: &Table<'_, '_>) -> Result<Probe, ConfigError> {
    table.deny_unknown(PROBE_KEYS)?;
    let args = non_empty_args(&table.required("args")?)?;
    let mut env = BTreeMap::new();
    if let Some(v) = table.get("env") {
        let env_table = v.table("`env` in [probe]")?;
        for var in env_table.values() {
            if !valid_env_var(var.key()) {
                return Err(var
                    .key_error(format!(
                        "invalid environment variable name \"{}\" in `env` in [probe]",
                        var.key()
                    ))
                    .with_help(
                        "a variable name is letters, digits and `_`, not starting with a digit",
                    ));
            }
            env.insert(var.key().to_string(), var.str()?.to_string());
        }
    }
    let timeout = match table.get("timeout") {
        Some(v) => {
            let timeout = v.duration()?;
            let (min, max) = PROBE_TIMEOUT_RANGE;
            if timeout < min || timeout > max {
                return Err(v
                    .error(format!("{} must be between 1s and 10m", v.what()))
                    .with_help("the probe is one short prompt; 45s is a good deadline"));
            }
            timeout
        }
        None => DEFAULT_PROBE_TIMEOUT,
    };
    let rules_value = table.required("rules").map_err(|e| {
        e.with_help("add [[probe.rules]] tables: each has `outcome`, `reason` and optional `exit`, `stream`, `matches`, `not_matches`")
    })?;
    let mut rules = Vec::new();
    for (i, item) in rules_value.array()?.into_iter().enumerate() {
        let rule = item.table(format!("[[probe.rules]] item {}", i + 1))?;
        rule.deny_unknown(RULE_KEYS)?;
        let reason = rule.required("reason")?.non_empty_str()?.to_string();
        rules.push(Rule {
            exit: match rule.get("exit") {
                Some(v) => exit_codes(&v)?,
                None => Vec::new(),
            },
            matches: rule.get("matches").map(|v| regex(&v)).transpose()?,
            not_matches: rule.get("not_matches").map(|v| regex(&v)).transpose()?,
            stream: match rule.get("stream") {
                Some(v) => v.one_of_values(Stream::ALL)?,
                None => Stream::Any,
            },
            outcome: rule.required("outcome")?.one_of_values(Outcome::ALL)?,
            reason,
        });
    }
    if !rules.iter().any(|r| r.outcome == Outcome::Ready) {
        return Err(rules_value
            .key_error("no rule in [[probe.rules]] has `outcome = \"ready\"`")
            .with_help(
                "add a rule that recognises a successful answer, or no probe can ever pass",
            ));
    }
    Ok(Probe {
        args,
        env,
        timeout,
        rules,
    })
}

/// A credential file: relative to the provider's config home, `~/…` (the member's home) or
/// absolute (a system file such as `/etc/claude-code/managed-settings.json`); never `..`, `~user`
/// or `=` (the probe's file list uses `=`).
fn config_file(value: &Value<'_, '_>) -> Result<String, ConfigError> {
    let file = value.non_empty_str()?;
    let bad_tilde = file.starts_with('~') && !file.starts_with("~/");
    if bad_tilde
        || file == "~/"
        || file.contains('=')
        || file.contains('\n')
        || file.split('/').any(|part| part == "..")
    {
        return Err(value
            .error(format!("{} must be a path relative to the config home, `~/…` or absolute, without `..`, found \"{file}\"", value.what()))
            .with_help("write it relative to [config_home], as `~/…` or absolute (no `..`, no `~user`, no `=`), e.g. \"auth.json\", \"~/.config/gh/hosts.yml\" or \"/etc/claude-code/managed-settings.json\""));
    }
    Ok(file.to_string())
}

fn optional_env(table: &Table<'_, '_>, key: &str) -> Result<Option<String>, ConfigError> {
    table.get(key).map(|v| env_var(&v)).transpose()
}

fn optional_note(table: &Table<'_, '_>) -> Result<Option<String>, ConfigError> {
    table
        .get("note")
        .map(|v| v.non_empty_str().map(str::to_string))
        .transpose()
}

fn optional_kind(table: &Table<'_, '_>) -> Result<CredentialKind, ConfigError> {
    table.get("kind").map_or(Ok(CredentialKind::ApiKey), |v| {
        v.one_of_values(CredentialKind::ALL)
    })
}

fn optional_format(table: &Table<'_, '_>) -> Result<FileFormat, ConfigError> {
    table
        .get("format")
        .map_or(Ok(FileFormat::Json), |v| v.one_of_values(FileFormat::ALL))
}

fn json_pointer(value: &Value<'_, '_>) -> Result<String, ConfigError> {
    let pointer = value.str()?;
    if !pointer.starts_with('/') {
        return Err(value
            .error(format!(
                "{} must be a JSON pointer starting with `/`, found \"{pointer}\"",
                value.what()
            ))
            .with_help("e.g. \"/tokens/access_token\" for {\"tokens\": {\"access_token\": …}}"));
    }
    Ok(pointer.to_string())
}

fn optional_bool(table: &Table<'_, '_>, key: &str) -> Result<bool, ConfigError> {
    table.get(key).map_or(Ok(false), |v| v.bool())
}

/// `short_lived = [{ prefix = "ghu_", lifetime = "8h" }, …]`.
fn short_lived(value: &Value<'_, '_>) -> Result<Vec<ShortLived>, ConfigError> {
    let mut out = Vec::new();
    for (i, item) in value.array()?.into_iter().enumerate() {
        let table = item.table(format!("`short_lived` item {}", i + 1))?;
        table.deny_unknown(SHORT_LIVED_KEYS)?;
        let prefix_value = table.required("prefix")?;
        let prefix = prefix_value.non_empty_str()?;
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(prefix_value
                .error(format!("invalid token prefix \"{prefix}\""))
                .with_help("a prefix is letters, digits, `_` and `-`, e.g. \"ghu_\""));
        }
        out.push(ShortLived {
            prefix: prefix.to_string(),
            lifetime: table.required("lifetime")?.duration()?,
        });
    }
    Ok(out)
}

fn credentials(value: &Value<'_, '_>) -> Result<Vec<Credential>, ConfigError> {
    let mut credentials: Vec<Credential> = Vec::new();
    // Checked after all are read: (setting's value, the id it selects).
    let mut selections = Vec::new();
    let mut id_values = Vec::new();
    // Checked after all are read: (index of the credential, its `unless_exists` value).
    let mut unless = Vec::new();
    for (i, item) in value.array()?.into_iter().enumerate() {
        let table = item.table(format!("[[credentials]] item {}", i + 1))?;
        let kind_value = table
            .required("type")
            .map_err(|e| e.with_help(format!("accepted types: {}", CREDENTIAL_TYPES.join(", "))))?;
        let id_value = table.required("id")?;
        let id = id_value.str()?.to_string();
        if !valid_provider_name(&id) {
            return Err(id_value
                .error(format!("invalid credential id \"{id}\""))
                .with_help("an id is lowercase letters, digits, `_` and `-`"));
        }
        if credentials.iter().any(|c| c.id() == id) {
            return Err(id_value
                .error(format!("credential id \"{id}\" is used twice"))
                .with_help("give every [[credentials]] entry its own id"));
        }
        let credential = match kind_value.one_of(CREDENTIAL_TYPES)? {
            "env" => {
                table.deny_unknown(ENV_CREDENTIAL_KEYS)?;
                Credential::Env {
                    id,
                    var: env_var(&table.required("var")?)?,
                    kind: table.required("kind")?.one_of_values(CredentialKind::ALL)?,
                    short_lived: match table.get("short_lived") {
                        Some(v) => short_lived(&v)?,
                        None => Vec::new(),
                    },
                }
            }
            "setting" => {
                table.deny_unknown(SETTING_KEYS)?;
                let selects_value = table.required("selects")?;
                let selects_table =
                    selects_value.table(format!("`selects` in {}", table.name()))?;
                let mut selects = BTreeMap::new();
                for target in selects_table.values() {
                    let key = target.key().to_string();
                    if let Ok(one) = target.str() {
                        selects.insert(key, vec![one.to_string()]);
                        selections.push(target);
                    } else {
                        let items = target.str_array().map_err(|e| {
                            e.with_help(
                                "a credential id, or an array of ids (the first present is used)",
                            )
                        })?;
                        selects.insert(key, items.iter().map(|(s, _)| s.to_string()).collect());
                        selections.extend(items.into_iter().map(|(_, v)| v));
                    }
                }
                Credential::Setting {
                    id,
                    file: config_file(&table.required("file")?)?,
                    path_env: optional_env(&table, "path_env")?,
                    format: optional_format(&table)?,
                    pointer: json_pointer(&table.required("pointer")?)?,
                    selects,
                    scope: table.get("scope").map_or(Ok(SettingScope::All), |v| {
                        v.one_of_values(SettingScope::ALL)
                    })?,
                }
            }
            "oauth_file" => {
                table.deny_unknown(OAUTH_FILE_KEYS)?;
                let expiry_pointer = table
                    .get("expiry_pointer")
                    .map(|v| json_pointer(&v))
                    .transpose()?;
                let expiry_unit = match table.get("expiry_unit") {
                    Some(unit) if expiry_pointer.is_none() => {
                        return Err(unit
                            .key_error(format!("`expiry_unit` without `expiry_pointer` in {}", table.name()))
                            .with_help("set `expiry_pointer` to where the expiry is, or remove `expiry_unit`"));
                    }
                    Some(unit) => unit.one_of_values(ExpiryUnit::ALL)?,
                    None if expiry_pointer.is_some() => {
                        return Err(table.missing("expiry_unit").with_help(format!(
                            "accepted values: {}",
                            ExpiryUnit::spellings().join(", ")
                        )));
                    }
                    None => ExpiryUnit::Ms,
                };
                Credential::OauthFile {
                    id,
                    file: config_file(&table.required("file")?)?,
                    token_pointer: json_pointer(&table.required("token_pointer")?)?,
                    expiry_pointer,
                    expiry_unit,
                    refresh_pointer: table
                        .get("refresh_pointer")
                        .map(|v| json_pointer(&v))
                        .transpose()?,
                    refresh_expiry_pointer: match table.get("refresh_expiry_pointer") {
                        Some(v) if expiry_unit == ExpiryUnit::Jwt => {
                            return Err(v.key_error(
                                "`refresh_expiry_pointer` needs a numeric or rfc3339 `expiry_unit`, not jwt",
                            ));
                        }
                        Some(v) => Some(json_pointer(&v)?),
                        None => None,
                    },
                    requires_selection: optional_bool(&table, "requires_selection")?,
                    path_env: optional_env(&table, "path_env")?,
                    note: optional_note(&table)?,
                }
            }
            "present_file" => {
                table.deny_unknown(PRESENT_FILE_KEYS)?;
                Credential::PresentFile {
                    id,
                    file: config_file(&table.required("file")?)?,
                    path_env: optional_env(&table, "path_env")?,
                    kind: optional_kind(&table)?,
                    requires_selection: optional_bool(&table, "requires_selection")?,
                    note: optional_note(&table)?,
                }
            }
            "keychain" => {
                table.deny_unknown(KEYCHAIN_KEYS)?;
                let service_value = table.required("service")?;
                let service = service_value.non_empty_str()?;
                if service.contains(['\n', '\t']) {
                    return Err(
                        service_value.error("a keychain service name is one line without tabs")
                    );
                }
                Credential::Keychain {
                    id,
                    service: service.to_string(),
                    service_hash_env: optional_env(&table, "service_hash_env")?,
                    kind: optional_kind(&table)?,
                    requires_selection: optional_bool(&table, "requires_selection")?,
                    note: optional_note(&table)?,
                }
            }
            _ => {
                table.deny_unknown(KEY_FILE_KEYS)?;
                let path_env = optional_env(&table, "path_env")?;
                let dir_env = match table.get("dir_env") {
                    Some(v) if path_env.is_some() => {
                        return Err(v
                            .key_error(format!(
                                "`dir_env` and `path_env` together in {}",
                                table.name()
                            ))
                            .with_help("`path_env` names the whole file, `dir_env` its directory: keep one"));
                    }
                    Some(v) => Some(env_var(&v)?),
                    None => None,
                };
                let unless_value = table.get("unless_exists");
                let unless_exists = unless_value.as_ref().map(config_file).transpose()?;
                if let Some(v) = unless_value {
                    unless.push((credentials.len(), v));
                }
                Credential::KeyFile {
                    id,
                    file: config_file(&table.required("file")?)?,
                    pointer: json_pointer(&table.required("pointer")?)?,
                    requires_selection: optional_bool(&table, "requires_selection")?,
                    kind: optional_kind(&table)?,
                    format: optional_format(&table)?,
                    any_value: optional_bool(&table, "any_value")?,
                    path_env,
                    dir_env,
                    unless_exists,
                    note: optional_note(&table)?,
                }
            }
        };
        credentials.push(credential);
        id_values.push(id_value);
    }

    for target in &selections {
        let id = target.str()?;
        match credentials.iter().find(|c| c.id() == id) {
            None => {
                let ids: Vec<&str> = credentials.iter().map(Credential::id).collect();
                return Err(target
                    .error(format!(
                        "{} selects unknown credential \"{id}\"",
                        target.what()
                    ))
                    .with_help(format!("credential ids: {}", ids.join(", "))));
            }
            Some(Credential::Setting { .. }) => {
                return Err(target.error(format!(
                    "{} selects another setting (\"{id}\")",
                    target.what()
                )));
            }
            Some(_) => {}
        }
    }
    // The probe reports a file only when some credential reads it (or needs it to exist).
    for (at, value) in &unless {
        let file = value.str()?;
        let observed = credentials
            .iter()
            .enumerate()
            .any(|(i, c)| i != *at && (c.file() == Some(file) || c.presence_file() == Some(file)));
        if !observed {
            let files: Vec<&str> = credentials
                .iter()
                .filter_map(|c| c.file().or_else(|| c.presence_file()))
                .collect();
            return Err(value
                .error(format!(
                    "{} names \"{file}\", which no other credential reads",
                    value.what()
                ))
                .with_help(format!(
                    "name the `file` of another credential of this provider: {}",
                    files.join(", ")
                )));
        }
    }
    for (credential, id_value) in credentials.iter().zip(&id_values) {
        if credential.requires_selection()
            && !selections
                .iter()
                .any(|t| t.str().ok() == Some(credential.id()))
        {
            return Err(id_value
                .error(format!(
                    "credential \"{}\" has `requires_selection = true` but no setting selects it",
                    credential.id()
                ))
                .with_help("add it to the `selects` table of a `type = \"setting\"` credential, or drop `requires_selection`"));
        }
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(name: &str) -> Provider {
        Registry::builtin()
            .unwrap_or_else(|e| panic!("{e}"))
            .get(name)
            .unwrap_or_else(|| panic!("no built-in provider {name}"))
            .clone()
    }

    #[test]
    fn every_shipped_provider_parses() {
        let registry = Registry::builtin().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            registry.names(),
            [
                "agy",
                "amp",
                "claude",
                "codex",
                "copilot",
                "cursor",
                "droid",
                "gemini",
                "opencode-anthropic",
                "opencode-openai",
                "qwen"
            ]
        );
        for (provider, origin) in registry.iter() {
            assert_eq!(origin, BUILTIN_ORIGIN);
            assert!(!provider.probe.rules.is_empty(), "{}", provider.name);
            assert!(
                provider.search_paths.iter().any(|p| p == "~/.local/bin"),
                "{}",
                provider.name
            );
        }
        // The four npm-installed CLIs the brief started with: the same deadline and search,
        // and a key shape checked before any push.
        for name in ["claude", "codex", "copilot", "gemini"] {
            let provider = builtin(name);
            assert_eq!(provider.probe.timeout, Duration::from_secs(45), "{name}");
            assert_eq!(provider.search_paths, ["~/.local/bin", "~/.npm-global/bin"]);
            assert!(provider.npm_global_bin);
            assert!(provider.npm_package.is_some(), "{name}");
            assert!(provider.key_pattern.is_some(), "{name}");
        }
    }

    #[test]
    fn shipped_facts_are_what_the_brief_says() {
        let gemini = builtin("gemini");
        assert_eq!(gemini.key_env, "GEMINI_API_KEY");
        assert_eq!(
            gemini
                .probe
                .env
                .get("GEMINI_CLI_TRUST_WORKSPACE")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(gemini.config_home.env.as_deref(), Some("GEMINI_CLI_HOME"));
        assert_eq!(gemini.config_home.default, "~");
        let ids: Vec<&str> = gemini.credentials.iter().map(Credential::id).collect();
        assert_eq!(
            ids,
            [
                "system_enforced_type",
                "system_selected_type",
                "selected_type",
                "use_gca",
                "use_vertexai",
                "gateway",
                "gemini_api_key",
                "dotenv_gemini",
                "dotenv_home",
                "keychain_api_key",
                "encrypted_store",
                "oauth_creds",
                "keychain_oauth"
            ]
        );
        for system in &gemini.credentials[..2] {
            match system {
                Credential::Setting { file, path_env, .. } => {
                    assert_eq!(file, "/etc/gemini-cli/settings.json");
                    assert_eq!(path_env.as_deref(), Some("GEMINI_CLI_SYSTEM_SETTINGS_PATH"));
                }
                other => panic!("{other:?}"),
            }
        }
        match &gemini.credentials[2] {
            Credential::Setting {
                file,
                pointer,
                selects,
                scope,
                ..
            } => {
                assert_eq!(file, ".gemini/settings.json");
                assert_eq!(pointer, "/security/auth/selectedType");
                assert_eq!(
                    selects["oauth-personal"],
                    ["oauth_creds", "keychain_oauth", "encrypted_store"]
                );
                assert_eq!(selects["gemini-api-key"][0], "gemini_api_key");
                assert_eq!(*scope, SettingScope::All);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&gemini.install, Install::EnvFile { var } if var == "GEMINI_API_KEY"));

        let claude = builtin("claude");
        let status = claude.status.as_ref().expect("claude has a status command");
        assert_eq!(
            (status.args.as_slice(), status.logged_in_exit.as_slice()),
            (&["auth".to_string(), "status".to_string()][..], &[0][..])
        );
        let vars: Vec<&str> = claude
            .credentials
            .iter()
            .filter_map(|c| match c {
                Credential::Env { var, .. } => Some(var.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            vars,
            [
                "CLAUDE_CODE_USE_BEDROCK",
                "CLAUDE_CODE_USE_VERTEX",
                "CLAUDE_CODE_USE_FOUNDRY",
                "ANTHROPIC_AUTH_TOKEN",
                "ANTHROPIC_API_KEY",
                "CLAUDE_CODE_OAUTH_TOKEN"
            ]
        );
        assert!(
            matches!(claude.credentials.last(), Some(Credential::OauthFile { file, expiry_unit: ExpiryUnit::Ms, refresh_expiry_pointer: Some(r), .. }) if file == ".credentials.json" && r == "/claudeAiOauth/refreshTokenExpiresAt")
        );
        assert!(claude.credentials.iter().any(|c| matches!(c,
            Credential::Keychain { service, service_hash_env: Some(v), .. } if service == "Claude Code-credentials" && v == "CLAUDE_CONFIG_DIR")));
        assert!(claude.credentials.iter().any(|c| matches!(c,
            Credential::KeyFile { file, pointer, .. } if file == "/etc/claude-code/managed-settings.json" && pointer == "/apiKeyHelper")));
        // Managed settings: Linux and macOS (a path with a space), the same pointers in both.
        let managed = |file: &str| -> Vec<&str> {
            claude
                .credentials
                .iter()
                .filter_map(|c| match c {
                    Credential::KeyFile {
                        file: f, pointer, ..
                    } if f == file => Some(pointer.as_str()),
                    _ => None,
                })
                .collect()
        };
        let linux = managed("/etc/claude-code/managed-settings.json");
        assert_eq!(linux.len(), 7, "{linux:?}");
        assert_eq!(
            managed("/Library/Application Support/ClaudeCode/managed-settings.json"),
            linux
        );

        let codex = builtin("codex");
        assert!(
            matches!(&codex.install, Install::LoginCommand { args } if args == &["login", "--with-api-key"])
        );
        assert!(codex.credentials.iter().any(|c| matches!(c,
            Credential::OauthFile { expiry_unit: ExpiryUnit::Jwt, refresh_pointer: Some(r), .. } if r == "/tokens/refresh_token"
        )));
        assert!(codex.credentials.iter().any(|c| matches!(
            c,
            Credential::Setting {
                format: FileFormat::Toml,
                scope: SettingScope::Below,
                ..
            }
        )));
        assert!(codex.credentials.iter().any(|c| matches!(c,
            Credential::Env { var, kind: CredentialKind::ApiKey, .. } if var == "CODEX_ACCESS_TOKEN")));
        assert_eq!(codex.config_home.env.as_deref(), Some("CODEX_HOME"));

        let copilot = builtin("copilot");
        assert_eq!(copilot.key_env, "COPILOT_GITHUB_TOKEN");
        // There is no `github_token` field: tokens sit under `copilot_tokens`, keyed by account.
        assert!(copilot.credentials.iter().any(|c| matches!(c,
            Credential::KeyFile { pointer, any_value: true, .. } if pointer == "/copilot_tokens")));
        assert!(copilot.credentials.iter().any(|c| matches!(c,
            Credential::KeyFile { file, format: FileFormat::Yaml, dir_env: Some(d), .. } if file == "~/.config/gh/hosts.yml" && d == "GH_CONFIG_DIR")));
        assert_eq!(copilot.config_home.env.as_deref(), Some("COPILOT_HOME"));

        // gemini loads only the first .env file it finds: ~/.env only without ~/.gemini/.env.
        let gemini = builtin("gemini");
        let dotenv_home = gemini
            .credentials
            .iter()
            .find(|c| c.id() == "dotenv_home")
            .unwrap();
        assert_eq!(dotenv_home.unless_exists(), Some(".gemini/.env"));
    }

    #[test]
    fn version_regexes_read_the_real_version_lines() {
        let cases = [
            ("gemini", "0.61.0\n", "0.61.0"),
            ("claude", "2.1.197 (Claude Code)\n", "2.1.197"),
            ("codex", "codex-cli 0.169.0\n", "0.169.0"),
            (
                "copilot",
                "GitHub Copilot CLI 1.0.102.\nRun 'copilot update' to check for updates.\n",
                "1.0.102",
            ),
        ];
        for (name, output, version) in cases {
            let provider = builtin(name);
            let captures = provider.version_regex.captures(output);
            assert_eq!(
                captures.and_then(|c| c.get(1)).map(|m| m.as_str()),
                Some(version),
                "{name}"
            );
        }
    }

    #[test]
    fn key_patterns_accept_the_stub_formats_and_refuse_the_rest() {
        let alnum35 = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r";
        // The kind each key's shape picks (None: refused).
        let cases: &[(&str, String, Option<&str>)] = &[
            ("gemini", format!("AIza{alnum35}"), Some("api_key")),
            ("gemini", format!("AIza{alnum35}x"), None),
            ("gemini", "sk-ant-api03-abc".to_string(), None),
            ("claude", format!("sk-ant-api03-{alnum35}"), Some("api_key")),
            (
                "claude",
                format!("sk-ant-oat01-{alnum35}"),
                Some("oauth_token"),
            ),
            ("claude", format!("sk-ant-oat02-{alnum35}"), None),
            ("codex", format!("sk-proj-{alnum35}"), Some("api_key")),
            ("codex", format!("sk-svcacct-{alnum35}"), Some("api_key")),
            ("codex", format!("sk-admin-{alnum35}"), Some("api_key")),
            ("codex", format!("sk-{}", "a1".repeat(24)), Some("api_key")),
            ("codex", "sk-short".to_string(), None),
            ("codex", format!("at-{alnum35}"), Some("access_token")),
            ("copilot", format!("gho_{alnum35}"), Some("api_key")),
            (
                "copilot",
                format!("github_pat_{alnum35}"),
                Some("fine_grained_pat"),
            ),
            ("copilot", format!("ghu_{alnum35}"), Some("api_key")),
            ("copilot", format!("ghp_{alnum35}"), None),
        ];
        for (name, key, kind) in cases {
            let p = builtin(name);
            assert!(p.key_pattern.is_some(), "{name} has a default key pattern");
            assert_eq!(
                p.key_kind_of(key).map(|k| k.kind.as_str()),
                *kind,
                "{name} key of length {}",
                key.len()
            );
        }
    }

    /// One captured run of a real CLI's probe: (provider, capture name, expected outcome, words
    /// the reason must contain).
    const REAL_CAPTURES: &[(&str, &str, Outcome, &str)] = &[
        (
            "claude",
            "claude-noauth",
            Outcome::NeedsAuth,
            "not logged in",
        ),
        (
            "gemini",
            "gemini-noauth",
            Outcome::NeedsAuth,
            "no auth method",
        ),
        (
            "gemini",
            "gemini-expired",
            Outcome::NeedsAuth,
            "OAuth login expired",
        ),
        (
            "copilot",
            "copilot-noauth",
            Outcome::NeedsAuth,
            "not logged in",
        ),
    ];

    fn capture(name: &str) -> (Option<i32>, String, String) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real-cli");
        let read = |ext: &str| {
            std::fs::read_to_string(dir.join(format!("{name}.{ext}")))
                .unwrap_or_else(|e| panic!("fixture {name}.{ext}: {e}"))
        };
        let rc = read("rc");
        let code: i32 = rc.trim().trim_start_matches("rc=").parse().expect("rc=N");
        // 124 is `timeout` killing a hung CLI: it never exited on its own.
        let exit = (code != 124).then_some(code);
        (exit, read("out"), read("err"))
    }

    #[test]
    fn shipped_rules_classify_the_real_captures() {
        for (name, fixture, outcome, reason) in REAL_CAPTURES {
            let (exit, stdout, stderr) = capture(fixture);
            let (got, why) = classify(&builtin(name), exit, &stdout, &stderr);
            assert_eq!(got, *outcome, "{fixture}: {why}");
            assert!(
                why.contains(reason),
                "{fixture}: reason {why:?} lacks {reason:?}"
            );
        }
    }

    #[test]
    fn partial_output_of_hung_real_probes_is_never_ready_or_needs_auth() {
        // The caller reports the deadline; this checks the rules do not mistake the retry noise
        // of an unreachable vendor for an answer or an auth failure.
        for (name, fixture) in [("codex", "codex-noauth"), ("gemini", "gemini-fakekey")] {
            let (exit, stdout, stderr) = capture(fixture);
            assert_eq!(exit, None, "{fixture} was killed by the deadline");
            let (got, why) = classify(&builtin(name), exit, &stdout, &stderr);
            assert_eq!(
                (got, why.as_str()),
                (Outcome::Error, "unrecognised result (no exit status)"),
                "{fixture}"
            );
        }
    }

    #[test]
    fn status_commands_of_the_real_captures() {
        for (name, fixture, logged_in) in [
            ("claude", "claude-status", false),
            ("claude", "claude-expired-status", false),
            ("codex", "codex-status", false),
        ] {
            let (exit, _, _) = capture(fixture);
            let status = builtin(name).status.expect("has a status command");
            assert_eq!(
                exit.is_some_and(|c| status.logged_in_exit.contains(&c)),
                logged_in,
                "{fixture}"
            );
        }
        let status = builtin("codex").status.unwrap();
        assert!(status.logged_in_exit.contains(&0));
    }

    type StubCase = (
        &'static str,
        Option<i32>,
        &'static str,
        &'static str,
        Outcome,
        &'static str,
    );

    /// Stub and vendor outputs from the stub contract: (provider, exit, stdout, stderr, outcome,
    /// words in the reason).
    const STUB_OUTPUTS: &[StubCase] = &[
        (
            "gemini",
            Some(0),
            r#"{"session_id":"5b1c","response":"OK","stats":{}}"#,
            "",
            Outcome::Ready,
            "probe answered",
        ),
        (
            "gemini",
            Some(1),
            "",
            r#"{"session_id":"5b1c","error":{"type":"Error","message":"[API Error: API key not valid. Please pass a valid API key.]","code":1}}"#,
            Outcome::NeedsAuth,
            "API key rejected",
        ),
        (
            "gemini",
            Some(41),
            "",
            r#"{"error":{"message":"Please set an Auth method in your /h/.gemini/settings.json …","code":41}}"#,
            Outcome::NeedsAuth,
            "no auth method",
        ),
        (
            "gemini",
            Some(41),
            "",
            "Manual authorization is required but the current session is non-interactive.",
            Outcome::NeedsAuth,
            "OAuth login expired",
        ),
        (
            "gemini",
            Some(41),
            "",
            "something new",
            Outcome::NeedsAuth,
            "exit 41",
        ),
        (
            "gemini",
            Some(55),
            "",
            "Gemini CLI is not running in a trusted directory (untrusted folder)",
            Outcome::Error,
            "workspace not trusted",
        ),
        (
            "gemini",
            Some(0),
            "",
            "",
            Outcome::Error,
            "unrecognised result (exit 0)",
        ),
        (
            "gemini",
            Some(3),
            "",
            "",
            Outcome::Error,
            "unrecognised result (exit 3)",
        ),
        (
            "claude",
            Some(0),
            r#"{"type":"result","subtype":"success","is_error":false,"result":"OK","session_id":"x"}"#,
            "",
            Outcome::Ready,
            "probe answered",
        ),
        (
            "claude",
            Some(1),
            r#"{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login"}"#,
            "",
            Outcome::NeedsAuth,
            "not logged in",
        ),
        (
            "claude",
            Some(1),
            r#"{"type":"result","subtype":"success","is_error":true,"result":"Invalid API key · Fix external API key"}"#,
            "",
            Outcome::NeedsAuth,
            "Invalid API key",
        ),
        (
            "claude",
            Some(0),
            "",
            "",
            Outcome::Error,
            "no output: ~/.claude.json onboarding not completed?",
        ),
        (
            "claude",
            Some(0),
            "\n",
            "",
            Outcome::Error,
            "onboarding not completed",
        ),
        (
            "claude",
            Some(1),
            r#"{"type":"result","is_error":true,"result":"Credit balance is too low"}"#,
            "",
            Outcome::Error,
            "error result",
        ),
        (
            "codex",
            Some(0),
            "OK\n",
            "OpenAI Codex v0.169.0\n--------\nworkdir: /h\n",
            Outcome::Ready,
            "probe answered",
        ),
        (
            "codex",
            Some(1),
            "",
            "ERROR: unexpected status 401 Unauthorized: Incorrect API key provided",
            Outcome::NeedsAuth,
            "401",
        ),
        (
            "codex",
            Some(1),
            "",
            "ERROR: something else",
            Outcome::Error,
            "unrecognised result (exit 1)",
        ),
        (
            "copilot",
            Some(0),
            "OK\n",
            "",
            Outcome::Ready,
            "probe answered",
        ),
        (
            "copilot",
            Some(1),
            "",
            "Error: No authentication information found.\n\nCopilot can be authenticated …",
            Outcome::NeedsAuth,
            "not logged in",
        ),
        (
            "copilot",
            Some(1),
            "",
            "Error: Authentication failed. Please check your token.",
            Outcome::NeedsAuth,
            "token rejected",
        ),
        // Old copilot: exit 0 although not logged in.
        (
            "copilot",
            Some(0),
            "",
            "Error: No authentication information found.",
            Outcome::NeedsAuth,
            "not logged in",
        ),
        (
            "copilot",
            Some(0),
            "Error: model unavailable\n",
            "",
            Outcome::Error,
            "unrecognised result (exit 0)",
        ),
        (
            "copilot",
            Some(0),
            "",
            "",
            Outcome::Error,
            "unrecognised result (exit 0)",
        ),
    ];

    #[test]
    fn shipped_rules_classify_the_stub_outputs() {
        for (i, (name, exit, stdout, stderr, outcome, reason)) in STUB_OUTPUTS.iter().enumerate() {
            let (got, why) = classify(&builtin(name), *exit, stdout, stderr);
            assert_eq!(got, *outcome, "case {i} ({name}): {why}");
            assert!(
                why.contains(reason),
                "case {i} ({name}): reason {why:?} lacks {reason:?}"
            );
        }
    }

    fn rule(
        exit: &[i32],
        stream: Stream,
        matches: Option<&str>,
        not_matches: Option<&str>,
    ) -> Rule {
        Rule {
            exit: exit.to_vec(),
            matches: matches.map(|m| regex::Regex::new(m).unwrap()),
            not_matches: not_matches.map(|m| regex::Regex::new(m).unwrap()),
            stream,
            outcome: Outcome::Ready,
            reason: String::new(),
        }
    }

    #[test]
    fn rule_conditions() {
        assert!(rule(&[], Stream::Any, None, None).applies(None, "", ""));
        assert!(rule(&[0], Stream::Any, None, None).applies(Some(0), "", ""));
        assert!(!rule(&[0], Stream::Any, None, None).applies(Some(1), "", ""));
        assert!(!rule(&[0], Stream::Any, None, None).applies(None, "", ""));
        assert!(rule(&[], Stream::Stdout, Some("x"), None).applies(None, "x", ""));
        assert!(!rule(&[], Stream::Stdout, Some("x"), None).applies(None, "", "x"));
        assert!(rule(&[], Stream::Stderr, Some("x"), None).applies(None, "", "x"));
        assert!(rule(&[], Stream::Any, Some("x"), None).applies(None, "", "x"));
        assert!(rule(&[], Stream::Any, Some("x"), None).applies(None, "x", ""));
        assert!(
            !rule(&[], Stream::Any, None, Some("x")).applies(None, "", "x"),
            "any: neither stream may match"
        );
        assert!(rule(&[], Stream::Stdout, None, Some("x")).applies(None, "", "x"));
    }

    const MINIMAL: &str = r#"name = "tool"
binary = "tool"
key_env = "TOOL_KEY"

[probe]
args = ["ask", "OK"]

[[probe.rules]]
exit = 0
outcome = "ready"
reason = "answered"

[config_home]
default = "~/.tool"
"#;

    fn parse_ok(text: &str) -> Provider {
        parse_provider(text, Path::new("p.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> ConfigError {
        match parse_provider(text, Path::new("p.toml")) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e,
        }
    }

    /// `MINIMAL` with `extra` appended.
    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    /// Asserts where the error is and what it says; `line` counts from the start of the text.
    fn assert_error(e: &ConfigError, line: usize, col: usize, message: &str, help: &str) {
        crate::config_error::assert_error_at(e, "p.toml", line, col, message, help);
    }

    /// Line number of the first line of `text` containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle in text")
            + 1
    }

    #[test]
    fn minimal_definition_gets_defaults() {
        let p = parse_ok(MINIMAL);
        assert_eq!(p.display_name, "tool");
        assert_eq!(p.version_args, ["--version"]);
        assert_eq!(
            &p.version_regex.captures("tool v1.22.3-beta.1 (x)").unwrap()[1],
            "1.22.3-beta.1"
        );
        assert!(p.status.is_none());
        assert_eq!(p.probe.timeout, Duration::from_secs(45));
        assert_eq!(p.probe.rules[0].exit, [0]);
        assert_eq!(p.probe.rules[0].stream, Stream::Any);
        assert!(p.credentials.is_empty());
        assert!(matches!(&p.install, Install::EnvFile { var } if var == "TOOL_KEY"));
        assert!(p.key_pattern.is_none());
    }

    #[test]
    fn unknown_keys_list_the_accepted_ones() {
        let e = parse_err(&format!("bianry = \"x\"\n{MINIMAL}"));
        assert_error(
            &e,
            1,
            1,
            "unknown key `bianry` in the top level",
            "accepted keys: name, display_name, binary,",
        );
        let text = with("[[probe.rules]]\nexits = [1]\noutcome = \"error\"\nreason = \"r\"\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "exits"),
            1,
            "unknown key `exits` in [[probe.rules]] item 2",
            "accepted keys: exit, stream, matches, not_matches, outcome, reason",
        );
        let text = with(
            "[[credentials]]\ntype = \"env\"\nid = \"k\"\nvar = \"K\"\nkind = \"api_key\"\nfile = \"x\"\n",
        );
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "file ="),
            1,
            "unknown key `file` in [[credentials]] item 1",
            "accepted keys: type, id, var, kind",
        );
        let text = with("[install]\nmethod = \"env_file\"\nargs = [\"x\"]\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "args = [\"x\"]"),
            1,
            "unknown key `args` in [install]",
            "accepted keys: method, var",
        );
    }

    #[test]
    fn missing_required_keys() {
        let e = parse_err(&MINIMAL.replace("binary = \"tool\"\n", ""));
        assert_eq!(e.message, "missing key `binary` in the top level");
        let text = with("[[credentials]]\nid = \"k\"\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "[[credentials]]"),
            1,
            "missing key `type` in [[credentials]] item 1",
            "accepted types: env, setting, oauth_file, key_file",
        );
    }

    #[test]
    fn invalid_names_and_variables() {
        let e = parse_err(&MINIMAL.replace("name = \"tool\"", "name = \"Tool\""));
        assert_error(
            &e,
            1,
            8,
            "invalid provider name \"Tool\"",
            "lowercase letters",
        );
        let e = parse_err(&MINIMAL.replace("key_env = \"TOOL_KEY\"", "key_env = \"1KEY\""));
        assert_error(
            &e,
            3,
            11,
            "invalid environment variable name \"1KEY\"",
            "letters, digits and `_`",
        );
        let text = MINIMAL.replace(
            "args = [\"ask\", \"OK\"]",
            "args = [\"ask\"]\nenv = { \"A-B\" = \"1\" }",
        );
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "env = {"),
            9,
            "invalid environment variable name \"A-B\"",
            "",
        );
        let text = with(
            "[[credentials]]\ntype = \"env\"\nid = \"k\"\nvar = \"MY KEY\"\nkind = \"api_key\"\n",
        );
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "MY KEY"),
            7,
            "invalid environment variable name \"MY KEY\"",
            "",
        );
    }

    #[test]
    fn names_the_member_scripts_use_are_refused() {
        for name in ["FILES", "fa_bin", "FA_NONCE"] {
            let text = MINIMAL.replace("key_env = \"TOOL_KEY\"", &format!("key_env = \"{name}\""));
            let e = parse_err(&text);
            assert_error(
                &e,
                3,
                11,
                &format!(
                    "environment variable name \"{name}\" for `key_env` in the top level is reserved"
                ),
                "fleetauth's member scripts use",
            );
        }
    }

    #[test]
    fn regexes_must_compile() {
        let text = MINIMAL.replace("exit = 0\n", "exit = 0\nmatches = 'a(b'\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "a(b"),
            11,
            "invalid regex for `matches` in [[probe.rules]] item 1",
            "regex syntax",
        );
        let e = parse_err(&format!("key_pattern = '[z-a]'\n{MINIMAL}"));
        assert_error(&e, 1, 15, "invalid regex for `key_pattern`", "");
        let e = parse_err(&with("[version]\nregex = '\\d+'\n"));
        assert!(e.message.contains("has no capture group"), "{e}");
    }

    #[test]
    fn bad_enum_values_list_the_accepted_ones() {
        let text = MINIMAL.replace("outcome = \"ready\"", "outcome = \"ok\"");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "outcome"),
            11,
            "invalid value \"ok\" for `outcome`",
            "accepted values: ready, needs_auth, error",
        );
        let text = MINIMAL.replace("exit = 0\n", "exit = 0\nstream = \"both\"\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "stream"),
            10,
            "invalid value \"both\"",
            "accepted values: stdout, stderr, any",
        );
        let text = with("[[credentials]]\ntype = \"file\"\nid = \"k\"\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "\"file\""),
            8,
            "invalid value \"file\" for `type`",
            "accepted values: env, setting, oauth_file, key_file",
        );
        let text =
            with("[[credentials]]\ntype = \"env\"\nid = \"k\"\nvar = \"K\"\nkind = \"key\"\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "kind"),
            8,
            "invalid value \"key\"",
            "accepted values: api_key, oauth_token, backend",
        );
        let text = with("[install]\nmethod = \"push\"\n");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "push"),
            10,
            "invalid value \"push\"",
            "accepted values: env_file, login_command",
        );
    }

    #[test]
    fn credential_ids_are_unique() {
        let text = with(
            "[[credentials]]\ntype = \"env\"\nid = \"k\"\nvar = \"A\"\nkind = \"api_key\"\n[[credentials]]\ntype = \"env\"\nid = \"k\"\nvar = \"B\"\nkind = \"api_key\"\n",
        );
        let e = parse_err(&text);
        let second = text
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "id = \"k\"")
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert_error(
            &e,
            second,
            6,
            "credential id \"k\" is used twice",
            "its own id",
        );
    }

    const SETTING: &str = "[[credentials]]\ntype = \"setting\"\nid = \"sel\"\nfile = \"settings.json\"\npointer = \"/auth/type\"\nselects = { oauth = \"creds\" }\n";
    const OAUTH: &str = "[[credentials]]\ntype = \"oauth_file\"\nid = \"creds\"\nfile = \"creds.json\"\ntoken_pointer = \"/access_token\"\nrequires_selection = true\n";

    #[test]
    fn selections_must_name_existing_credentials() {
        let p = parse_ok(&with(&format!("{SETTING}{OAUTH}")));
        assert_eq!(p.credentials.len(), 2);
        let text = with(&format!(
            "{SETTING}{}",
            OAUTH.replace("\"creds\"", "\"other\"")
        ));
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "selects"),
            21,
            "`oauth` in `selects` in [[credentials]] item 1 selects unknown credential \"creds\"",
            "credential ids: sel, other",
        );
        let text = with(&SETTING.replace("\"creds\"", "\"sel\""));
        assert!(parse_err(&text).message.contains("selects another setting"));
    }

    #[test]
    fn requires_selection_needs_a_setting_that_selects_it() {
        let text = with(OAUTH);
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "id = \"creds\""),
            6,
            "requires_selection = true` but no setting selects it",
            "selects",
        );
    }

    #[test]
    fn file_paths_never_climb_out() {
        for bad in [
            "../creds.json",
            "/etc/../creds.json",
            "~root/creds.json",
            "a/../../b",
            "a=b.json",
        ] {
            let text = with(&format!("{SETTING}{}", OAUTH.replace("creds.json", bad)));
            let e = parse_err(&text);
            assert_error(
                &e,
                line_of(&text, bad),
                8,
                "must be a path relative to the config home",
                "no `..`",
            );
        }
        // System files and files in the member's home are allowed.
        for good in ["/etc/tool/creds.json", "~/.config/tool/creds.json"] {
            let text = with(&format!("{SETTING}{}", OAUTH.replace("creds.json", good)));
            parse_provider(&text, Path::new("t.toml")).expect(good);
        }
        let e = parse_err(&MINIMAL.replace("default = \"~/.tool\"", "default = \".tool\""));
        assert!(
            e.message
                .contains("must be `~`, start with `~/` or be absolute"),
            "{e}"
        );
        let e = parse_err(&format!("search_paths = [\"bin\"]\n{MINIMAL}"));
        assert_error(&e, 1, 17, "must be absolute or start with `~/`", "");
    }

    #[test]
    fn new_credential_types_parse_and_refuse_mistakes() {
        let p = parse_ok(&with(concat!(
            "[[credentials]]\ntype = \"keychain\"\nid = \"kc\"\nservice = \"Tool Auth\"\nservice_hash_env = \"TOOL_DIR\"\nkind = \"oauth_token\"\n",
            "[[credentials]]\ntype = \"present_file\"\nid = \"enc\"\nfile = \"~/.tool/enc.bin\"\n",
            "[[credentials]]\ntype = \"key_file\"\nid = \"hosts\"\nfile = \"/etc/tool/hosts.yml\"\nformat = \"yaml\"\npointer = \"/h/token\"\nany_value = true\npath_env = \"TOOL_HOSTS\"\nnote = \"n\"\n",
            "[[credentials]]\ntype = \"setting\"\nid = \"store\"\nfile = \"config.toml\"\nformat = \"toml\"\npointer = \"/store\"\nscope = \"below\"\nselects = { keyring = [\"kc\", \"enc\"] }\n",
        )));
        assert!(matches!(&p.credentials[0],
            Credential::Keychain { service, service_hash_env: Some(v), kind: CredentialKind::OauthToken, .. }
                if service == "Tool Auth" && v == "TOOL_DIR"));
        assert_eq!(p.credentials[1].presence_file(), Some("~/.tool/enc.bin"));
        assert_eq!(p.credentials[1].file(), None);
        assert!(matches!(
            &p.credentials[2],
            Credential::KeyFile {
                format: FileFormat::Yaml,
                any_value: true,
                kind: CredentialKind::ApiKey,
                ..
            }
        ));
        assert_eq!(p.credentials[2].path_env(), Some("TOOL_HOSTS"));
        assert_eq!(p.credentials[2].note(), Some("n"));
        assert!(matches!(&p.credentials[3],
            Credential::Setting { scope: SettingScope::Below, selects, .. } if selects["keyring"] == ["kc", "enc"]));

        let e = parse_err(&with("[[credentials]]\ntype = \"keychain\"\nid = \"kc\"\n"));
        assert!(e.message.contains("service"), "{e}");
        let e = parse_err(&with(
            "[[credentials]]\ntype = \"key_file\"\nid = \"k\"\nfile = \"a\"\npointer = \"/a\"\nformat = \"xml\"\n",
        ));
        assert!(e.message.contains("invalid value \"xml\""), "{e}");
        assert!(
            e.help.as_deref().unwrap_or_default().contains("dotenv"),
            "{e}"
        );
        let e = parse_err(&with(
            "[[credentials]]\ntype = \"oauth_file\"\nid = \"o\"\nfile = \"a\"\ntoken_pointer = \"/t\"\nexpiry_pointer = \"/t\"\nexpiry_unit = \"jwt\"\nrefresh_expiry_pointer = \"/r\"\n",
        ));
        assert!(e.message.contains("not jwt"), "{e}");
        let e = parse_err(&with(
            "[[credentials]]\ntype = \"setting\"\nid = \"s\"\nfile = \"a\"\npointer = \"/a\"\nselects = { x = [\"nope\"] }\n",
        ));
        assert!(
            e.message.contains("selects unknown credential \"nope\""),
            "{e}"
        );
        let e = parse_err(&with(
            "[[credentials]]\ntype = \"setting\"\nid = \"s\"\nfile = \"a\"\npointer = \"/a\"\nselects = { x = 3 }\n",
        ));
        assert!(
            e.help
                .as_deref()
                .unwrap_or_default()
                .contains("array of ids"),
            "{e}"
        );
        let e = parse_err(&with(
            "[[credentials]]\ntype = \"keychain\"\nid = \"kc\"\nservice = \"s\"\nservice_hash_env = \"not a var\"\n",
        ));
        assert!(e.message.contains("not a var"), "{e}");
    }

    #[test]
    fn dir_env_and_unless_exists_parse_and_refuse_mistakes() {
        let key_file = |extra: &str| {
            format!(
                "[[credentials]]\ntype = \"key_file\"\nid = \"first\"\nfile = \"~/.tool/.env\"\nformat = \"dotenv\"\npointer = \"/K\"\n\
                 [[credentials]]\ntype = \"key_file\"\nid = \"second\"\nfile = \"hosts.yml\"\nformat = \"yaml\"\npointer = \"/K\"\n{extra}"
            )
        };
        let p = parse_ok(&with(&key_file(
            "dir_env = \"TOOL_DIR\"\nunless_exists = \"~/.tool/.env\"\n",
        )));
        assert_eq!(p.credentials[1].dir_env(), Some("TOOL_DIR"));
        assert_eq!(p.credentials[1].unless_exists(), Some("~/.tool/.env"));
        assert_eq!(p.credentials[0].dir_env(), None);

        let text = with(&key_file(
            "path_env = \"TOOL_FILE\"\ndir_env = \"TOOL_DIR\"\n",
        ));
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "dir_env"),
            1,
            "`dir_env` and `path_env` together",
            "keep one",
        );
        let e = parse_err(&with(&key_file("dir_env = \"not a var\"\n")));
        assert!(e.message.contains("not a var"), "{e}");
        // The file must be one the probe looks at, and not the credential's own.
        let text = with(&key_file("unless_exists = \"~/.tool/other\"\n"));
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "unless_exists"),
            17,
            "names \"~/.tool/other\", which no other credential reads",
            "~/.tool/.env, hosts.yml",
        );
        let e = parse_err(&with(&key_file("unless_exists = \"hosts.yml\"\n")));
        assert!(e.message.contains("no other credential reads"), "{e}");
        let e = parse_err(&with(&key_file("unless_exists = \"../x\"\n")));
        assert!(e.message.contains("without `..`"), "{e}");
    }

    #[test]
    fn json_pointers_start_with_a_slash() {
        let text = with(&format!(
            "{SETTING}{}",
            OAUTH.replace("\"/access_token\"", "\"access_token\"")
        ));
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "token_pointer"),
            17,
            "must be a JSON pointer starting with `/`",
            "",
        );
    }

    #[test]
    fn expiry_pointer_and_unit_go_together() {
        let text = with(&format!("{SETTING}{OAUTH}expiry_unit = \"ms\"\n"));
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "expiry_unit"),
            1,
            "`expiry_unit` without `expiry_pointer`",
            "",
        );
        let text = with(&format!("{SETTING}{OAUTH}expiry_pointer = \"/exp\"\n"));
        let e = parse_err(&text);
        assert!(e.message.contains("missing key `expiry_unit`"), "{e}");
        assert!(e.help.as_deref().unwrap().contains("ms, s, rfc3339, jwt"));
    }

    #[test]
    fn probe_timeout_must_be_sane() {
        for (bad, what) in [
            ("\"0s\"", "longer than zero"),
            ("\"500ms\"", "between 1s and 10m"),
            ("\"1h\"", "between 1s and 10m"),
            ("\"soon\"", "invalid duration"),
        ] {
            let text = MINIMAL.replace(
                "args = [\"ask\", \"OK\"]",
                &format!("args = [\"ask\"]\ntimeout = {bad}"),
            );
            let e = parse_err(&text);
            assert_error(&e, line_of(&text, "timeout"), 11, what, "");
        }
    }

    #[test]
    fn probe_needs_a_ready_rule_and_exit_codes_in_range() {
        let e = parse_err(&MINIMAL.replace("outcome = \"ready\"", "outcome = \"error\""));
        assert!(
            e.message
                .contains("no rule in [[probe.rules]] has `outcome = \"ready\"`"),
            "{e}"
        );
        let text = MINIMAL.replace("exit = 0", "exit = [0, 256]");
        let e = parse_err(&text);
        assert_error(
            &e,
            line_of(&text, "exit"),
            12,
            "must be between 0 and 255",
            "",
        );
        let e = parse_err(&MINIMAL.replace("exit = 0", "exit = \"0\""));
        assert!(
            e.message
                .contains("must be an exit status or an array of them"),
            "{e}"
        );
        let e = parse_err(&MINIMAL.replace(
            "[[probe.rules]]\nexit = 0\noutcome = \"ready\"\nreason = \"answered\"\n",
            "",
        ));
        assert!(e.message.contains("missing key `rules` in [probe]"), "{e}");
    }

    #[test]
    fn invalid_toml_is_located() {
        let e = parse_err("name = \"x\"\nbinary = [\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.starts_with("invalid TOML"), "{e}");
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "fleetauth-provider-test-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_overrides_by_name_and_adds_new_providers() {
        let one = temp_dir("one");
        let two = temp_dir("two");
        std::fs::write(
            one.join("gemini.toml"),
            MINIMAL
                .replace("name = \"tool\"", "name = \"gemini\"")
                .replace("binary = \"tool\"", "binary = \"gemini-one\""),
        )
        .unwrap();
        std::fs::write(one.join("tool.toml"), MINIMAL).unwrap();
        std::fs::write(one.join("notes.txt"), "not a provider").unwrap();
        std::fs::write(
            two.join("g.toml"),
            MINIMAL
                .replace("name = \"tool\"", "name = \"gemini\"")
                .replace("binary = \"tool\"", "binary = \"gemini-two\""),
        )
        .unwrap();
        let missing = one.join("does-not-exist");

        let registry =
            Registry::load(&[one.clone(), missing, two.clone()]).unwrap_or_else(|e| panic!("{e}"));
        let builtin = Registry::builtin().unwrap();
        let mut want = builtin.names();
        want.push("tool");
        want.sort();
        assert_eq!(registry.names(), want);
        assert_eq!(
            registry.get("gemini").unwrap().binary,
            "gemini-two",
            "the later directory wins"
        );
        let origins: BTreeMap<&str, &str> =
            registry.iter().map(|(p, o)| (p.name.as_str(), o)).collect();
        assert_eq!(origins["gemini"], two.join("g.toml").display().to_string());
        assert_eq!(origins["tool"], one.join("tool.toml").display().to_string());
        assert_eq!(origins["claude"], BUILTIN_ORIGIN);

        std::fs::write(
            two.join("h.toml"),
            MINIMAL.replace("name = \"tool\"", "name = \"gemini\""),
        )
        .unwrap();
        let e = Registry::load(std::slice::from_ref(&two)).unwrap_err();
        assert_eq!(e.file, two.join("h.toml"));
        assert!(
            e.message.contains("provider `gemini` is also defined in"),
            "{e}"
        );

        std::fs::write(two.join("h.toml"), "name = 3\n").unwrap();
        let e = Registry::load(std::slice::from_ref(&two)).unwrap_err();
        assert_eq!((e.file.clone(), e.line), (two.join("h.toml"), Some(1)));

        std::fs::remove_dir_all(one).unwrap();
        std::fs::remove_dir_all(two).unwrap();
    }

    /// MINIMAL with its single-key form replaced by `[[keys]]` entries.
    fn with_keys(keys: &str) -> String {
        format!("{}{keys}", MINIMAL.replace("key_env = \"TOOL_KEY\"\n", ""))
    }

    const TWO_KEYS: &str = "[[keys]]\nkind = \"api_key\"\nenv = \"TOOL_KEY\"\npattern = '^tk-'\nvar = \"TOOL_KEY\"\n\n[[keys]]\nkind = \"oauth_token\"\ndescription = \"setup token\"\npattern = '^tot-'\nrefuse = [{ pattern = '^old-', reason = \"an old token\" }]\nvar = \"TOOL_OAUTH_TOKEN\"\n\n[[keys]]\nkind = \"cli_key\"\nenv = \"TOOL_CLI_KEY\"\nmethod = \"login_command\"\nargs = [\"login\", \"--stdin\"]\n";

    #[test]
    fn keys_tables_give_each_kind_its_variable_pattern_and_install() {
        let p = parse_ok(&with_keys(TWO_KEYS));
        let kinds: Vec<&str> = p.keys.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["api_key", "oauth_token", "cli_key"]);
        // The first kind is the default the old fields mirror.
        assert_eq!(p.key_env, "TOOL_KEY");
        assert!(matches!(&p.install, Install::EnvFile { var } if var == "TOOL_KEY"));
        let oauth = p.push_key("oauth-token").expect("`-` and `_` are the same");
        assert_eq!(oauth.env, "TOOL_OAUTH_TOKEN", "env defaults to var");
        assert_eq!(oauth.target(), "TOOL_OAUTH_TOKEN");
        assert_eq!(oauth.description, "setup token");
        assert_eq!(oauth.refuse.len(), 1);
        let cli = p.push_key("cli_key").unwrap();
        assert!(
            matches!(&cli.install, Install::LoginCommand { args } if args == &["login", "--stdin"])
        );
        assert_eq!(cli.description, "cli key", "default description");
        assert_eq!(
            p.key_kind_of("tot-1").map(|k| k.kind.as_str()),
            Some("oauth_token")
        );
        assert_eq!(
            p.key_kind_of("tk-1").map(|k| k.kind.as_str()),
            Some("api_key")
        );
        assert!(p.push_key("nope").is_none());
    }

    #[test]
    fn the_single_key_form_is_one_api_key_kind() {
        let p = parse_ok(&format!("key_pattern = '^tk-'\n{MINIMAL}"));
        assert_eq!(p.keys.len(), 1);
        let k = &p.keys[0];
        assert_eq!(
            (k.kind.as_str(), k.env.as_str(), k.target()),
            ("api_key", "TOOL_KEY", "TOOL_KEY")
        );
        assert!(k.pattern.as_ref().is_some_and(|re| re.is_match("tk-1")));
        // `keys = []`: nothing to push.
        let none = parse_ok(&format!("keys = []\n{}", with_keys("")));
        assert!(none.keys.is_empty());
    }

    #[test]
    fn keys_errors_name_the_entry() {
        let e = parse_err(&format!(
            "{}[[keys]]\nkind = \"api_key\"\nvar = \"X\"\n",
            MINIMAL
        ));
        assert!(
            e.to_string()
                .contains("`key_env` next to `[[keys]]`: use one form"),
            "{e}"
        );
        let e = parse_err(&with_keys("[[keys]]\nkind = \"Api\"\nvar = \"X\"\n"));
        assert!(e.to_string().contains("invalid key kind \"Api\""), "{e}");
        let e = parse_err(&with_keys(
            "[[keys]]\nkind = \"a\"\nvar = \"X\"\n[[keys]]\nkind = \"a\"\nvar = \"Y\"\n",
        ));
        assert!(
            e.to_string().contains("key kind \"a\" is listed twice"),
            "{e}"
        );
        let e = parse_err(&with_keys(
            "[[keys]]\nkind = \"a\"\nmethod = \"login_command\"\nargs = [\"x\"]\n",
        ));
        assert!(
            e.to_string().contains("`env`"),
            "a login command needs the operator variable: {e}"
        );
        let e = parse_err(&with_keys(
            "[[keys]]\nkind = \"a\"\nvar = \"X\"\nargs = [\"x\"]\n",
        ));
        assert!(
            e.to_string().contains("`args` with method = \"env_file\""),
            "{e}"
        );
        let e = parse_err(&with_keys(
            "[[keys]]\nkind = \"a\"\nvar = \"X\"\nrefuse = [{ pattern = 'x' }]\n",
        ));
        assert!(e.to_string().contains("reason"), "{e}");
        let e = parse_err(&with_keys(
            "[[keys]]\nkind = \"a\"\nvar = \"X\"\npatern = 'x'\n",
        ));
        assert!(e.to_string().contains("unknown key `patern`"), "{e}");
    }

    #[test]
    fn rotates_is_read_on_oauth_files_only() {
        let oauth = "[[credentials]]\ntype = \"oauth_file\"\nid = \"creds\"\nfile = \"creds.json\"\ntoken_pointer = \"/t\"\nrotates = true\n";
        let p = parse_ok(&with(oauth));
        assert_eq!(p.rotates.get("creds"), Some(&true));
        assert_eq!(p.login_rotates(), Some(true));
        let p = parse_ok(&with(&oauth.replace("rotates = true\n", "")));
        assert_eq!(p.login_rotates(), None, "undeclared = unknown");
        let p = parse_ok(&with(&oauth.replace("rotates = true", "rotates = false")));
        assert_eq!(p.login_rotates(), Some(false));
        let e = parse_err(&with(
            "[[credentials]]\ntype = \"env\"\nid = \"k\"\nvar = \"K\"\nkind = \"api_key\"\nrotates = true\n",
        ));
        assert!(e.to_string().contains("unknown key `rotates`"), "{e}");
        let e = parse_err(&with(&oauth.replace("rotates = true", "rotates = \"yes\"")));
        assert!(e.to_string().contains("must be true or false"), "{e}");
        // The shipped logins: claude and codex rotate, gemini does not.
        assert_eq!(builtin("claude").login_rotates(), Some(true));
        assert_eq!(builtin("codex").login_rotates(), Some(true));
        assert_eq!(builtin("gemini").login_rotates(), Some(false));
    }
}
