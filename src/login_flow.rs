//! A provider's `[login]` section: how its own CLI logs a member in, as data (part of a provider
//! definition; `login/` runs it).
//!
//! Vendors change their login screens faster than fleetauth is released, so everything the relay
//! needs to know — the command, whether it needs a pty, which lines carry the URL and the code,
//! the paste prompt, what success, expiry and refusal look like — lives in `providers/*.toml`
//! (documented in `providers/README.md`), validated here with the same located errors as the
//! rest of a definition.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config_error::ConfigError;
use crate::config_toml::{Table, Value, regex, valid_env_var};

crate::spelled! {
    /// How the CLI's login reaches the operator.
    pub enum Flow {
        /// The CLI shows a URL and a user code and polls the vendor until the operator approves.
        DeviceCode = "device_code",
        /// The CLI shows a URL; the operator authorises and pastes back the code the page shows.
        PasteBack = "paste_back",
        /// The CLI shows a URL (no code) and polls until the operator has finished in a browser.
        BrowserPoll = "browser_poll",
    }
}

/// A known way the login fails, with the vendor's reason and what to do.
#[derive(Debug, Clone)]
pub struct Failure {
    pub matches: regex::Regex,
    pub reason: String,
    pub remedy: Option<String>,
}

/// A provider's login, validated.
#[derive(Debug, Clone)]
pub struct LoginDef {
    pub flow: Flow,
    /// Arguments after the binary (`["login", "--device-auth"]`).
    pub args: Vec<String>,
    /// Variables set for the login only (`NO_BROWSER = "true"`).
    pub env: BTreeMap<String, String>,
    /// Run it on a pseudo-terminal (a CLI that reads the pasted code from its terminal).
    pub pty: bool,
    /// The URL to open: the first capture group, else the whole match.
    pub url: regex::Regex,
    /// The user code (device_code: required): the first capture group, else the whole match.
    pub code: Option<regex::Regex>,
    /// The line (or unterminated prompt) asking for the pasted code (paste_back: required).
    pub prompt: Option<regex::Regex>,
    /// A line that means the login is done (exit status 0 counts as well).
    pub success: Option<regex::Regex>,
    /// A line that means the code ran out: the login is started again (a new code).
    pub expired: Option<regex::Regex>,
    /// How long a code lives: the login is restarted just before, while the deadline allows.
    pub code_lifetime: Option<Duration>,
    /// The whole login's deadline (default 10m).
    pub deadline: Duration,
    /// Known failures, first match wins.
    pub failures: Vec<Failure>,
}

const LOGIN_KEYS: &[&str] = &[
    "flow",
    "args",
    "env",
    "pty",
    "url",
    "code",
    "prompt",
    "success",
    "expired",
    "code_lifetime",
    "deadline",
    "failures",
];
const FAILURE_KEYS: &[&str] = &["matches", "reason", "remedy"];

/// The default deadline of a login.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

/// Reads `[login]`.
pub(crate) fn parse(value: &Value<'_, '_>) -> Result<LoginDef, ConfigError> {
    let table: Table<'_, '_> = value.table("[login]")?;
    table.deny_unknown(LOGIN_KEYS)?;
    let flow_value = table.required("flow")?;
    let flow: Flow = flow_value.one_of_values(Flow::ALL)?;
    // May be empty: gemini's login is its interactive start-up with NO_BROWSER set.
    let args = table.required("args")?.strings()?;
    let mut env = BTreeMap::new();
    if let Some(v) = table.get("env") {
        for var in v.table("`env` in [login]")?.values() {
            if !valid_env_var(var.key()) {
                return Err(var
                    .key_error(format!(
                        "invalid environment variable name \"{}\" in `env` in [login]",
                        var.key()
                    ))
                    .with_help(
                        "a variable name is letters, digits and `_`, not starting with a digit",
                    ));
            }
            env.insert(var.key().to_string(), var.str()?.to_string());
        }
    }
    let pty = match table.get("pty") {
        Some(v) => v.bool()?,
        None => false,
    };
    let re = |key: &str| table.get(key).map(|v| regex(&v)).transpose();
    let url = regex(&table.required("url")?)?;
    let code = re("code")?;
    let prompt = re("prompt")?;
    if flow == Flow::DeviceCode && code.is_none() {
        return Err(flow_value
            .error("`flow = \"device_code\"` needs `code`: the regex of the user code")
            .with_help("e.g. code = '\\b([A-Z0-9]{4}-[A-Z0-9]{4})\\b'"));
    }
    if flow == Flow::PasteBack && prompt.is_none() {
        return Err(flow_value
            .error(
                "`flow = \"paste_back\"` needs `prompt`: the regex of the line asking for the code",
            )
            .with_help("e.g. prompt = 'Enter the authorization code'"));
    }
    let duration = |key: &str| -> Result<Option<Duration>, ConfigError> {
        table.get(key).map(|v| v.duration()).transpose()
    };
    let mut failures = Vec::new();
    if let Some(v) = table.get("failures") {
        for (i, item) in v.array()?.into_iter().enumerate() {
            let t = item.table(format!("[[login.failures]] item {}", i + 1))?;
            t.deny_unknown(FAILURE_KEYS)?;
            failures.push(Failure {
                matches: regex(&t.required("matches")?)?,
                reason: t.required("reason")?.non_empty_str()?.to_string(),
                remedy: t
                    .get("remedy")
                    .map(|r| r.non_empty_str().map(str::to_string))
                    .transpose()?,
            });
        }
    }
    Ok(LoginDef {
        flow,
        args,
        env,
        pty,
        url,
        code,
        prompt,
        success: re("success")?,
        expired: re("expired")?,
        code_lifetime: duration("code_lifetime")?,
        deadline: duration("deadline")?.unwrap_or(DEFAULT_DEADLINE),
        failures,
    })
}

/// The first capture group of `re` in `text`, else its whole match.
pub fn capture(re: &regex::Regex, text: &str) -> Option<String> {
    let caps = re.captures(text)?;
    caps.get(1)
        .or_else(|| caps.get(0))
        .map(|m| m.as_str().to_string())
}
