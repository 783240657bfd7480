//! Provider definitions: what fleetauth knows about each agent CLI, as data.
//!
//! Vendors change flags, files and messages faster than we can release, so nothing about a
//! particular CLI lives in code. A definition says where the binary may be, how to ask its
//! version, how to run the cheapest prompt that proves a credential works and how to read the
//! result, which credentials the CLI reads (in its own precedence order), and how a key is
//! installed. Built-in definitions (`providers/*.toml`) are embedded at build time; files in
//! `--providers-dir` and the user's config dir override them by name or add new ones.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ready,
    NeedsAuth,
    Error,
}

#[derive(Debug, Clone)]
pub struct ConfigHome {
    /// Variable that replaces the default when set on the member (`CODEX_HOME`), if any.
    pub env: Option<String>,
    /// Default, `~/`-relative (`~/.codex`).
    pub default: String,
}

/// What kind of secret a credential holds; decides how it is reported and shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ApiKey,
    OauthToken,
    /// Selects another backend (Bedrock, Vertex, …); fleetauth cannot judge it.
    Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryUnit {
    /// Milliseconds since the epoch.
    Ms,
    /// Seconds since the epoch.
    S,
    /// RFC 3339 timestamp.
    Rfc3339,
    /// The pointer names a JWT whose `exp` claim (seconds) is the expiry.
    Jwt,
}

/// One credential a CLI reads. `id` is unique within the provider.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An environment variable (from the member's environment or its env file).
    Env { id: String, var: String, kind: CredentialKind },
    /// A settings value that selects which other credential is used, overriding the order
    /// below it (gemini `security.auth.selectedType`). `selects` maps value → credential id.
    Setting { id: String, file: String, pointer: String, selects: BTreeMap<String, String> },
    /// A JSON file holding an OAuth login.
    OauthFile {
        id: String,
        file: String,
        /// Pointer to the access token's presence check (must be a non-empty string).
        token_pointer: String,
        expiry_pointer: Option<String>,
        expiry_unit: ExpiryUnit,
        refresh_pointer: Option<String>,
        /// Used only when a `Setting` selects it (gemini's oauth file).
        requires_selection: bool,
    },
    /// A JSON file holding an API key (codex `auth.json` `OPENAI_API_KEY`).
    KeyFile { id: String, file: String, pointer: String, requires_selection: bool },
}

impl Credential {
    pub fn id(&self) -> &str {
        match self {
            Credential::Env { id, .. }
            | Credential::Setting { id, .. }
            | Credential::OauthFile { id, .. }
            | Credential::KeyFile { id, .. } => id,
        }
    }
    /// File path relative to the provider's config home, if this credential lives in a file.
    pub fn file(&self) -> Option<&str> {
        match self {
            Credential::Env { .. } => None,
            Credential::Setting { file, .. }
            | Credential::OauthFile { file, .. }
            | Credential::KeyFile { file, .. } => Some(file),
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
