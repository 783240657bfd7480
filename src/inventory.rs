//! The inventory: which members make up the fleet and how to reach them.
//!
//! One TOML file: a `[defaults]` table and one `[members.NAME]` table per member. Every member
//! key may be set in `[defaults]` (except `host`: an address is never shared); a member's own
//! value wins, and for `auth_mode` the per-provider entries are merged. Parsing turns the file
//! into typed [`Member`]s once (durations, paths, enums), so nothing downstream re-validates.
//! Every error names the file, line and column, the offending key and what is accepted.
//!
//! Defaults when neither the member nor `[defaults]` sets a key: port 22, the local user name
//! (`$USER`, else `$LOGNAME`, else the password database), `~/.ssh/known_hosts`, strict host key
//! checking, env file `~/.config/fleetauth/env` (a path on the member, left as written), connect
//! timeout 10s, command timeout 60s. Durations must be longer than zero and at most 24h (one
//! parser, `config_toml::parse_duration`, for every duration fleetauth reads). `~` in local paths
//! (`identity_file`, `known_hosts`) is expanded with `$HOME`; relative local paths are left
//! relative to the working directory.
//!
//! [`Inventory::select`] implements `--limit`: comma-separated selectors, each a glob over member
//! names or an exact tag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config_error::ConfigError;
use crate::config_toml::{Source, Table, Value};

/// A validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// In file order.
    pub members: Vec<Member>,
    /// Per member name: its ssh_config file and which ssh settings the inventory set, for
    /// [`crate::openssh_config::apply`].
    pub ssh_config: BTreeMap<String, crate::openssh_config::Request>,
}

/// One member machine, with defaults applied.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    /// How to reach it: host, port, user, identity (local path, `~` expanded; None →
    /// ssh-agent), known_hosts (default `~/.ssh/known_hosts`), host-key checking, connect
    /// deadline.
    pub ssh: crate::ssh::Target,
    /// Remote path of the member's environment file (`~/` = the member's HOME).
    pub env_file: String,
    pub providers: Vec<String>,
    pub tags: Vec<String>,
    pub command_timeout: Duration,
    /// Overrides every provider's probe deadline for this member.
    pub probe_timeout: Option<Duration>,
    /// Per provider; missing = `auto`.
    pub auth_mode: BTreeMap<String, AuthMode>,
}

impl Member {
    /// What every row about this member repeats.
    pub fn subject(&self) -> crate::row::Subject<'_> {
        crate::row::Subject {
            member: &self.name,
            host: &self.ssh.host,
        }
    }

    /// One `unreachable` row per provider, for an SSH failure.
    pub fn unreachable_rows(&self, err: &crate::ssh::SshError) -> Vec<crate::row::Row> {
        crate::row::Row::unreachable(
            self.subject(),
            &self.providers,
            err.reason(),
            &err.to_string(),
        )
    }

    /// One row per provider with the same state and detail.
    pub fn rows(&self, state: crate::row::State, detail: &str) -> Vec<crate::row::Row> {
        crate::row::Row::for_all(self.subject(), &self.providers, state, detail)
    }

    pub fn auth_mode(&self, provider: &str) -> AuthMode {
        self.auth_mode
            .get(provider)
            .copied()
            .unwrap_or(AuthMode::Auto)
    }
}

pub use crate::ssh::HostKeyChecking;

crate::spelled! {
    /// Which credential provisioning may use for one provider on a member.
    #[derive(Default)]
    pub enum AuthMode {
        #[default]
        Auto = "auto",
        ApiKey = "api_key",
        Oauth = "oauth",
    }
}

/// Keys a `[members.NAME]` table accepts, in the order the help line lists them.
const MEMBER_KEYS: &[&str] = &[
    "host",
    "port",
    "user",
    "identity_file",
    "known_hosts",
    "host_key_checking",
    "env_file",
    "providers",
    "tags",
    "connect_timeout",
    "command_timeout",
    "probe_timeout",
    "auth_mode",
    "ssh_config",
];
const TOP_LEVEL_KEYS: &[&str] = &["defaults", "members"];

const DEFAULT_PORT: u16 = 22;
const DEFAULT_KNOWN_HOSTS: &str = "~/.ssh/known_hosts";
const DEFAULT_ENV_FILE: &str = "~/.config/fleetauth/env";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads and validates the inventory at `path`. `known_providers` are the provider names an
/// inventory may mention (the loaded provider registry).
pub fn load(path: &Path, known_providers: &[&str]) -> Result<Inventory, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(path, format!("cannot read the inventory: {e}"))
            .with_help("pass the inventory file with -i/--inventory")
    })?;
    parse(&text, path, known_providers)
}

/// Validates inventory `text`; `path` is used in messages and kept in [`Inventory::path`].
pub fn parse(text: &str, path: &Path, known_providers: &[&str]) -> Result<Inventory, ConfigError> {
    parse_with(text, path, known_providers, &LocalEnv::from_process())
}

/// What the defaults depend on in the operator's environment, passed in so tests need not
/// touch the process environment.
#[derive(Debug, Clone, Default)]
struct LocalEnv {
    home: Option<PathBuf>,
    user: Option<String>,
}

impl LocalEnv {
    fn from_process() -> LocalEnv {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        LocalEnv {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            user: var("USER").or_else(|| var("LOGNAME")).or_else(passwd_user),
        }
    }
}

/// The current user's name from the password database, for when neither `$USER` nor `$LOGNAME`
/// is set (cron, some containers).
fn passwd_user() -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: getpwuid_r writes only into `pwd` and `buf` (whose real length we pass), and
        // `result` points at `pwd` or is null; the name is copied out before `buf` is dropped.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                libc::getuid(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return name
            .to_str()
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_string);
    }
}

fn parse_with(
    text: &str,
    path: &Path,
    known_providers: &[&str],
    env: &LocalEnv,
) -> Result<Inventory, ConfigError> {
    let src = Source::new(path, text);
    let doc = src.parse()?;
    let root = src.root(&doc);
    root.deny_unknown(TOP_LEVEL_KEYS)?;
    let ctx = Ctx {
        known_providers,
        env,
    };

    let defaults = match root.get("defaults") {
        Some(value) => {
            let table = value.table("[defaults]")?;
            if let Some(host) = table.get("host") {
                return Err(host
                    .key_error(
                        "`host` cannot be set in [defaults]: every member needs its own address",
                    )
                    .with_help("set `host` in each [members.NAME] table instead"));
            }
            ctx.settings(&table)?
        }
        None => Settings::default(),
    };

    let no_members_help = "add a member: [members.NAME] with at least `host = \"…\"`";
    let Some(members_value) = root.get("members") else {
        return Err(
            ConfigError::new(path, "the inventory has no members").with_help(no_members_help)
        );
    };
    let members_table = members_value.table("[members]")?;
    if members_table.is_empty() {
        return Err(members_value
            .key_error("the inventory has no members")
            .with_help(no_members_help));
    }

    let mut members = Vec::new();
    let mut ssh_config = BTreeMap::new();
    for entry in members_table.values() {
        let name = entry.key().to_string();
        if !valid_member_name(&name) {
            return Err(entry
                .key_error(format!("invalid member name `{name}`"))
                .with_help(
                    "member names start with a letter or digit and contain only letters, digits, `.`, `_` and `-` (they are matched by --limit)",
                ));
        }
        let table = entry.table(format!("[members.{name}]"))?;
        let (member, request) = ctx.member(name, &table, &defaults)?;
        ssh_config.insert(member.name.clone(), request);
        members.push(member);
    }
    Ok(Inventory {
        path: path.to_path_buf(),
        members,
        ssh_config,
    })
}

fn valid_member_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Member settings as written in one table; `None` = not set there.
#[derive(Debug, Clone, Default)]
struct Settings {
    port: Option<u16>,
    user: Option<String>,
    identity_file: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    host_key_checking: Option<HostKeyChecking>,
    env_file: Option<String>,
    /// With the location of the list, for the "no providers" error.
    providers: Option<(Vec<String>, std::ops::Range<usize>)>,
    tags: Option<Vec<String>>,
    connect_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    probe_timeout: Option<Duration>,
    auth_mode: BTreeMap<String, AuthMode>,
    /// `Some(None)`: `"none"`.
    ssh_config: Option<Option<PathBuf>>,
}

struct Ctx<'a> {
    known_providers: &'a [&'a str],
    env: &'a LocalEnv,
}

impl Ctx<'_> {
    fn known_providers_help(&self) -> String {
        if self.known_providers.is_empty() {
            "no providers are defined: check the provider definitions".to_string()
        } else {
            format!("known providers: {}", self.known_providers.join(", "))
        }
    }

    /// Reads every member key present in `table` (`host` is the caller's business).
    fn settings(&self, table: &Table<'_, '_>) -> Result<Settings, ConfigError> {
        table.deny_unknown(MEMBER_KEYS)?;
        let mut s = Settings::default();
        for value in table.values() {
            match value.key() {
                "host" => {}
                "port" => s.port = Some(value.integer_in(1..=65535)? as u16),
                "user" => s.user = Some(value.non_empty_str()?.to_string()),
                "identity_file" => s.identity_file = Some(self.local_path(&value)?),
                "known_hosts" => s.known_hosts = Some(self.local_path(&value)?),
                "host_key_checking" => {
                    s.host_key_checking = Some(value.one_of_values(HostKeyChecking::ALL)?)
                }
                "env_file" => s.env_file = Some(value.non_empty_str()?.to_string()),
                "providers" => s.providers = Some((self.providers(&value)?, value.span())),
                "tags" => s.tags = Some(tags(&value)?),
                "connect_timeout" => s.connect_timeout = Some(value.duration()?),
                "command_timeout" => s.command_timeout = Some(value.duration()?),
                "probe_timeout" => s.probe_timeout = Some(value.duration()?),
                "auth_mode" => {
                    let name = format!("`auth_mode` in {}", table.name());
                    s.auth_mode = self.auth_modes(&value.table(name)?)?
                }
                "ssh_config" => {
                    s.ssh_config = Some(match value.non_empty_str()? {
                        "none" => None,
                        _ => Some(self.local_path(&value)?),
                    })
                }
                other => unreachable!("deny_unknown let `{other}` through"),
            }
        }
        Ok(s)
    }

    fn providers(&self, value: &Value<'_, '_>) -> Result<Vec<String>, ConfigError> {
        let mut providers: Vec<String> = Vec::new();
        for (name, item) in value.str_array()? {
            if !self.known_providers.contains(&name) {
                return Err(item
                    .error(format!("unknown provider `{name}` in {}", value.what()))
                    .with_help(self.known_providers_help()));
            }
            if providers.iter().any(|p| p == name) {
                return Err(item.error(format!(
                    "provider `{name}` is listed twice in {}",
                    value.what()
                )));
            }
            providers.push(name.to_string());
        }
        Ok(providers)
    }

    fn auth_modes(&self, table: &Table<'_, '_>) -> Result<BTreeMap<String, AuthMode>, ConfigError> {
        let mut modes = BTreeMap::new();
        for value in table.values() {
            if !self.known_providers.contains(&value.key()) {
                return Err(value
                    .key_error(format!(
                        "unknown provider `{}` in {}",
                        value.key(),
                        table.name()
                    ))
                    .with_help(self.known_providers_help()));
            }
            let mode = value.one_of_values(AuthMode::ALL)?;
            modes.insert(value.key().to_string(), mode);
        }
        Ok(modes)
    }

    /// A local path with `~` expanded from `$HOME`.
    fn local_path(&self, value: &Value<'_, '_>) -> Result<PathBuf, ConfigError> {
        let written = value.non_empty_str()?;
        expand_tilde(written, self.env.home.as_deref()).map_err(|why| {
            value
                .error(format!(
                    "cannot expand `{written}` ({}): {why}",
                    value.what()
                ))
                .with_help("write `~/…` or an absolute path")
        })
    }

    fn member(
        &self,
        name: String,
        table: &Table<'_, '_>,
        defaults: &Settings,
    ) -> Result<(Member, crate::openssh_config::Request), ConfigError> {
        let own = self.settings(table)?;
        let host = table.required("host").map_err(|e| {
            e.with_help(format!(
                "add `host = \"…\"` (name or address) to {}",
                table.name()
            ))
        })?;
        let host = host.non_empty_str()?.to_string();

        let providers = match own.providers.as_ref().or(defaults.providers.as_ref()) {
            Some((list, _)) if !list.is_empty() => list.clone(),
            Some((_, span)) if own.providers.is_some() => {
                return Err(table
                    .source()
                    .error(span.clone(), format!("member `{name}` has no providers"))
                    .with_help(format!(
                        "list at least one; {}",
                        self.known_providers_help()
                    )));
            }
            _ => {
                return Err(table
                    .error(format!("member `{name}` has no providers"))
                    .with_help(format!(
                        "set `providers = [\"…\"]` in {} or in [defaults]; {}",
                        table.name(),
                        self.known_providers_help()
                    )));
            }
        };

        let user = match own.user.clone().or_else(|| defaults.user.clone()) {
            Some(user) => user,
            None => self.env.user.clone().ok_or_else(|| {
                table
                    .error(format!("cannot tell which user to log in as on `{name}`"))
                    .with_help("neither $USER nor $LOGNAME is set locally: set `user` in [defaults] or the member")
            })?,
        };
        let known_hosts = match own
            .known_hosts
            .clone()
            .or_else(|| defaults.known_hosts.clone())
        {
            Some(path) => path,
            None => expand_tilde(DEFAULT_KNOWN_HOSTS, self.env.home.as_deref()).map_err(|why| {
                table
                    .error(format!(
                        "cannot locate the default known_hosts for `{name}`: {why}"
                    ))
                    .with_help("set `known_hosts` to an absolute path in [defaults]")
            })?,
        };
        let mut auth_mode = defaults.auth_mode.clone();
        auth_mode.extend(own.auth_mode.clone());
        let ssh_config = match own
            .ssh_config
            .clone()
            .or_else(|| defaults.ssh_config.clone())
        {
            Some(file) => (file, false),
            None => (
                expand_tilde(
                    crate::openssh_config::DEFAULT_FILE,
                    self.env.home.as_deref(),
                )
                .ok(),
                true,
            ),
        };
        let request = crate::openssh_config::Request {
            file: ssh_config.0,
            file_is_default: ssh_config.1,
            user: own.user.is_some() || defaults.user.is_some(),
            port: own.port.is_some() || defaults.port.is_some(),
            identity: own.identity_file.is_some() || defaults.identity_file.is_some(),
            known_hosts: own.known_hosts.is_some() || defaults.known_hosts.is_some(),
            host_key_checking: own.host_key_checking.is_some()
                || defaults.host_key_checking.is_some(),
            connect_timeout: own.connect_timeout.is_some() || defaults.connect_timeout.is_some(),
        };

        let member = Member {
            ssh: crate::ssh::Target {
                name: name.clone(),
                host,
                port: own.port.or(defaults.port).unwrap_or(DEFAULT_PORT),
                user,
                identities: own
                    .identity_file
                    .or_else(|| defaults.identity_file.clone())
                    .into_iter()
                    .collect(),
                known_hosts,
                host_key_checking: own
                    .host_key_checking
                    .or(defaults.host_key_checking)
                    .unwrap_or_default(),
                connect_timeout: own
                    .connect_timeout
                    .or(defaults.connect_timeout)
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                ..crate::ssh::Target::default()
            },
            name,
            env_file: own
                .env_file
                .or_else(|| defaults.env_file.clone())
                .unwrap_or_else(|| DEFAULT_ENV_FILE.to_string()),
            providers,
            tags: own
                .tags
                .or_else(|| defaults.tags.clone())
                .unwrap_or_default(),
            command_timeout: own
                .command_timeout
                .or(defaults.command_timeout)
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT),
            probe_timeout: own.probe_timeout.or(defaults.probe_timeout),
            auth_mode,
        };
        Ok((member, request))
    }
}

fn tags(value: &Value<'_, '_>) -> Result<Vec<String>, ConfigError> {
    let mut tags = Vec::new();
    for (tag, item) in value.str_array()? {
        if tag.is_empty() || tag.contains(',') || tag.chars().any(char::is_whitespace) {
            return Err(item
                .error(format!("invalid tag \"{tag}\" in {}", value.what()))
                .with_help("tags are non-empty and contain no commas or spaces (they are matched by --limit)"));
        }
        tags.push(tag.to_string());
    }
    Ok(tags)
}

/// Why a local path could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum TildeError {
    #[error("`~user` paths are not supported")]
    OtherUser,
    #[error("$HOME is not set")]
    NoHome,
}

/// Expands a leading `~` or `~/` with `home`. Other paths are returned unchanged.
fn expand_tilde(path: &str, home: Option<&Path>) -> Result<PathBuf, TildeError> {
    let rest = match path.strip_prefix('~') {
        None => return Ok(PathBuf::from(path)),
        Some("") => "",
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/'),
        Some(_) => return Err(TildeError::OtherUser),
    };
    let home = home.ok_or(TildeError::NoHome)?;
    Ok(if rest.is_empty() {
        home.to_path_buf()
    } else {
        home.join(rest)
    })
}

impl Inventory {
    /// The members chosen by a `--limit` value, in file order; `None` selects every member.
    ///
    /// `limit` is a comma-separated list of selectors. A selector picks every member whose name
    /// matches it as a glob (`build-*`, `gpu-0[1-3]`) and every member that has it as a tag. A
    /// selector that picks nothing is an error listing the member names and tags, so a typo never
    /// silently shrinks the fleet.
    pub fn select(&self, limit: Option<&str>) -> Result<Vec<&Member>, ConfigError> {
        let Some(limit) = limit else {
            return Ok(self.members.iter().collect());
        };
        let selectors: Vec<&str> = limit
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if selectors.is_empty() {
            return Err(
                ConfigError::new(&self.path, "--limit is empty").with_help(self.members_help())
            );
        }
        let mut chosen = vec![false; self.members.len()];
        for selector in selectors {
            let glob = globset::GlobBuilder::new(selector)
                .build()
                .map_err(|e| {
                    ConfigError::new(
                        &self.path,
                        format!("invalid --limit selector `{selector}`: {}", e.kind()),
                    )
                    .with_help("a selector is a member name, a glob such as `build-*`, or a tag")
                })?
                .compile_matcher();
            let mut matched = false;
            for (member, chosen) in self.members.iter().zip(chosen.iter_mut()) {
                if glob.is_match(&member.name) || member.tags.iter().any(|t| t == selector) {
                    *chosen = true;
                    matched = true;
                }
            }
            if !matched {
                return Err(ConfigError::new(
                    &self.path,
                    format!("--limit selector `{selector}` matches no member name or tag"),
                )
                .with_help(self.members_help()));
            }
        }
        Ok(self
            .members
            .iter()
            .zip(chosen)
            .filter_map(|(member, chosen)| chosen.then_some(member))
            .collect())
    }

    fn members_help(&self) -> String {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        let mut tags: Vec<&str> = self
            .members
            .iter()
            .flat_map(|m| m.tags.iter().map(String::as_str))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        let mut help = format!("members: {}", names.join(", "));
        if !tags.is_empty() {
            help.push_str(&format!("; tags: {}", tags.join(", ")));
        }
        help
    }
}

impl Member {
    /// What the ssh transport needs to reach this member.
    pub fn target(&self) -> crate::ssh::Target {
        self.ssh.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["claude", "codex", "copilot", "gemini"];

    fn env() -> LocalEnv {
        LocalEnv {
            home: Some(PathBuf::from("/home/op")),
            user: Some("op".to_string()),
        }
    }

    fn ok(text: &str) -> Inventory {
        parse_with(text, Path::new("inv.toml"), KNOWN, &env()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> ConfigError {
        match parse_with(text, Path::new("inv.toml"), KNOWN, &env()) {
            Ok(inv) => panic!("expected an error, got {inv:?}"),
            Err(e) => e,
        }
    }

    /// Asserts the location (1-based line and column) and that message and help contain the
    /// given fragments.
    fn assert_error(e: &ConfigError, line: usize, col: usize, message: &str, help: &str) {
        crate::config_error::assert_error_at(e, "inv.toml", line, col, message, help);
    }

    #[test]
    fn minimal_member_gets_every_default() {
        let inv = ok("[members.a]\nhost = \"10.0.0.1\"\nproviders = [\"gemini\"]\n");
        let m = &inv.members[0];
        assert_eq!(m.name, "a");
        assert_eq!(m.ssh.host, "10.0.0.1");
        assert_eq!(m.ssh.port, 22);
        assert_eq!(m.ssh.user, "op");
        assert!(m.ssh.identities.is_empty());
        assert_eq!(
            m.ssh.known_hosts,
            PathBuf::from("/home/op/.ssh/known_hosts")
        );
        assert_eq!(m.ssh.host_key_checking, HostKeyChecking::Strict);
        assert_eq!(m.env_file, "~/.config/fleetauth/env");
        assert_eq!(m.providers, ["gemini"]);
        assert!(m.tags.is_empty());
        assert_eq!(m.ssh.connect_timeout, Duration::from_secs(10));
        assert_eq!(m.command_timeout, Duration::from_secs(60));
        assert_eq!(m.probe_timeout, None);
        assert_eq!(m.auth_mode("gemini"), AuthMode::Auto);
        assert_eq!(inv.path, PathBuf::from("inv.toml"));
    }

    #[test]
    fn defaults_apply_and_member_values_win() {
        let inv = ok(r#"
[defaults]
user = "ops"
port = 2200
identity_file = "~/.ssh/id_ed25519"
known_hosts = "/etc/ssh/ssh_known_hosts"
host_key_checking = "accept-new"
env_file = "/srv/agent.env"
providers = ["claude", "gemini"]
tags = ["fleet"]
connect_timeout = "5s"
command_timeout = "1m30s"
probe_timeout = "2m"
auth_mode = { gemini = "api_key", claude = "oauth" }

[members.b]
host = "b.example"

[members.a]
host = "a.example"
port = 2222
user = "root"
identity_file = "/keys/a"
host_key_checking = "off"
providers = ["codex"]
tags = ["gpu", "sprint-42"]
connect_timeout = "1s"
auth_mode = { gemini = "oauth" }
"#);
        let names: Vec<_> = inv.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["b", "a"], "file order is kept");
        let b = &inv.members[0];
        assert_eq!((b.ssh.user.as_str(), b.ssh.port), ("ops", 2200));
        assert_eq!(
            b.ssh.identities,
            [PathBuf::from("/home/op/.ssh/id_ed25519")]
        );
        assert_eq!(b.ssh.known_hosts, PathBuf::from("/etc/ssh/ssh_known_hosts"));
        assert_eq!(b.ssh.host_key_checking, HostKeyChecking::AcceptNew);
        assert_eq!(b.env_file, "/srv/agent.env");
        assert_eq!(b.providers, ["claude", "gemini"]);
        assert_eq!(b.tags, ["fleet"]);
        assert_eq!(b.ssh.connect_timeout, Duration::from_secs(5));
        assert_eq!(b.command_timeout, Duration::from_secs(90));
        assert_eq!(b.probe_timeout, Some(Duration::from_secs(120)));
        assert_eq!(b.auth_mode("gemini"), AuthMode::ApiKey);
        assert_eq!(b.auth_mode("claude"), AuthMode::Oauth);

        let a = &inv.members[1];
        assert_eq!((a.ssh.user.as_str(), a.ssh.port), ("root", 2222));
        assert_eq!(a.ssh.identities, [PathBuf::from("/keys/a")]);
        assert_eq!(a.ssh.host_key_checking, HostKeyChecking::Off);
        assert_eq!(a.providers, ["codex"]);
        assert_eq!(a.tags, ["gpu", "sprint-42"]);
        assert_eq!(a.ssh.connect_timeout, Duration::from_secs(1));
        assert_eq!(a.command_timeout, Duration::from_secs(90));
        // auth_mode merges per provider: the member's gemini wins, claude comes from defaults.
        assert_eq!(a.auth_mode("gemini"), AuthMode::Oauth);
        assert_eq!(a.auth_mode("claude"), AuthMode::Oauth);
        assert_eq!(a.auth_mode("codex"), AuthMode::Auto);
    }

    #[test]
    fn tilde_expansion_uses_home_and_leaves_the_env_file_alone() {
        assert_eq!(
            expand_tilde("~", Some(Path::new("/h"))).unwrap(),
            PathBuf::from("/h")
        );
        assert_eq!(
            expand_tilde("~/.ssh/k", Some(Path::new("/h"))).unwrap(),
            PathBuf::from("/h/.ssh/k")
        );
        assert_eq!(
            expand_tilde("rel/k", Some(Path::new("/h"))).unwrap(),
            PathBuf::from("rel/k")
        );
        assert_eq!(
            expand_tilde("/abs~/k", None).unwrap(),
            PathBuf::from("/abs~/k")
        );
        assert!(expand_tilde("~bob/k", Some(Path::new("/h"))).is_err());
        assert!(expand_tilde("~/k", None).is_err());

        let inv = ok(
            "[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\nenv_file = \"~/x.env\"\nknown_hosts = \"~/kh\"\n",
        );
        assert_eq!(inv.members[0].env_file, "~/x.env");
        assert_eq!(inv.members[0].ssh.known_hosts, PathBuf::from("/home/op/kh"));
    }

    #[test]
    fn tilde_user_paths_are_an_error() {
        let e = err(
            "[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\nidentity_file = \"~bob/id\"\n",
        );
        assert_error(
            &e,
            4,
            17,
            "cannot expand `~bob/id`",
            "write `~/…` or an absolute path",
        );
    }

    #[test]
    fn without_home_the_default_known_hosts_is_an_error() {
        let env = LocalEnv {
            home: None,
            user: Some("op".into()),
        };
        let e = parse_with(
            "[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\n",
            Path::new("inv.toml"),
            KNOWN,
            &env,
        )
        .unwrap_err();
        assert!(e.message.contains("$HOME is not set"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn without_a_local_user_name_user_is_required() {
        let env = LocalEnv {
            home: Some("/h".into()),
            user: None,
        };
        let text = "[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\n";
        let e = parse_with(text, Path::new("inv.toml"), KNOWN, &env).unwrap_err();
        assert!(e.message.contains("which user"), "{e}");
        let with_user = format!("{text}user = \"ops\"\n");
        let inv = parse_with(&with_user, Path::new("inv.toml"), KNOWN, &env).unwrap();
        assert_eq!(inv.members[0].ssh.user, "ops");
    }

    #[test]
    fn unknown_key_in_a_member_points_at_the_key_and_lists_accepted_keys() {
        let e = err("[members.build-01]\nhost = \"h\"\nproviders = [\"claude\"]\nprot = 22\n");
        assert_error(
            &e,
            4,
            1,
            "unknown key `prot` in [members.build-01]",
            "accepted keys: host, port, user, identity_file, known_hosts, host_key_checking, env_file, providers, tags, connect_timeout, command_timeout, probe_timeout, auth_mode, ssh_config",
        );
        assert_eq!(
            e.to_string(),
            "error: unknown key `prot` in [members.build-01]\n --> inv.toml:4:1\n  |\n4 | prot = 22\n  | ^^^^\n  = help: accepted keys: host, port, user, identity_file, known_hosts, host_key_checking, env_file, providers, tags, connect_timeout, command_timeout, probe_timeout, auth_mode, ssh_config"
        );
    }

    #[test]
    fn unknown_key_in_defaults() {
        let e = err("[defaults]\n  usr = \"x\"\n[members.a]\nhost = \"h\"\n");
        assert_error(
            &e,
            2,
            3,
            "unknown key `usr` in [defaults]",
            "accepted keys: host, port",
        );
    }

    #[test]
    fn unknown_top_level_key() {
        let e = err("[member.a]\nhost = \"h\"\n");
        assert_error(
            &e,
            1,
            2,
            "unknown key `member` in the top level",
            "accepted keys: defaults, members",
        );
    }

    #[test]
    fn host_in_defaults_says_why() {
        let e = err("[defaults]\nhost = \"h\"\n[members.a]\nhost = \"h\"\n");
        assert_error(
            &e,
            2,
            1,
            "`host` cannot be set in [defaults]",
            "set `host` in each [members.NAME]",
        );
    }

    #[test]
    fn missing_host_points_at_the_member_header() {
        let e = err("[defaults]\nproviders = [\"claude\"]\n\n[members.a]\nport = 22\n");
        assert_error(
            &e,
            4,
            1,
            "missing key `host` in [members.a]",
            "add `host = \"…\"`",
        );
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let e = err("[members.a]\nhost = \"h\"\nport = \"22\"\n");
        assert_error(
            &e,
            3,
            8,
            "`port` in [members.a] must be an integer, found a string",
            "",
        );
        let e = err("[members.a]\nhost = 10\n");
        assert_error(
            &e,
            2,
            8,
            "`host` in [members.a] must be a string, found an integer",
            "",
        );
        let e = err("[members.a]\nhost = \"h\"\nproviders = \"claude\"\n");
        assert_error(&e, 3, 13, "`providers` in [members.a] must be an array", "");
        let e = err("[members.a]\nhost = \"h\"\ntags = [\"x\", 3]\n");
        assert_error(
            &e,
            3,
            14,
            "item 2 of `tags` in [members.a] must be a string",
            "",
        );
        let e = err("members = 3\n");
        assert_error(&e, 1, 11, "`members` in the top level must be a table", "");
        let e = err("[members]\na = \"h\"\n");
        assert_error(&e, 2, 5, "`a` in [members] must be a table", "");
    }

    #[test]
    fn port_out_of_range() {
        let e = err("[members.a]\nhost = \"h\"\nport = 70000\n");
        assert_error(
            &e,
            3,
            8,
            "`port` in [members.a] must be between 1 and 65535, found 70000",
            "",
        );
    }

    #[test]
    fn bad_duration() {
        let e = err("[defaults]\nconnect_timeout = \"10 parsecs\"\n[members.a]\nhost = \"h\"\n");
        assert_error(
            &e,
            2,
            19,
            "invalid duration \"10 parsecs\" for `connect_timeout` in [defaults]",
            "\"1m30s\"",
        );
        let e = err("[members.a]\nhost = \"h\"\ncommand_timeout = 10\n");
        assert_error(&e, 3, 19, "must be a duration string", "\"10s\"");
        let e = err("[members.a]\nhost = \"h\"\nprobe_timeout = \"0s\"\n");
        assert_error(&e, 3, 17, "must be longer than zero", "");
        // Longer than a day would overflow the clock in every member's task: refused here.
        let e = err("[members.a]\nhost = \"h\"\ncommand_timeout = \"300000000000y\"\n");
        assert_error(
            &e,
            3,
            19,
            "`command_timeout` in [members.a] must be at most 24h, found \"300000000000y\"",
            "longer than 24h",
        );
        let e = err("[defaults]\nconnect_timeout = \"25h\"\n[members.a]\nhost = \"h\"\n");
        assert_error(&e, 2, 19, "must be at most 24h", "");
        let inv =
            ok("[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\nprobe_timeout = \"24h\"\n");
        assert_eq!(
            inv.members[0].probe_timeout,
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn enum_values_have_one_spelling_in_toml_json_and_messages() {
        for &mode in HostKeyChecking::ALL {
            let inv = ok(&format!(
                "[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\nhost_key_checking = \"{mode}\"\n"
            ));
            assert_eq!(inv.members[0].ssh.host_key_checking, mode);
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str());
        }
        assert_eq!(HostKeyChecking::AcceptNew.as_str(), "accept-new");
        for &mode in AuthMode::ALL {
            let inv = ok(&format!(
                "[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\nauth_mode = {{ claude = \"{mode}\" }}\n"
            ));
            assert_eq!(inv.members[0].auth_mode("claude"), mode);
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str());
        }
        assert_eq!(HostKeyChecking::default(), HostKeyChecking::Strict);
        assert_eq!(AuthMode::default(), AuthMode::Auto);
    }

    #[test]
    fn bad_enum_values_list_the_accepted_ones() {
        let e = err("[members.a]\nhost = \"h\"\nhost_key_checking = \"yes\"\n");
        assert_error(
            &e,
            3,
            21,
            "invalid value \"yes\" for `host_key_checking` in [members.a]",
            "accepted values: strict, accept-new, off",
        );
        let e = err("[defaults]\nauth_mode = { gemini = \"key\" }\n[members.a]\nhost = \"h\"\n");
        assert_error(
            &e,
            2,
            24,
            "invalid value \"key\" for `gemini` in `auth_mode` in [defaults]",
            "accepted values: auto, api_key, oauth",
        );
    }

    #[test]
    fn empty_fleet_is_an_error() {
        let e = parse_with(
            "[defaults]\nuser = \"x\"\n",
            Path::new("inv.toml"),
            KNOWN,
            &env(),
        )
        .unwrap_err();
        assert_eq!(e.file, Path::new("inv.toml"));
        assert_eq!(e.line, None);
        assert_eq!(e.message, "the inventory has no members");
        assert!(e.help.unwrap().contains("[members.NAME]"));
        let e = err("[members]\n");
        assert_error(&e, 1, 2, "the inventory has no members", "[members.NAME]");
    }

    #[test]
    fn member_without_providers_is_an_error() {
        let e = err("[members.a]\nhost = \"h\"\n");
        assert_error(
            &e,
            1,
            1,
            "member `a` has no providers",
            "known providers: claude, codex, copilot, gemini",
        );
        let e = err(
            "[defaults]\nproviders = [\"gemini\"]\n[members.a]\nhost = \"h\"\nproviders = []\n",
        );
        assert_error(&e, 5, 13, "member `a` has no providers", "known providers:");
    }

    #[test]
    fn unknown_provider_names_list_the_known_ones() {
        let e = err("[members.a]\nhost = \"h\"\nproviders = [\"gemini\", \"gpt\"]\n");
        assert_error(
            &e,
            3,
            24,
            "unknown provider `gpt` in `providers` in [members.a]",
            "known providers: claude, codex, copilot, gemini",
        );
        let e = err(
            "[members.a]\nhost = \"h\"\nproviders = [\"gemini\"]\nauth_mode = { gemni = \"oauth\" }\n",
        );
        assert_error(
            &e,
            4,
            15,
            "unknown provider `gemni` in `auth_mode` in [members.a]",
            "known providers: claude, codex, copilot, gemini",
        );
    }

    #[test]
    fn duplicate_provider_is_an_error() {
        let e = err("[members.a]\nhost = \"h\"\nproviders = [\"gemini\", \"gemini\"]\n");
        assert_error(&e, 3, 24, "provider `gemini` is listed twice", "");
    }

    #[test]
    fn invalid_toml_is_located() {
        let e = err("[members.a]\nhost = \"h\nport = 22\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("invalid TOML: "), "{e}");
        let e = err("[members.a]\nhost = \"h\"\nhost = \"i\"\n");
        assert_error(&e, 3, 1, "invalid TOML: duplicate key", "");
    }

    #[test]
    fn invalid_member_names_and_tags() {
        let e = err("[members.\"build 01\"]\nhost = \"h\"\n");
        assert_error(
            &e,
            1,
            10,
            "invalid member name `build 01`",
            "letters, digits",
        );
        let e = err("[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\ntags = [\"a,b\"]\n");
        assert_error(&e, 4, 9, "invalid tag \"a,b\"", "no commas");
    }

    #[test]
    fn shipped_example_is_valid_and_shows_every_key() {
        let text = include_str!("../inventory/example.toml");
        let registry = crate::provider::Registry::builtin().unwrap_or_else(|e| panic!("{e}"));
        let inv = parse_with(text, Path::new("example.toml"), &registry.names(), &env())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.members.len(), 3);
        let b2 = &inv.members[1];
        assert_eq!(b2.auth_mode("claude"), AuthMode::Oauth);
        assert_eq!(b2.auth_mode("gemini"), AuthMode::ApiKey);
        for key in MEMBER_KEYS {
            assert!(
                text.lines().any(|l| l
                    .trim_start()
                    .trim_start_matches("# ")
                    .starts_with(&format!("{key} ="))),
                "example.toml does not show `{key}`"
            );
        }
    }

    fn fleet() -> Inventory {
        ok(r#"
[defaults]
providers = ["claude"]
[members.build-01]
host = "a"
tags = ["gpu"]
[members.build-02]
host = "b"
[members.web-01]
host = "c"
tags = ["gpu", "edge"]
"#)
    }

    fn names(members: Vec<&Member>) -> Vec<&str> {
        members.into_iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn select_none_is_every_member_in_file_order() {
        let inv = fleet();
        assert_eq!(
            names(inv.select(None).unwrap()),
            ["build-01", "build-02", "web-01"]
        );
    }

    #[test]
    fn select_by_name_glob_and_tag_keeps_file_order() {
        let inv = fleet();
        assert_eq!(names(inv.select(Some("build-02")).unwrap()), ["build-02"]);
        assert_eq!(
            names(inv.select(Some("build-*")).unwrap()),
            ["build-01", "build-02"]
        );
        assert_eq!(
            names(inv.select(Some("gpu")).unwrap()),
            ["build-01", "web-01"]
        );
        assert_eq!(
            names(inv.select(Some("web-01, build-0[2]")).unwrap()),
            ["build-02", "web-01"],
            "file order, not selector order"
        );
        assert_eq!(
            names(inv.select(Some("edge,web-*")).unwrap()),
            ["web-01"],
            "a member picked twice appears once"
        );
    }

    #[test]
    fn selector_matching_nothing_lists_members_and_tags() {
        let inv = fleet();
        let e = inv.select(Some("build-*,bulid-03")).unwrap_err();
        assert_eq!(e.file, Path::new("inv.toml"));
        assert_eq!(
            e.message,
            "--limit selector `bulid-03` matches no member name or tag"
        );
        assert_eq!(
            e.help.as_deref(),
            Some("members: build-01, build-02, web-01; tags: edge, gpu")
        );
        assert!(inv.select(Some(" , ")).is_err());
        let e = inv.select(Some("build-[")).unwrap_err();
        assert!(
            e.message.contains("invalid --limit selector `build-[`"),
            "{e}"
        );
    }
}
