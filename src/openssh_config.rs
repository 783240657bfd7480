//! OpenSSH client configuration (`~/.ssh/config`, `-F FILE`), resolved by OpenSSH itself.
//!
//! For every member, `ssh -G -F FILE HOST` prints the configuration OpenSSH would use for it
//! (Host and Match blocks, Include, first-value-wins: every rule is OpenSSH's own); `ssh -G` only
//! evaluates, it touches no network. Because `ssh -G` also prints OpenSSH's *defaults*
//! (`port 22`, the local user, `~/.ssh/id_rsa`…), the same host is also resolved with
//! `-F /dev/null`, and a value counts as coming from the config only where the two differ: where
//! the config says nothing, the inventory's values and fleetauth's defaults apply.
//!
//! Precedence: the member's inventory value (its own, or `[defaults]`) > ssh_config > fleetauth's
//! default. The inventory's `user` and `port` are passed to `ssh -G` (`-l`, `-p`) so that
//! `Match user` and `%r`/`%p` see them, as they would for `ssh -l USER -p PORT HOST`.
//!
//! Honoured: `HostName` (so `host` may be a `Host` alias), `User`, `Port`, `IdentityFile` (those
//! that exist, `~` and `%d %u %l %h %r %p %n %%` expanded), `IdentitiesOnly`, `CertificateFile`,
//! `IdentityAgent`, `UserKnownHostsFile` (the first is used, the rest recorded),
//! `GlobalKnownHostsFile` (recorded), `StrictHostKeyChecking`, `HostKeyAlias`, `ConnectTimeout`,
//! `ServerAliveInterval`/`ServerAliveCountMax`, and `ProxyJump`: each jump host is resolved
//! here as a destination of its own ([`Hops`]), into [`Target::jumps`]. `ProxyCommand` is
//! refused. When `ssh` is not installed, ssh_config is ignored with one warning (jump hosts are
//! then taken as written).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::config_error::ConfigError;
use crate::ssh::{Agent, HostKeyChecking, Target};

/// The default ssh_config file, `~` being `$HOME`.
pub const DEFAULT_FILE: &str = "~/.ssh/config";

/// OpenSSH's default identities fleetauth tries, in this order, when none is configured.
pub const DEFAULT_IDENTITIES: &[&str] = &["id_ed25519", "id_ecdsa", "id_rsa"];

/// How many `ssh -G` processes run at once.
const BATCH: usize = 32;

/// Which ssh_config file a member uses, and which of its settings the inventory made explicit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The file, or None when the inventory says `ssh_config = "none"`.
    pub file: Option<PathBuf>,
    /// The file is the default (`~/.ssh/config`, not written anywhere): a missing one is fine.
    pub file_is_default: bool,
    pub user: bool,
    pub port: bool,
    pub identity: bool,
    pub known_hosts: bool,
    pub host_key_checking: bool,
    pub connect_timeout: bool,
    /// The inventory (an Ansible `-J`/`ProxyJump` argument) set the jump host.
    pub proxy_jump: bool,
}

/// `ssh -G` output: each key (lower case) with the value of each line it is on.
pub type Resolved = BTreeMap<String, Vec<String>>;

/// Parse `ssh -G` output.
pub fn parse_dump(text: &str) -> Resolved {
    let mut map = Resolved::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        map.entry(key.to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_string());
    }
    map
}

/// The arguments of `ssh -G` for `host` with `file` (`/dev/null` for OpenSSH's defaults).
fn args(file: &Path, host: &str, user: Option<&str>, port: Option<u16>) -> Vec<String> {
    let mut args = vec!["-G".to_string(), "-F".into(), file.display().to_string()];
    if let Some(user) = user {
        args.extend(["-l".into(), user.to_string()]);
    }
    if let Some(port) = port {
        args.extend(["-p".into(), port.to_string()]);
    }
    args.push(host.to_string());
    args
}

/// The two `ssh -G` runs that resolve `host`: with `file`, and with `/dev/null` (OpenSSH's
/// defaults, see [`from_config`]).
fn arg_pair(file: &Path, host: &str, user: Option<&str>, port: Option<u16>) -> [Vec<String>; 2] {
    [
        args(file, host, user, port),
        args(Path::new("/dev/null"), host, user, port),
    ]
}

/// The (config, defaults) dumps of an [`arg_pair`]'s outputs; Err: what `ssh -G` said when one
/// failed.
fn dumps(pair: &[Output]) -> Result<(Resolved, Resolved), String> {
    if let Some(out) = pair.iter().find(|o| !o.status.success()) {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let dump = |o: &Output| parse_dump(&String::from_utf8_lossy(&o.stdout));
    Ok((dump(&pair[0]), dump(&pair[1])))
}

/// Run `ssh` with each argument list, [`BATCH`] at a time; None when `ssh` cannot be run.
fn run_all(ssh: &Path, jobs: &[Vec<String>]) -> Option<Vec<Output>> {
    let mut outputs = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(BATCH) {
        let mut children = Vec::new();
        for args in chunk {
            let child = Command::new(ssh)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            match child {
                Ok(c) => children.push(c),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => {
                    tracing::warn!("cannot run {}: {e}", ssh.display());
                    return None;
                }
            }
        }
        for child in children {
            outputs.push(child.wait_with_output().ok()?);
        }
    }
    Some(outputs)
}

/// What the config says about one key: its values when they differ from OpenSSH's defaults.
fn from_config<'a>(config: &'a Resolved, defaults: &Resolved, key: &str) -> Option<&'a [String]> {
    let value = config.get(key)?;
    (defaults.get(key) != Some(value)).then_some(value.as_slice())
}

/// The local facts %-tokens and `~` expand to.
#[derive(Debug, Clone)]
pub struct Local {
    pub home: Option<PathBuf>,
    pub user: String,
    pub hostname: String,
}

impl Local {
    pub fn from_process() -> Local {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Local {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            user: var("USER").or_else(|| var("LOGNAME")).unwrap_or_default(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Expand `~` and OpenSSH's `%` tokens in a path `ssh -G` printed (it leaves those of
/// `IdentityFile` and `CertificateFile` unexpanded). An unknown token is an error.
pub fn expand(
    path: &str,
    local: &Local,
    host: &str,
    original: &str,
    user: &str,
    port: u16,
) -> Result<PathBuf, String> {
    let mut out = String::new();
    let mut rest = path;
    if let Some(tail) = rest.strip_prefix('~')
        && (tail.is_empty() || tail.starts_with('/'))
    {
        let home = local.home.as_ref().ok_or("$HOME is not set")?;
        out.push_str(&home.display().to_string());
        rest = tail;
    }
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(
                &local
                    .home
                    .as_ref()
                    .ok_or("$HOME is not set")?
                    .display()
                    .to_string(),
            ),
            Some('u') => out.push_str(&local.user),
            Some('l') => out.push_str(&local.hostname),
            Some('h') => out.push_str(host),
            Some('n') => out.push_str(original),
            Some('r') => out.push_str(user),
            Some('p') => out.push_str(&port.to_string()),
            Some(t) => return Err(format!("the %{t} token is not supported by fleetauth")),
            None => return Err("a lone `%` at the end".into()),
        }
    }
    Ok(PathBuf::from(out))
}

/// Apply ssh_config to the targets of `members` (whose inventory settings are described by `requests`, keyed
/// by member name). `cli_file` (`-F FILE`) replaces every member's file. Then give members
/// without identities OpenSSH's default identities that exist. Returns warnings to show.
pub fn apply<'a>(
    members: impl IntoIterator<Item = &'a mut Target>,
    requests: &BTreeMap<String, Request>,
    cli_file: Option<&Path>,
    inventory: &Path,
) -> Result<Vec<String>, ConfigError> {
    apply_with(
        members,
        requests,
        cli_file,
        inventory,
        Path::new("ssh"),
        &Local::from_process(),
    )
}

/// [`apply`] with the `ssh` program and local facts given (tests).
pub fn apply_with<'a>(
    members: impl IntoIterator<Item = &'a mut Target>,
    requests: &BTreeMap<String, Request>,
    cli_file: Option<&Path>,
    inventory: &Path,
    ssh: &Path,
    local: &Local,
) -> Result<Vec<String>, ConfigError> {
    let mut members: Vec<&mut Target> = members.into_iter().collect();
    let mut warnings = Vec::new();
    let error = |msg: String| ConfigError::new(inventory, msg);
    if let Some(file) = cli_file
        && !file.exists()
    {
        return Err(error(format!(
            "ssh_config file {} (-F) does not exist",
            file.display()
        )));
    }
    // (member index, file) of every member to resolve.
    let mut todo: Vec<(usize, PathBuf)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let request = requests.get(&m.name).cloned().unwrap_or_default();
        let file = match (cli_file, &request.file) {
            (Some(f), _) => f.to_path_buf(),
            (None, None) => continue,
            (None, Some(f)) if request.file_is_default && !f.exists() => continue,
            (None, Some(f)) if !f.exists() => {
                return Err(error(format!(
                    "ssh_config file {} of member `{}` does not exist",
                    f.display(),
                    m.name
                ))
                .with_help("fix `ssh_config` in the inventory, or set it to \"none\""));
            }
            (None, Some(f)) => f.clone(),
        };
        if m.host.starts_with('-') {
            return Err(error(format!(
                "member `{}`: host `{}` starts with `-`",
                m.name, m.host
            )));
        }
        todo.push((i, file));
    }
    let mut ssh_usable = true;
    if !todo.is_empty() {
        let mut jobs = Vec::new();
        for (i, file) in &todo {
            let m = &*members[*i];
            let request = requests.get(&m.name).cloned().unwrap_or_default();
            let user = request.user.then_some(m.user.as_str());
            let port = request.port.then_some(m.port);
            jobs.extend(arg_pair(file, &m.host, user, port));
        }
        match run_all(ssh, &jobs) {
            None => {
                ssh_usable = false;
                warnings.push(format!(
                "WARNING: `{}` (OpenSSH's client) cannot be run: ssh_config is ignored; members \
                 are reached with the inventory's settings only",
                    ssh.display()
                ))
            }
            Some(outputs) => {
                for ((i, file), pair) in todo.iter().zip(outputs.chunks(2)) {
                    let m = &mut *members[*i];
                    let request = requests.get(&m.name).cloned().unwrap_or_default();
                    let (config, defaults) = dumps(pair).map_err(|why| {
                        error(format!(
                            "OpenSSH cannot resolve member `{}` (host {}) with {}: {why}",
                            m.name,
                            m.host,
                            file.display(),
                        ))
                        .with_help("check the ssh_config file with `ssh -G -F FILE HOST`")
                    })?;
                    resolve(m, &request, &config, &defaults, local)
                        .map_err(|why| error(format!("member `{}`: {why}", m.name)))?;
                }
            }
        }
    }
    for m in members.iter_mut() {
        give_default_identities(m, local);
    }
    let mut hops = Hops {
        ssh: ssh_usable.then_some(ssh),
        local,
        resolved: BTreeMap::new(),
    };
    for (i, m) in members.iter_mut().enumerate() {
        let Some(text) = m.proxy_jump.clone() else {
            continue;
        };
        let file = todo.iter().find(|(j, _)| *j == i).map(|(_, f)| f.as_path());
        m.jumps = hops.chain(&text, file, m, 0).map_err(|why| {
            error(format!("member `{}`: ProxyJump `{text}`: {why}", m.name))
                .with_help("write ProxyJump as [user@]host[:port] or ssh://[user@]host[:port], comma-separated")
        })?;
    }
    Ok(warnings)
}

/// ssh_config's `IdentityAgent` as OpenSSH reads it: `none`; `SSH_AUTH_SOCK` or `$NAME`, the
/// socket named by that environment variable (unset: no agent, as OpenSSH); else a path (`ssh
/// -G` has expanded `~` and most tokens; `path` expands what is left).
fn identity_agent(
    value: &str,
    path: &dyn Fn(&str) -> Result<PathBuf, String>,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Agent, String> {
    let variable = match value {
        "none" => return Ok(Agent::Disabled),
        "SSH_AUTH_SOCK" => Some("SSH_AUTH_SOCK"),
        v => v.strip_prefix('$'),
    };
    Ok(match variable {
        Some(name) => match env(name).filter(|v| !v.is_empty()) {
            Some(socket) => Agent::Socket(PathBuf::from(socket)),
            None => Agent::Disabled,
        },
        None => Agent::Socket(path(value)?),
    })
}

/// Members (and jump hosts) without identities get OpenSSH's default identities that exist.
fn give_default_identities(m: &mut Target, local: &Local) {
    if m.identities.is_empty()
        && let Some(home) = &local.home
    {
        m.default_identities = DEFAULT_IDENTITIES
            .iter()
            .map(|name| home.join(".ssh").join(name))
            .filter(|p| p.is_file())
            .collect();
    }
}

/// How deep a jump host's own ProxyJump may nest (a loop in ssh_config ends here).
const MAX_JUMP_DEPTH: usize = 8;

/// One hop of a ProxyJump, as written: `[user@]host[:port]` or `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Split a ProxyJump value into hops, first hop first.
pub fn parse_proxy_jump(text: &str) -> Result<Vec<HopSpec>, String> {
    text.split(',').map(parse_hop).collect()
}

fn parse_hop(hop: &str) -> Result<HopSpec, String> {
    let bad = |why: &str| format!("hop `{hop}`: {why}");
    let rest = hop.strip_prefix("ssh://").unwrap_or(hop);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err(bad("empty user before `@`")),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, tail) = v6.split_once(']').ok_or_else(|| bad("`[` without `]`"))?;
        match tail {
            "" => (host, None),
            _ => (
                host,
                Some(
                    tail.strip_prefix(':')
                        .ok_or_else(|| bad("expected `:port` after `]`"))?,
                ),
            ),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(bad("not a host name"));
    }
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(bad(&format!("`{p}` is not a port number"))),
        })
        .transpose()?;
    Ok(HopSpec {
        user,
        host: host.to_string(),
        port,
    })
}

/// Resolves jump hosts as OpenSSH does for `ssh -J h1,…,hn host`: each hop is a destination of
/// its own (`ssh -G` with the member's ssh_config, `-l`/`-p` from the hop as written), a hop
/// being reached through the hops before it, and the first hop through its own ProxyJump from
/// ssh_config, if any. A hop's known_hosts file, host key checking and connect deadline are
/// the member's unless ssh_config says otherwise for the hop; its identities are its own
/// (ssh_config's, else the agent and default identities), never the member's, as with OpenSSH.
struct Hops<'a> {
    /// None: `ssh` cannot be run, hops are taken as written.
    ssh: Option<&'a Path>,
    local: &'a Local,
    /// Hops already resolved, by what determines them.
    resolved: BTreeMap<String, Target>,
}

impl Hops<'_> {
    /// The jump hosts of a member (or hop) `via` whose ProxyJump is `text`, first hop first.
    fn chain(
        &mut self,
        text: &str,
        file: Option<&Path>,
        via: &Target,
        depth: usize,
    ) -> Result<Vec<Target>, String> {
        if depth >= MAX_JUMP_DEPTH {
            return Err(format!(
                "jump hosts nest more than {MAX_JUMP_DEPTH} deep (a ProxyJump loop in ssh_config?)"
            ));
        }
        let mut chain = Vec::new();
        for (k, spec) in parse_proxy_jump(text)?.into_iter().enumerate() {
            let mut hop = self.hop(&spec, file, via, k == 0)?;
            if let Some(own) = hop.proxy_jump.take() {
                chain.extend(
                    self.chain(&own, file, &hop, depth + 1)
                        .map_err(|why| format!("jump host `{}`: {why}", hop.name))?,
                );
            }
            chain.push(hop);
        }
        Ok(chain)
    }

    /// One hop as a target. `first`: its own ProxyJump from ssh_config counts (later hops are
    /// reached through the chain).
    fn hop(
        &mut self,
        spec: &HopSpec,
        file: Option<&Path>,
        via: &Target,
        first: bool,
    ) -> Result<Target, String> {
        let written = format!(
            "{}{}{}",
            spec.user
                .as_ref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            spec.host,
            spec.port.map(|p| format!(":{p}")).unwrap_or_default()
        );
        let key = format!(
            "{written}|{file:?}|{first}|{:?}|{}|{:?}",
            via.known_hosts, via.host_key_checking, via.connect_timeout
        );
        if let Some(hop) = self.resolved.get(&key) {
            return Ok(hop.clone());
        }
        let mut hop = Target {
            name: written.clone(),
            host: spec.host.clone(),
            port: spec.port.unwrap_or(22),
            user: spec.user.clone().unwrap_or_else(|| self.local.user.clone()),
            known_hosts: via.known_hosts.clone(),
            host_key_checking: via.host_key_checking,
            connect_timeout: via.connect_timeout,
            ..Target::default()
        };
        if let (Some(ssh), Some(file)) = (self.ssh, file) {
            let (user, port) = (spec.user.as_deref(), spec.port);
            let outputs = run_all(ssh, &arg_pair(file, &spec.host, user, port))
                .ok_or("`ssh -G` cannot be run")?;
            let (config, defaults) = dumps(&outputs).map_err(|why| {
                format!(
                    "OpenSSH cannot resolve jump host `{written}` with {}: {why}",
                    file.display()
                )
            })?;
            let request = Request {
                user: spec.user.is_some(),
                port: spec.port.is_some(),
                proxy_jump: !first,
                ..Request::default()
            };
            resolve(&mut hop, &request, &config, &defaults, self.local)
                .map_err(|why| format!("jump host `{written}`: {why}"))?;
            // No inventory speaks for a hop: OpenSSH's own default user (the local account, as
            // `ssh -G` found it) applies where ssh_config and the hop are silent.
            if spec.user.is_none()
                && let Some(user) = config.get("user").and_then(|u| u.first())
            {
                hop.user = user.clone();
            }
        }
        give_default_identities(&mut hop, self.local);
        self.resolved.insert(key, hop.clone());
        Ok(hop)
    }
}

/// Apply to `m` what `config` says beyond OpenSSH's `defaults`, where the inventory is silent.
pub fn resolve(
    m: &mut Target,
    request: &Request,
    config: &Resolved,
    defaults: &Resolved,
    local: &Local,
) -> Result<(), String> {
    let first = |key: &str| from_config(config, defaults, key).and_then(|v| v.first().cloned());
    if let Some(command) = first("proxycommand").filter(|c| c != "none") {
        return Err(format!(
            "ssh_config sets ProxyCommand `{command}` for host {}: ProxyCommand is not supported; \
             remove it for this host or set ssh_config = \"none\" for this member",
            m.host
        ));
    }
    let original = m.host.clone();
    if let Some(hostname) = first("hostname") {
        m.host = hostname;
    }
    if !request.user
        && let Some(user) = first("user")
    {
        m.user = user;
    }
    if !request.port
        && let Some(port) = first("port")
    {
        m.port = port
            .parse()
            .map_err(|_| format!("ssh_config port `{port}` is not a port number"))?;
    }
    let (host, user, port) = (m.host.clone(), m.user.clone(), m.port);
    let path = |p: &str| expand(p, local, &host, &original, &user, port);
    if !request.identity
        && let Some(files) = from_config(config, defaults, "identityfile")
    {
        let mut found = Vec::new();
        for f in files {
            let p = path(f).map_err(|why| format!("IdentityFile `{f}`: {why}"))?;
            if p.is_file() {
                found.push(p);
            } else {
                tracing::debug!(member = %m.name, "IdentityFile {} does not exist: skipped", p.display());
            }
        }
        m.identities = found;
    }
    m.identities_only = first("identitiesonly").is_some_and(|v| v == "yes");
    if let Some(files) = from_config(config, defaults, "certificatefile") {
        m.certificate_files = files
            .iter()
            .map(|f| path(f).map_err(|why| format!("CertificateFile `{f}`: {why}")))
            .collect::<Result<_, _>>()?;
    }
    if !request.known_hosts
        && let Some(files) = first("userknownhostsfile")
    {
        let mut files = files.split_whitespace();
        if let Some(f) = files.next() {
            m.known_hosts = path(f).map_err(|why| format!("UserKnownHostsFile `{f}`: {why}"))?;
        }
        for f in files {
            m.other_known_hosts.push(path(f)?);
        }
    }
    if let Some(files) = first("globalknownhostsfile") {
        for f in files.split_whitespace() {
            m.other_known_hosts.push(path(f)?);
        }
    }
    if !request.host_key_checking
        && let Some(mode) = first("stricthostkeychecking")
    {
        m.host_key_checking = match mode.as_str() {
            "yes" | "true" | "ask" => HostKeyChecking::Strict,
            "accept-new" => HostKeyChecking::AcceptNew,
            "no" | "off" | "false" => HostKeyChecking::Off,
            other => return Err(format!("unknown StrictHostKeyChecking value `{other}`")),
        };
    }
    m.host_key_alias = first("hostkeyalias");
    if !request.connect_timeout
        && let Some(secs) = first("connecttimeout").filter(|s| s != "none")
    {
        let secs: u64 = secs
            .parse()
            .map_err(|_| format!("ConnectTimeout `{secs}` is not a number of seconds"))?;
        if secs > 0 {
            m.connect_timeout = Duration::from_secs(secs);
        }
    }
    if !request.proxy_jump {
        m.proxy_jump = first("proxyjump").filter(|j| j != "none");
    }
    if let Some(agent) = first("identityagent") {
        m.agent = identity_agent(&agent, &path, &|name| std::env::var_os(name))
            .map_err(|why| format!("IdentityAgent `{agent}`: {why}"))?;
    }
    if let Some(interval) = first("serveraliveinterval") {
        let secs: u64 = interval
            .parse()
            .map_err(|_| format!("ServerAliveInterval `{interval}` is not a number of seconds"))?;
        let count = match config.get("serveralivecountmax").and_then(|v| v.first()) {
            Some(n) => n
                .parse()
                .map_err(|_| format!("ServerAliveCountMax `{n}` is not a number"))?,
            None => 3,
        };
        if secs > 0 {
            m.server_alive = Some((Duration::from_secs(secs), count));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_tilde_expand_like_openssh() {
        let local = Local {
            home: Some(PathBuf::from("/home/op")),
            user: "op".into(),
            hostname: "laptop".into(),
        };
        let x = |p: &str| expand(p, &local, "10.0.0.5", "web1", "ops", 2222);
        assert_eq!(
            x("~/.ssh/id_%h_%r_%p").unwrap(),
            PathBuf::from("/home/op/.ssh/id_10.0.0.5_ops_2222")
        );
        assert_eq!(
            x("%d/%u@%l/%n%%").unwrap(),
            PathBuf::from("/home/op/op@laptop/web1%")
        );
        assert!(x("/k/%C").unwrap_err().contains("%C"));
        assert!(x("/k/%").is_err());
        assert_eq!(x("/a~b").unwrap(), PathBuf::from("/a~b"));
    }

    #[test]
    fn only_values_that_differ_from_openssh_defaults_count() {
        let config = parse_dump("user bob\nport 22\nidentityfile ~/a\nidentityfile ~/b\n");
        let defaults = parse_dump("user root\nport 22\nidentityfile ~/.ssh/id_rsa\n");
        assert_eq!(
            from_config(&config, &defaults, "user"),
            Some(&["bob".to_string()][..])
        );
        assert_eq!(from_config(&config, &defaults, "port"), None);
        assert_eq!(
            from_config(&config, &defaults, "identityfile")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(from_config(&config, &defaults, "proxyjump"), None);
    }

    #[test]
    fn proxy_jump_hops_are_parsed_like_openssh() {
        let hop = |user: Option<&str>, host: &str, port: Option<u16>| HopSpec {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        };
        assert_eq!(
            parse_proxy_jump("bastion,ops@jump2:2222").unwrap(),
            [
                hop(None, "bastion", None),
                hop(Some("ops"), "jump2", Some(2222))
            ]
        );
        assert_eq!(
            parse_proxy_jump("ssh://a@b:22/,[fd00::1]:2200,[::1]").unwrap(),
            [
                hop(Some("a"), "b", Some(22)),
                hop(None, "fd00::1", Some(2200)),
                hop(None, "::1", None)
            ]
        );
        assert_eq!(
            parse_proxy_jump("we@ird@host").unwrap(),
            [hop(Some("we@ird"), "host", None)],
            "the last `@` splits, as OpenSSH does"
        );
        for bad in [
            "",
            "a,,b",
            "@h",
            "h:0",
            "h:x",
            "h:70000",
            "-oProxyCommand=x",
            "[::1",
            "[::1]x",
        ] {
            assert!(parse_proxy_jump(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn identity_agent_is_read_as_openssh_reads_it() {
        let path = |p: &str| Ok(PathBuf::from(p.replace("%r", "ops")));
        let env = |name: &str| (name == "MY_SOCK").then(|| "/run/my.sock".into());
        let agent = |v: &str| identity_agent(v, &path, &env).unwrap();
        assert_eq!(agent("none"), Agent::Disabled);
        assert_eq!(agent("$MY_SOCK"), Agent::Socket("/run/my.sock".into()));
        assert_eq!(agent("$UNSET_SOCK"), Agent::Disabled, "unset: no agent");
        assert_eq!(agent("SSH_AUTH_SOCK"), Agent::Disabled, "not in this env");
        assert_eq!(agent("/a/%r.sock"), Agent::Socket("/a/ops.sock".into()));
    }
}
