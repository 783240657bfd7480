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
//! A `host` may carry its user and port (`user@host:port`, `[v6]:port`, `ssh://…`): see
//! `split_host`. [`load_as`] also reads Ansible INI/YAML inventories (`crate::ansible`), which
//! end in the same `Ctx::assemble` as TOML members, so defaults and validation are shared.
//!
//! [`Inventory::select`] implements `--limit` the way Ansible does: comma-separated patterns
//! (globs over member names, or exact tags), `&pattern` intersects, `!pattern` excludes.

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
    /// What the reader skipped and the operator should know (an Ansible Vault file it cannot
    /// decrypt), each a full line for stderr.
    pub warnings: Vec<String>,
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
    "proxy_jump",
];
const TOP_LEVEL_KEYS: &[&str] = &["defaults", "members"];

const DEFAULT_PORT: u16 = 22;
const DEFAULT_KNOWN_HOSTS: &str = "~/.ssh/known_hosts";
const DEFAULT_ENV_FILE: &str = "~/.config/fleetauth/env";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Which reader `-i` uses (`--inventory-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InventoryFormat {
    /// By content: `[defaults]`/`[members.…]` is fleetauth's TOML; other `[group]` headers
    /// are Ansible INI; a first line `---` or `name:` is Ansible YAML.
    #[default]
    Auto,
    Toml,
    /// Ansible INI or YAML (told apart by content).
    Ansible,
}

/// Reads and validates the inventory at `path`. `known_providers` are the provider names an
/// inventory may mention (the loaded provider registry).
pub fn load(path: &Path, known_providers: &[&str]) -> Result<Inventory, ConfigError> {
    load_as(path, known_providers, InventoryFormat::Auto)
}

/// [`load`] with the format given (or detected, for `Auto`).
pub fn load_as(
    path: &Path,
    known_providers: &[&str],
    format: InventoryFormat,
) -> Result<Inventory, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(path, format!("cannot read the inventory: {e}"))
            .with_help("pass the inventory file with -i/--inventory")
    })?;
    let ansible = match format {
        InventoryFormat::Auto => crate::ansible::looks_like_ansible(&text),
        InventoryFormat::Toml => false,
        InventoryFormat::Ansible => true,
    };
    if ansible {
        crate::ansible::parse_with(&text, path, known_providers, &LocalEnv::from_process())
    } else {
        parse(&text, path, known_providers)
    }
}

/// Validates inventory `text`; `path` is used in messages and kept in [`Inventory::path`].
pub fn parse(text: &str, path: &Path, known_providers: &[&str]) -> Result<Inventory, ConfigError> {
    parse_with(text, path, known_providers, &LocalEnv::from_process())
}

/// What the defaults depend on in the operator's environment, passed in so tests need not
/// touch the process environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalEnv {
    pub(crate) home: Option<PathBuf>,
    pub(crate) user: Option<String>,
}

impl LocalEnv {
    pub(crate) fn from_process() -> LocalEnv {
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
        warnings: Vec::new(),
    })
}

pub(crate) fn valid_member_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Member settings as written in one table; `None` = not set there.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) port: Option<u16>,
    pub(crate) user: Option<String>,
    pub(crate) identity_file: Option<PathBuf>,
    pub(crate) known_hosts: Option<PathBuf>,
    pub(crate) host_key_checking: Option<HostKeyChecking>,
    pub(crate) env_file: Option<String>,
    /// With the location of the list, for the "no providers" error.
    pub(crate) providers: Option<(Vec<String>, std::ops::Range<usize>)>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) command_timeout: Option<Duration>,
    pub(crate) probe_timeout: Option<Duration>,
    pub(crate) auth_mode: BTreeMap<String, AuthMode>,
    pub(crate) proxy_jump: Option<String>,
    /// `Some(None)`: `"none"`.
    pub(crate) ssh_config: Option<Option<PathBuf>>,
}

pub(crate) struct Ctx<'a> {
    pub(crate) known_providers: &'a [&'a str],
    pub(crate) env: &'a LocalEnv,
}

impl Ctx<'_> {
    pub(crate) fn known_providers_help(&self) -> String {
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
                "proxy_jump" => {
                    let text = value.non_empty_str()?;
                    if text != "none" {
                        crate::openssh_config::parse_proxy_jump(text).map_err(|why| {
                            value.error(why).with_help(
                                "write [user@]host[:port] or ssh://[user@]host[:port], \
                                 comma-separated (first hop first), or \"none\"",
                            )
                        })?;
                    }
                    s.proxy_jump = Some(text.to_string())
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
        let mut own = self.settings(table)?;
        let host_value = table.required("host").map_err(|e| {
            e.with_help(format!(
                "add `host = \"…\"` (name or address) to {}",
                table.name()
            ))
        })?;
        let written = host_value.non_empty_str()?;
        let spec =
            split_host(written).map_err(|bad| host_value.error(bad.message).with_help(bad.help))?;
        let conflict =
            |what: &str, theirs: String, ours: String| {
                host_value
                .error(format!(
                    "`host = \"{written}\"` in {} says {what} {ours} but `{what}` says {theirs}",
                    table.name()
                ))
                .with_help(format!("write the {what} once: drop it from `host` or drop `{what}`"))
            };
        if let (Some(port), Some(own_port)) = (spec.port, own.port)
            && port != own_port
        {
            return Err(conflict("port", own_port.to_string(), port.to_string()));
        }
        if let (Some(user), Some(own_user)) = (&spec.user, &own.user)
            && user != own_user
        {
            return Err(conflict("user", own_user.clone(), user.clone()));
        }
        own.port = spec.port.or(own.port);
        own.user = spec.user.or(own.user);
        if let Some((list, span)) = &own.providers
            && list.is_empty()
        {
            return Err(table
                .source()
                .error(span.clone(), format!("member `{name}` has no providers"))
                .with_help(format!(
                    "list at least one; {}",
                    self.known_providers_help()
                )));
        }
        let where_providers = format!(
            "set `providers = [\"…\"]` in {} or in [defaults]",
            table.name()
        );
        self.assemble(
            name,
            spec.host,
            own,
            defaults,
            &where_providers,
            &|message| table.error(message),
        )
    }

    /// A member from its own settings and the defaults, with fleetauth's defaults for what
    /// neither sets; shared by the TOML and the Ansible readers. `at` locates errors about the
    /// member as a whole; `where_providers` says where providers may be set.
    pub(crate) fn assemble(
        &self,
        name: String,
        host: String,
        own: Settings,
        defaults: &Settings,
        where_providers: &str,
        at: &dyn Fn(String) -> ConfigError,
    ) -> Result<(Member, crate::openssh_config::Request), ConfigError> {
        let providers =
            match own.providers.as_ref().or(defaults.providers.as_ref()) {
                Some((list, _)) if !list.is_empty() => list.clone(),
                _ => {
                    return Err(at(format!("member `{name}` has no providers")).with_help(
                        format!("{where_providers}; {}", self.known_providers_help()),
                    ));
                }
            };

        let user = match own.user.clone().or_else(|| defaults.user.clone()) {
            Some(user) => user,
            None => self.env.user.clone().ok_or_else(|| {
                at(format!("cannot tell which user to log in as on `{name}`"))
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
                at(format!(
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
            proxy_jump: own.proxy_jump.is_some() || defaults.proxy_jump.is_some(),
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
                proxy_jump: own
                    .proxy_jump
                    .or_else(|| defaults.proxy_jump.clone())
                    .filter(|j| j != "none"),
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

/// A `host` value split into address, port and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostSpec {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
}

/// Why a `host` value was refused, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadHost {
    pub message: String,
    pub help: String,
}

/// Understands what people write in `host`: `name`, `10.0.0.5`, `::1`, `[::1]`, `user@name`,
/// `name:2222`, `[fe80::1]:2222`, `ssh://user@name:2222`. Anything else with spaces, slashes,
/// an empty part or a bad port is refused (it would otherwise fail at run time as a DNS error).
pub(crate) fn split_host(written: &str) -> Result<HostSpec, BadHost> {
    let bad = |why: &str| {
        BadHost {
        message: format!("invalid host \"{written}\": {why}"),
        help: "write a name or address (`build-01.lan`, `10.0.0.5`, `::1`), optionally as `user@host`, `host:port`, `[v6]:port` or `ssh://user@host:port`".to_string(),
    }
    };
    let trimmed = written.trim();
    let mut rest = trimmed;
    if let Some(url) = rest.strip_prefix("ssh://") {
        rest = url.strip_suffix('/').unwrap_or(url);
    } else if rest.contains("://") {
        return Err(bad("only the ssh:// scheme is understood"));
    }
    let mut user = None;
    if let Some((u, h)) = rest.rsplit_once('@') {
        if u.is_empty() || u.contains('@') || u.contains(':') {
            return Err(bad(
                "the user part before `@` is empty or not a plain user name",
            ));
        }
        user = Some(u.to_string());
        rest = h;
    }
    let parse_port = |p: &str| -> Result<u16, BadHost> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(&format!("port `{p}` is not a number between 1 and 65535")))
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(bad("`[` without `]`"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("only an IPv6 address goes between `[` and `]`"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => return Err(bad("only `:port` may follow `]`")),
            },
        };
        (addr.to_string(), port)
    } else if rest.matches(':').count() > 1 {
        if rest.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("not an IPv6 address; write `[v6]:port` for a port"));
        }
        (rest.to_string(), None)
    } else if let Some((h, p)) = rest.split_once(':') {
        (h.to_string(), Some(parse_port(p)?))
    } else {
        (rest.to_string(), None)
    };
    if host.is_empty() {
        return Err(bad("no host name or address"));
    }
    if host.contains(['/', '[', ']', '@']) || host.chars().any(char::is_whitespace) {
        return Err(bad("a host name contains no spaces, `/`, `@` or brackets"));
    }
    Ok(HostSpec { host, port, user })
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
pub(crate) enum TildeError {
    #[error("`~user` paths are not supported")]
    OtherUser,
    #[error("$HOME is not set")]
    NoHome,
}

/// Expands a leading `~` or `~/` with `home`. Other paths are returned unchanged.
pub(crate) fn expand_tilde(path: &str, home: Option<&Path>) -> Result<PathBuf, TildeError> {
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
    /// `limit` is a comma-separated list of patterns, as Ansible's `--limit`: a plain pattern
    /// adds the members it picks, `&pattern` keeps only members it also picks, `!pattern` drops
    /// the members it picks. They apply in Ansible's order whatever their order in the list:
    /// the union of the plain patterns (every member when there is none), then each
    /// intersection, then each exclusion. A pattern picks every member whose name matches it as
    /// a glob (`build-*`, `gpu-0[1-3]`) and every member that has it as a tag. A pattern that
    /// picks nothing is an error naming the closest member names and tags, so a typo never
    /// silently shrinks (or, in an exclusion, grows) the fleet.
    pub fn select(&self, limit: Option<&str>) -> Result<Vec<&Member>, ConfigError> {
        let Some(limit) = limit else {
            return Ok(self.members.iter().collect());
        };
        let patterns: Vec<&str> = limit
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if patterns.is_empty() {
            return Err(ConfigError::new(&self.path, "--limit is empty")
                .with_help("write member names, globs or tags, separated by commas"));
        }
        let mut unions: Vec<Vec<bool>> = Vec::new();
        let mut intersections = Vec::new();
        let mut exclusions = Vec::new();
        for written in patterns {
            let (list, pattern) = if let Some(p) = written.strip_prefix('!') {
                (&mut exclusions, p.trim())
            } else if let Some(p) = written.strip_prefix('&') {
                (&mut intersections, p.trim())
            } else {
                (&mut unions, written)
            };
            list.push(self.picked_by(pattern)?);
        }
        let mut chosen = if unions.is_empty() {
            vec![true; self.members.len()]
        } else {
            let mut any = vec![false; self.members.len()];
            for picked in &unions {
                for (c, p) in any.iter_mut().zip(picked) {
                    *c |= p;
                }
            }
            any
        };
        for picked in &intersections {
            for (c, p) in chosen.iter_mut().zip(picked) {
                *c &= p;
            }
        }
        for picked in &exclusions {
            for (c, p) in chosen.iter_mut().zip(picked) {
                *c &= !p;
            }
        }
        if !chosen.contains(&true) {
            return Err(ConfigError::new(
                &self.path,
                format!("--limit `{limit}` leaves no member"),
            )
            .with_help("`&pattern` keeps only members it also picks and `!pattern` drops members: together they removed every member the other patterns picked"));
        }
        Ok(self
            .members
            .iter()
            .zip(chosen)
            .filter_map(|(member, chosen)| chosen.then_some(member))
            .collect())
    }

    /// Which members one pattern (without its `!`/`&`) picks; an error if none.
    fn picked_by(&self, pattern: &str) -> Result<Vec<bool>, ConfigError> {
        if pattern.is_empty() {
            return Err(ConfigError::new(
                &self.path,
                "--limit has an empty pattern after `!` or `&`",
            )
            .with_help("write `!NAME` or `&TAG`, with the name, glob or tag right after it"));
        }
        let glob = globset::GlobBuilder::new(pattern)
            .build()
            .map_err(|e| {
                ConfigError::new(
                    &self.path,
                    format!("invalid --limit pattern `{pattern}`: {}", e.kind()),
                )
                .with_help("a pattern is a member name, a glob such as `build-*`, or a tag")
            })?
            .compile_matcher();
        let picked: Vec<bool> = self
            .members
            .iter()
            .map(|m| glob.is_match(&m.name) || m.tags.iter().any(|t| t == pattern))
            .collect();
        if !picked.contains(&true) {
            return Err(ConfigError::new(
                &self.path,
                format!("--limit pattern `{pattern}` matches no member name or tag"),
            )
            .with_help(self.closest_help(pattern)));
        }
        Ok(picked)
    }

    /// The few member names and tags closest to `pattern` (edit distance), not all of them.
    fn closest_help(&self, pattern: &str) -> String {
        const SHOWN: usize = 3;
        let mut candidates: Vec<(usize, String)> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.members {
            if seen.insert(("member", m.name.as_str())) {
                candidates.push((
                    edit_distance(pattern, &m.name),
                    format!("{} (member)", m.name),
                ));
            }
            for tag in &m.tags {
                if seen.insert(("tag", tag.as_str())) {
                    candidates.push((edit_distance(pattern, tag), format!("{tag} (tag)")));
                }
            }
        }
        candidates.sort();
        let closest: Vec<String> = candidates
            .into_iter()
            .take(SHOWN)
            .map(|(_, name)| name)
            .collect();
        format!(
            "closest: {}; `fleetauth inventory check -i {}` lists every member and its tags",
            closest.join(", "),
            self.path.display()
        )
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Something `inventory check` found wrong with a member's local files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// An error makes the member unusable (its identity file cannot be read); a warning is
    /// a likely failure (strict host key checking with no known_hosts file).
    pub error: bool,
    pub message: String,
}

impl Member {
    /// Checks the local files this member needs: the identity file must exist and be
    /// readable (an error); a missing known_hosts file is a warning under strict checking when
    /// the global `/etc/ssh/ssh_known_hosts` is missing too (no host would be accepted), and
    /// nothing under accept-new or off (the file is created on the first connection, or not
    /// needed).
    pub fn local_problems(&self) -> Vec<Problem> {
        self.local_problems_with(Path::new(crate::ssh::GLOBAL_KNOWN_HOSTS))
    }

    fn local_problems_with(&self, global_known_hosts: &Path) -> Vec<Problem> {
        let mut problems = Vec::new();
        for identity in &self.ssh.identities {
            if let Err(e) = std::fs::File::open(identity) {
                problems.push(Problem {
                    error: true,
                    message: format!(
                        "member `{}`: identity_file {} cannot be read: {e}",
                        self.name,
                        identity.display()
                    ),
                });
            }
        }
        for certificate in &self.ssh.certificate_files {
            if let Err(why) = crate::ssh::read_certificate(certificate) {
                problems.push(Problem {
                    error: false,
                    message: format!(
                        "member `{}`: CertificateFile: {why}; it is skipped (as OpenSSH does) and the plain keys are offered",
                        self.name
                    ),
                });
            }
        }
        if self.ssh.host_key_checking == HostKeyChecking::Strict
            && !self.ssh.known_hosts.exists()
            && !global_known_hosts.exists()
        {
            problems.push(Problem {
                error: false,
                message: format!(
                    "member `{}`: known_hosts {} does not exist (nor {}): with strict host key checking no host key will be accepted (add the host's key, or use host_key_checking = \"accept-new\" for a first connection)",
                    self.name,
                    self.ssh.known_hosts.display(),
                    global_known_hosts.display()
                ),
            });
        }
        problems
    }

    /// What the ssh transport needs to reach this member.
    pub fn target(&self) -> crate::ssh::Target {
        self.ssh.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const KNOWN: &[&str] = &["claude", "codex", "copilot", "gemini"];

    /// The operator's side as the unit tests of every inventory reader see it.
    pub(crate) fn env() -> LocalEnv {
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
            "accepted keys: host, port, user, identity_file, known_hosts, host_key_checking, env_file, providers, tags, connect_timeout, command_timeout, probe_timeout, auth_mode, ssh_config, proxy_jump",
        );
        assert_eq!(
            e.to_string(),
            "error: unknown key `prot` in [members.build-01]\n --> inv.toml:4:1\n  |\n4 | prot = 22\n  | ^^^^\n  = help: accepted keys: host, port, user, identity_file, known_hosts, host_key_checking, env_file, providers, tags, connect_timeout, command_timeout, probe_timeout, auth_mode, ssh_config, proxy_jump"
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
    fn selector_matching_nothing_names_the_closest_members_and_tags() {
        let inv = fleet();
        let e = inv.select(Some("build-*,bulid-03")).unwrap_err();
        assert_eq!(e.file, Path::new("inv.toml"));
        assert_eq!(
            e.message,
            "--limit pattern `bulid-03` matches no member name or tag"
        );
        let help = e.help.unwrap();
        assert!(
            help.starts_with("closest: build-01 (member), build-02 (member), web-01 (member);"),
            "{help}"
        );
        let e = inv.select(Some("!gpx")).unwrap_err();
        assert!(e.help.unwrap().starts_with("closest: gpu (tag),"));
        assert!(inv.select(Some(" , ")).is_err());
        assert!(inv.select(Some("!")).is_err());
        let e = inv.select(Some("build-[")).unwrap_err();
        assert!(
            e.message.contains("invalid --limit pattern `build-[`"),
            "{e}"
        );
    }

    #[test]
    fn select_ansible_style_unions_then_intersections_then_exclusions() {
        let inv = fleet();
        assert_eq!(names(inv.select(Some("!gpu")).unwrap()), ["build-02"]);
        assert_eq!(
            names(inv.select(Some("build-*,&gpu")).unwrap()),
            ["build-01"]
        );
        // Order in the list does not matter: unions first, then &, then !.
        assert_eq!(
            names(inv.select(Some("!build-01,&gpu,build-*,web-01")).unwrap()),
            ["web-01"]
        );
        assert_eq!(
            names(inv.select(Some("*,!edge")).unwrap()),
            ["build-01", "build-02"]
        );
        let e = inv.select(Some("build-02,&gpu")).unwrap_err();
        assert!(e.message.contains("leaves no member"), "{e}");
    }

    #[test]
    fn host_values_are_split_or_refused() {
        let spec = |h: &str, host: &str, port: Option<u16>, user: Option<&str>| {
            assert_eq!(
                split_host(h).unwrap_or_else(|e| panic!("{h}: {}", e.message)),
                HostSpec {
                    host: host.into(),
                    port,
                    user: user.map(Into::into)
                },
                "{h}"
            );
        };
        spec("build-01.lan", "build-01.lan", None, None);
        spec("agent@10.0.0.5", "10.0.0.5", None, Some("agent"));
        spec("10.0.0.5:2222", "10.0.0.5", Some(2222), None);
        spec("::1", "::1", None, None);
        spec("fe80::1:22", "fe80::1:22", None, None);
        spec("[::1]", "::1", None, None);
        spec("[::1]:2200", "::1", Some(2200), None);
        spec("ssh://ops@h.lan:2022", "h.lan", Some(2022), Some("ops"));
        spec("ssh://h.lan/", "h.lan", None, None);
        spec("ops@[::1]:22", "::1", Some(22), Some("ops"));
        for bad in [
            "h:0",
            "h:99999",
            "h:x",
            "@h",
            "a@",
            "[h]:22",
            "[::1",
            "[::1]x",
            "http://h",
            "a b",
            "ssh://h/path",
            "1:2:zz",
            "h:",
        ] {
            assert!(split_host(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn host_parts_fill_port_and_user_and_conflicts_are_located() {
        let inv = ok(
            "[defaults]\nport = 2200\nuser = \"d\"\n[members.a]\nhost = \"ops@[::1]:2222\"\nproviders = [\"claude\"]\n",
        );
        let m = &inv.members[0];
        assert_eq!(
            (m.ssh.host.as_str(), m.ssh.port, m.ssh.user.as_str()),
            ("::1", 2222, "ops")
        );
        let inv = ok(
            "[members.a]\nhost = \"ssh://h:22\"\nport = 22\nuser = \"x\"\nproviders = [\"claude\"]\n",
        );
        assert_eq!(inv.members[0].ssh.host, "h");
        let e = err("[members.a]\nhost = \"h:2222\"\nport = 22\nproviders = [\"claude\"]\n");
        assert_error(
            &e,
            2,
            8,
            "says port 2222 but `port` says 22",
            "write the port once",
        );
        let e = err("[members.a]\nhost = \"bob@h\"\nuser = \"ann\"\nproviders = [\"claude\"]\n");
        assert_error(&e, 2, 8, "says user bob but `user` says ann", "");
        let e = err("[members.a]\nhost = \"h:port\"\nproviders = [\"claude\"]\n");
        assert_error(&e, 2, 8, "invalid host \"h:port\"", "`[v6]:port`");
    }

    #[test]
    fn local_problems_report_a_missing_identity_and_known_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        std::fs::write(&key, "k").unwrap();
        let kh = dir.path().join("kh");
        let text = |identity: &Path, checking: &str| {
            format!(
                "[members.a]\nhost = \"h\"\nproviders = [\"claude\"]\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\nhost_key_checking = \"{checking}\"\n",
                identity.display(),
                kh.display()
            )
        };
        let inv = ok(&text(&key, "strict"));
        let problems = inv.members[0].local_problems_with(&dir.path().join("global"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(!problems[0].error && problems[0].message.contains("known_hosts"));
        assert!(
            ok(&text(&key, "accept-new")).members[0]
                .local_problems_with(&dir.path().join("global"))
                .is_empty()
        );
        std::fs::write(&kh, "").unwrap();
        assert!(
            ok(&text(&key, "strict")).members[0]
                .local_problems_with(&dir.path().join("global"))
                .is_empty()
        );
        let problems = ok(&text(&dir.path().join("nope"), "off")).members[0]
            .local_problems_with(&dir.path().join("global"));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].error && problems[0].message.contains("identity_file"));

        // A CertificateFile that is missing or not a certificate is only a warning.
        let mut m = ok(&text(&key, "off")).members[0].clone();
        let garbage = dir.path().join("garbage-cert.pub");
        std::fs::write(&garbage, "ssh-ed25519-cert-v01@openssh.com AAAA\n").unwrap();
        m.ssh.certificate_files = vec![dir.path().join("absent-cert.pub"), garbage.clone()];
        let problems = m.local_problems_with(&dir.path().join("global"));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| !p.error), "{problems:?}");
        assert_eq!(
            problems[0].message,
            format!(
                "member `a`: CertificateFile: cannot read certificate {}: No such file or directory (os error 2); it is skipped (as OpenSSH does) and the plain keys are offered",
                dir.path().join("absent-cert.pub").display()
            )
        );
        assert!(
            problems[1].message.starts_with(&format!(
                "member `a`: CertificateFile: {} is not an OpenSSH certificate (",
                garbage.display()
            )),
            "{problems:?}"
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("bulid", "build"), 2);
        assert_eq!(edit_distance("gpu", "gpu"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
