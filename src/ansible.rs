//! Ansible inventories (INI and YAML) read into the same [`Inventory`] the TOML loader makes.
//!
//! Each Ansible host becomes a member named by its inventory hostname. Its groups, with every
//! group above them through `:children` / `children:`, become its tags (`all` and `ungrouped`
//! are not tags; a host in no other group is in `ungrouped`, as Ansible reconciles). Variables
//! are merged as Ansible does, a later one winning: the inventory file's group vars (`all`,
//! then groups from the shallowest to the deepest, by name within a depth), then the
//! `group_vars/` files beside the inventory in the same order, then the host's own vars in the
//! inventory file, then its `host_vars/` files (found and read in `vars_dirs`). Honoured:
//! `ansible_host`, `ansible_port`, `ansible_user` (and their `ansible_ssh_*` spellings),
//! `ansible_ssh_private_key_file`, a ProxyJump in `ansible_ssh_common_args` /
//! `ansible_ssh_extra_args` (`-J x`, `-o ProxyJump=x`: kept on the member as data), and
//! `fleetauth_providers` (comma list or YAML list), `fleetauth_env_file`, `fleetauth_auth_mode`
//! (`gemini=api_key,claude=oauth` or a YAML mapping), `fleetauth_known_hosts`,
//! `fleetauth_host_key_checking`, `fleetauth_connect_timeout`, `fleetauth_command_timeout`,
//! `fleetauth_probe_timeout`. Other `ansible_*` variables are ignored; another `fleetauth_*`
//! is an error. Host ranges `web[01:20]` (zero padding kept), `web[1:9:2]` and `db-[a:c]` are
//! expanded. Defaults and validation after that are the TOML loader's ([`Ctx::assemble`]).
//! Errors name the file and line: INI errors point at the line, YAML errors at the line of the
//! host or variable name (found by its text: the YAML parser keeps no positions past syntax),
//! in the inventory or in the `group_vars/` / `host_vars/` file the value came from. A value
//! fleetauth reads that is an inline Ansible Vault ciphertext is an error; a vaulted file is
//! skipped with a warning ([`Inventory::warnings`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::config_error::ConfigError;
use crate::inventory::{AuthMode, Ctx, HostKeyChecking, Inventory, LocalEnv, Settings};

/// A variable's value as written: a scalar, or a YAML list / mapping.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
struct Var {
    val: Val,
    /// Where it was written: `file` indexes the sources (0 = the inventory, then the
    /// `group_vars/` and `host_vars/` files in reading order), `line` is 1-based.
    file: usize,
    line: usize,
}

#[derive(Debug, Default)]
struct Group {
    vars: BTreeMap<String, Var>,
    hosts: Vec<String>,
    children: Vec<String>,
}

#[derive(Debug, Default)]
struct Model {
    groups: BTreeMap<String, Group>,
    /// Hosts in first-appearance order, with the line they first appear on.
    hosts: Vec<(String, usize)>,
    host_vars: HashMap<String, BTreeMap<String, Var>>,
}

impl Model {
    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    fn add_host(&mut self, group: &str, host: &str, line: usize) {
        if !self.hosts.iter().any(|(h, _)| h == host) {
            self.hosts.push((host.to_string(), line));
        }
        let g = self.group(group);
        if !g.hosts.iter().any(|h| h == host) {
            g.hosts.push(host.to_string());
        }
        self.host_vars.entry(host.to_string()).or_default();
    }
}

struct Src<'a> {
    path: &'a Path,
    text: &'a str,
    /// Its index among the sources ([`Var::file`]).
    file: usize,
}

impl Src<'_> {
    /// An error pointing at `line` (1-based), caret under its text.
    fn at(&self, line: usize, message: impl Into<String>) -> ConfigError {
        let mut start = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let indent = l.len() - l.trim_start().len();
                let end = start + l.trim_end().len();
                return ConfigError::at(self.path, self.text, start + indent..end, message);
            }
            start += l.len();
        }
        ConfigError::new(self.path, message)
    }

    /// The first line at or after `from` whose text starts with `key:` (YAML positions).
    fn yaml_line(&self, key: &str, from: usize) -> usize {
        let quoted = [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ];
        self.text
            .lines()
            .enumerate()
            .skip(from.saturating_sub(1))
            .find(|(_, l)| {
                quoted
                    .iter()
                    .any(|q| l.trim_start().starts_with(q.as_str()))
            })
            .map_or(from.max(1), |(i, _)| i + 1)
    }
}

/// Is this text YAML (rather than INI)? Its first significant line is `---` or `name:`.
pub(crate) fn is_yaml(text: &str) -> bool {
    first_significant(text).is_some_and(|l| {
        l.starts_with("---") || (!l.starts_with('[') && !l.contains('=') && l.ends_with(':'))
    })
}

/// Does this text look like an Ansible inventory rather than fleetauth's TOML?
pub(crate) fn looks_like_ansible(text: &str) -> bool {
    let Some(line) = first_significant(text) else {
        return false;
    };
    if is_yaml(text) {
        return true;
    }
    match line.strip_prefix('[').and_then(|l| l.split_once(']')) {
        Some((inner, _)) => {
            let inner = inner.trim();
            !(inner == "defaults" || inner == "members" || inner.starts_with("members."))
        }
        // An ungrouped host line (`web01` or `web01 ansible_host=…`), not TOML's `key = …`.
        None => {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            !first.contains('=')
                && words.all(|w| w.contains('=') && w != "=" && !w.starts_with('='))
        }
    }
}

fn first_significant(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
}

pub(crate) fn parse_with(
    text: &str,
    path: &Path,
    known_providers: &[&str],
    env: &LocalEnv,
) -> Result<Inventory, ConfigError> {
    let src = Src {
        path,
        text,
        file: 0,
    };
    let model = if is_yaml(text) {
        parse_yaml(&src)?
    } else {
        parse_ini(&src)?
    };
    // `hosts` → `group_vars/…` (relative, as the inventory was named).
    let dirs = vars_dirs::read(path.parent().unwrap_or(Path::new("")), &model)?;
    let mut sources = vec![src];
    sources.extend(dirs.files.iter().enumerate().map(|(i, f)| Src {
        path: &f.path,
        text: &f.text,
        file: i + 1,
    }));
    resolve(
        &sources,
        &model,
        &dirs,
        &Ctx {
            known_providers,
            env,
        },
    )
}

// ---------------------------------------------------------------- INI

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Hosts,
    Vars,
    Children,
}

fn parse_ini(src: &Src<'_>) -> Result<Model, ConfigError> {
    let mut model = Model::default();
    let mut group = "ungrouped".to_string();
    let mut kind = Kind::Hosts;
    for (i, raw) in src.text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(inner) = l.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return Err(src
                    .at(line, "a section header must end with `]`")
                    .with_help("write `[group]`, `[group:vars]` or `[group:children]`"));
            };
            let (name, k) = match inner.split_once(':') {
                None => (inner, Kind::Hosts),
                Some((n, "vars")) => (n, Kind::Vars),
                Some((n, "children")) => (n, Kind::Children),
                Some((_, other)) => {
                    return Err(src
                        .at(line, format!("unknown section kind `:{other}`"))
                        .with_help("write `[group]`, `[group:vars]` or `[group:children]`"));
                }
            };
            check_group_name(src, name.trim(), line)?;
            group = name.trim().to_string();
            kind = k;
            model.group(&group);
            continue;
        }
        match kind {
            Kind::Hosts => {
                let words = shell_words(l).map_err(|why| src.at(line, why))?;
                let (pattern, vars) = words.split_first().expect("a non-empty line has a word");
                let (pattern, port) = pattern_port(pattern);
                let hosts = expand_range(pattern).map_err(|why| {
                    src.at(line, format!("invalid host pattern `{pattern}`: {why}"))
                        .with_help("ranges are `web[01:20]`, `web[1:9:2]` or `db-[a:c]`")
                })?;
                let mut parsed = Vec::new();
                if let Some(port) = port {
                    parsed.push(("ansible_port".to_string(), port.to_string()));
                }
                for word in vars {
                    let Some((k, v)) = word.split_once('=') else {
                        return Err(src
                            .at(line, format!("`{word}` after the host is not `key=value`"))
                            .with_help("host variables are written `name key=value key2=value2`"));
                    };
                    parsed.push((k.to_string(), v.to_string()));
                }
                for host in hosts {
                    model.add_host(&group, &host, line);
                    let hv = model.host_vars.entry(host).or_default();
                    for (k, v) in &parsed {
                        hv.insert(
                            k.clone(),
                            Var {
                                val: Val::Str(v.clone()),
                                file: src.file,
                                line,
                            },
                        );
                    }
                }
            }
            Kind::Vars => {
                let Some((k, v)) = l.split_once('=') else {
                    return Err(src
                        .at(line, format!("`{l}` in [{group}:vars] is not `key=value`"))
                        .with_help("group variables are written `key=value`, one a line"));
                };
                let v = unquote(v.trim());
                model.group(&group).vars.insert(
                    k.trim().to_string(),
                    Var {
                        val: Val::Str(v),
                        file: src.file,
                        line,
                    },
                );
            }
            Kind::Children => {
                check_group_name(src, l, line)?;
                model.group(l);
                let g = model.group(&group);
                if !g.children.iter().any(|c| c == l) {
                    g.children.push(l.to_string());
                }
            }
        }
    }
    Ok(model)
}

fn check_group_name(src: &Src<'_>, name: &str, line: usize) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains([',', ' ', '\t', '[', ']', ':']) {
        return Err(src
            .at(line, format!("invalid group name `{name}`"))
            .with_help("group names are non-empty, without spaces, commas, `:` or brackets (they become tags matched by --limit)"));
    }
    Ok(())
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Splits a line into words as a shell does for quotes (`key="a b"`), dropping a `#` comment.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c == '#' && !in_word => break,
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Expands Ansible host ranges: `web[01:03]` → web01, web02, web03 (the start's width is
/// kept), `web[1:9:4]` → web1, web5, web9, `db-[a:c]` → db-a, db-b, db-c. Several ranges in
/// one pattern multiply.
fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        if pattern.contains(']') {
            return Err("`]` without `[`".into());
        }
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or("`[` without `]`")?;
    let (head, inner, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let parts: Vec<&str> = inner.split(':').collect();
    let (start, end, step) = match parts.as_slice() {
        [a, b] => (*a, *b, 1usize),
        [a, b, s] => (
            *a,
            *b,
            s.parse::<usize>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or(format!("step `{s}` is not a positive number"))?,
        ),
        _ => {
            return Err(format!(
                "`[{inner}]` is not `[start:end]` or `[start:end:step]`"
            ));
        }
    };
    let items: Vec<String> = if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err(format!("range `[{inner}]` runs backwards"));
        }
        let width = if start.starts_with('0') {
            start.len()
        } else {
            0
        };
        (a..=b)
            .step_by(step)
            .map(|n| format!("{n:0width$}"))
            .collect()
    } else {
        let (a, b) = match (single_letter(start), single_letter(end)) {
            (Some(a), Some(b)) if a <= b => (a, b),
            _ => {
                return Err(format!(
                    "`[{inner}]` is neither a number range nor a letter range"
                ));
            }
        };
        (a..=b).step_by(step).map(String::from).collect()
    };
    let rests = expand_range(tail)?;
    let mut out = Vec::new();
    for item in items {
        for rest in &rests {
            out.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(out)
}

/// Ansible's `name:port` host pattern (one colon, digits after it) → (name, port).
fn pattern_port(pattern: &str) -> (&str, Option<&str>) {
    match pattern.rsplit_once(':') {
        Some((name, port))
            if name.matches('[').count() == name.matches(']').count()
                && !outside_brackets(name).contains(':')
                && !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit()) =>
        {
            (name, Some(port))
        }
        _ => (pattern, None),
    }
}

/// `name` without its `[…]` ranges.
fn outside_brackets(name: &str) -> String {
    let mut depth = 0usize;
    name.chars()
        .filter(|c| {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

fn single_letter(s: &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    (chars.next().is_none() && c.is_ascii_alphabetic()).then_some(c)
}

// ---------------------------------------------------------------- YAML

/// The YAML documents of `src`; a syntax error points where the parser stopped.
fn load_yaml(src: &Src<'_>) -> Result<Vec<Yaml>, ConfigError> {
    YamlLoader::load_from_str(src.text).map_err(|e| {
        let m = e.marker();
        let byte = src
            .text
            .char_indices()
            .nth(m.index())
            .map_or(src.text.len(), |(b, _)| b);
        ConfigError::at(
            src.path,
            src.text,
            byte..byte,
            format!("invalid YAML: {}", e.info()),
        )
        .with_help(
            "see https://docs.ansible.com/ansible/latest/inventory_guide/intro_inventory.html",
        )
    })
}

fn parse_yaml(src: &Src<'_>) -> Result<Model, ConfigError> {
    let docs = load_yaml(src)?;
    let mut model = Model::default();
    let Some(Yaml::Hash(top)) = docs.first() else {
        return Err(
            ConfigError::new(src.path, "the YAML inventory is not a mapping of groups")
                .with_help("start with `all:` and put `hosts:`, `vars:` and `children:` under it"),
        );
    };
    for (name, node) in top {
        let name = scalar(name).unwrap_or_default();
        yaml_group(src, &mut model, &name, node, 1)?;
    }
    Ok(model)
}

fn yaml_group(
    src: &Src<'_>,
    model: &mut Model,
    name: &str,
    node: &Yaml,
    from: usize,
) -> Result<(), ConfigError> {
    let line = src.yaml_line(name, from);
    check_group_name(src, name, line)?;
    model.group(name);
    let hash = match node {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(()),
        _ => {
            return Err(src
                .at(line, format!("group `{name}` must be a mapping"))
                .with_help("a group holds `hosts:`, `vars:` and `children:`"));
        }
    };
    for (key, value) in hash {
        let key = scalar(key).unwrap_or_default();
        let key_line = src.yaml_line(&key, line);
        match key.as_str() {
            "hosts" => {
                let Some(hosts) = mapping(value) else {
                    return Err(src
                        .at(
                            key_line,
                            format!("`hosts` of group `{name}` must be a mapping"),
                        )
                        .with_help("write each host as `name:` with its variables under it"));
                };
                for (pattern, vars) in hosts {
                    let pattern = scalar(pattern).unwrap_or_default();
                    let host_line = src.yaml_line(&pattern, key_line);
                    let (pattern, port) = pattern_port(&pattern);
                    let expanded = expand_range(pattern).map_err(|why| {
                        src.at(
                            host_line,
                            format!("invalid host pattern `{pattern}`: {why}"),
                        )
                        .with_help("ranges are `web[01:20]`, `web[1:9:2]` or `db-[a:c]`")
                    })?;
                    let mut vars = yaml_vars(src, vars, host_line, &format!("host `{pattern}`"))?;
                    if let Some(port) = port {
                        vars.entry("ansible_port".to_string()).or_insert(Var {
                            val: Val::Str(port.to_string()),
                            file: src.file,
                            line: host_line,
                        });
                    }
                    for host in expanded {
                        model.add_host(name, &host, host_line);
                        model
                            .host_vars
                            .entry(host)
                            .or_default()
                            .extend(vars.clone());
                    }
                }
            }
            "vars" => {
                let vars = yaml_vars(src, value, key_line, &format!("group `{name}`"))?;
                model.group(name).vars.extend(vars);
            }
            "children" => {
                let Some(children) = mapping(value) else {
                    return Err(src
                        .at(
                            key_line,
                            format!("`children` of group `{name}` must be a mapping"),
                        )
                        .with_help("write each child group as `name:`"));
                };
                for (child, node) in children {
                    let child = scalar(child).unwrap_or_default();
                    let g = model.group(name);
                    if !g.children.contains(&child) {
                        g.children.push(child.clone());
                    }
                    yaml_group(src, model, &child, node, key_line)?;
                }
            }
            other => {
                return Err(src
                    .at(key_line, format!("unknown key `{other}` in group `{name}`"))
                    .with_help("accepted keys: hosts, vars, children"));
            }
        }
    }
    Ok(())
}

fn mapping(node: &Yaml) -> Option<Vec<(&Yaml, &Yaml)>> {
    match node {
        Yaml::Hash(h) => Some(h.iter().collect()),
        Yaml::Null => Some(Vec::new()),
        _ => None,
    }
}

fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

fn yaml_vars(
    src: &Src<'_>,
    node: &Yaml,
    from: usize,
    owner: &str,
) -> Result<BTreeMap<String, Var>, ConfigError> {
    let mut vars = BTreeMap::new();
    let Some(entries) = mapping(node) else {
        return Err(src
            .at(from, format!("the variables of {owner} must be a mapping"))
            .with_help("write `key: value`, one a line"));
    };
    for (key, value) in entries {
        let key = scalar(key).unwrap_or_default();
        let line = src.yaml_line(&key, from);
        let val = match value {
            Yaml::Array(items) => Val::List(items.iter().filter_map(scalar).collect()),
            Yaml::Hash(h) => Val::Str(
                h.iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            scalar(k).unwrap_or_default(),
                            scalar(v).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            other => Val::Str(scalar(other).unwrap_or_default()),
        };
        vars.insert(
            key,
            Var {
                val,
                file: src.file,
                line,
            },
        );
    }
    Ok(vars)
}

// ---------------------------------------------------------------- resolution

/// Every group `host` is in, directly or through `children`, including `all`.
fn groups_of(model: &Model, host: &str) -> BTreeSet<String> {
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, g) in &model.groups {
        for child in &g.children {
            parents
                .entry(child.as_str())
                .or_default()
                .push(name.as_str());
        }
    }
    let mut found = BTreeSet::from(["all".to_string()]);
    let mut todo: Vec<&str> = model
        .groups
        .iter()
        .filter(|(_, g)| g.hosts.iter().any(|h| h == host))
        .map(|(n, _)| n.as_str())
        .collect();
    while let Some(g) = todo.pop() {
        if found.insert(g.to_string()) {
            todo.extend(parents.get(g).into_iter().flatten());
        }
    }
    // As Ansible reconciles: a host is in `ungrouped` exactly when it is in no other group
    // (also a YAML host right under `all: hosts:`).
    if found.iter().any(|g| g != "all" && g != "ungrouped") {
        found.remove("ungrouped");
    } else {
        found.insert("ungrouped".to_string());
    }
    found
}

/// A group's depth below `all` (the longest `children` path to it), as Ansible orders vars.
fn depth(model: &Model, group: &str, seen: &mut Vec<String>) -> usize {
    if group == "all" || seen.iter().any(|s| s == group) {
        return 0;
    }
    seen.push(group.to_string());
    let d = model
        .groups
        .iter()
        .filter(|(_, g)| g.children.iter().any(|c| c == group))
        .map(|(p, _)| depth(model, p, seen) + 1)
        .max()
        .unwrap_or(1);
    seen.pop();
    d
}

const FLEETAUTH_VARS: &[&str] = &[
    "fleetauth_providers",
    "fleetauth_env_file",
    "fleetauth_auth_mode",
    "fleetauth_known_hosts",
    "fleetauth_host_key_checking",
    "fleetauth_connect_timeout",
    "fleetauth_command_timeout",
    "fleetauth_probe_timeout",
];

/// Members from the parsed inventory (`sources[0]`) and its `group_vars/` / `host_vars/`
/// files (`sources[1..]`, read into `dirs`).
fn resolve(
    sources: &[Src<'_>],
    model: &Model,
    dirs: &vars_dirs::Dirs,
    ctx: &Ctx<'_>,
) -> Result<Inventory, ConfigError> {
    let src = &sources[0];
    if model.hosts.is_empty() {
        return Err(ConfigError::new(src.path, "the inventory has no hosts")
            .with_help("list hosts under a `[group]` (INI) or under `hosts:` (YAML)"));
    }
    let mut members = Vec::new();
    let mut ssh_config = std::collections::BTreeMap::new();
    for (host, host_line) in &model.hosts {
        let host_line = *host_line;
        let at = |line: usize, m: String| src.at(line, m);
        if !crate::inventory::valid_member_name(host) {
            return Err(at(host_line, format!("invalid host name `{host}` for a member"))
                .with_help("inventory hostnames start with a letter or digit and contain only letters, digits, `.`, `_` and `-`"));
        }
        let groups = groups_of(model, host);
        let mut ordered: Vec<(usize, &String)> = groups
            .iter()
            .map(|g| (depth(model, g, &mut Vec::new()), g))
            .collect();
        ordered.sort();
        // Ansible's order, the later wins: the inventory file's group vars, then the
        // group_vars/ files (each by depth), the inventory's host vars, the host_vars/ files.
        let mut vars: BTreeMap<String, Var> = BTreeMap::new();
        for (_, g) in &ordered {
            if let Some(group) = model.groups.get(*g) {
                vars.extend(group.vars.clone());
            }
        }
        for (_, g) in &ordered {
            if let Some(file_vars) = dirs.groups.get(*g) {
                vars.extend(file_vars.clone());
            }
        }
        if let Some(hv) = model.host_vars.get(host) {
            vars.extend(hv.clone());
        }
        if let Some(file_vars) = dirs.hosts.get(host) {
            vars.extend(file_vars.clone());
        }

        let mut own = Settings::default();
        let mut address = host.clone();
        let mut address_at = (0, host_line);
        for (key, var) in &vars {
            let line = var.line;
            let at = |line: usize, m: String| sources[var.file].at(line, m);
            if is_read(key)
                && match &var.val {
                    Val::Str(s) => is_vaulted(s),
                    Val::List(l) => l.iter().any(|s| is_vaulted(s)),
                }
            {
                return Err(at(
                    line,
                    format!(
                        "`{key}` is encrypted with Ansible Vault, which fleetauth cannot decrypt"
                    ),
                )
                .with_help(format!(
                    "write `{key}` in plain text (the variables fleetauth reads are not secrets)"
                )));
            }
            let text = || match &var.val {
                Val::Str(s) => Ok(s.clone()),
                Val::List(_) => Err(at(
                    line,
                    format!("`{key}` must be a single value, not a list"),
                )),
            };
            match key.as_str() {
                "ansible_host" | "ansible_ssh_host" => {
                    address = text()?;
                    address_at = (var.file, line);
                }
                "ansible_port" | "ansible_ssh_port" => {
                    let t = text()?;
                    own.port = Some(t.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                        at(
                            line,
                            format!("`{key}` must be a port between 1 and 65535, found `{t}`"),
                        )
                    })?);
                }
                "ansible_user" | "ansible_ssh_user" => own.user = Some(text()?),
                "ansible_ssh_private_key_file" | "fleetauth_known_hosts" => {
                    let t = text()?;
                    let path = expand(&t, ctx).map_err(|why| {
                        at(line, format!("cannot expand `{t}` ({key}): {why}"))
                            .with_help("write `~/…` or an absolute path")
                    })?;
                    if key == "fleetauth_known_hosts" {
                        own.known_hosts = Some(path);
                    } else {
                        own.identity_file = Some(path);
                    }
                }
                "ansible_ssh_common_args" | "ansible_ssh_extra_args" => {
                    if let Some(jump) =
                        proxy_jump(&text()?).map_err(|why| at(line, format!("`{key}`: {why}")))?
                        && (key == "ansible_ssh_extra_args" || own.proxy_jump.is_none())
                    {
                        own.proxy_jump = Some(jump);
                    }
                }
                "fleetauth_providers" => {
                    let list = match &var.val {
                        Val::List(l) => l.clone(),
                        Val::Str(s) => split_list(s),
                    };
                    let mut providers: Vec<String> = Vec::new();
                    for p in list {
                        if !ctx.known_providers.contains(&p.as_str()) {
                            return Err(at(line, format!("unknown provider `{p}` in `{key}`"))
                                .with_help(ctx.known_providers_help()));
                        }
                        if providers.contains(&p) {
                            return Err(at(
                                line,
                                format!("provider `{p}` is listed twice in `{key}`"),
                            ));
                        }
                        providers.push(p);
                    }
                    own.providers = Some((providers, 0..0));
                }
                "fleetauth_env_file" => own.env_file = Some(text()?),
                "fleetauth_auth_mode" => {
                    let t = text()?;
                    for pair in split_list(&t) {
                        let Some((p, mode)) = pair.split_once('=') else {
                            return Err(at(
                                line,
                                format!("`{pair}` in `{key}` is not `provider=mode`"),
                            )
                            .with_help("write e.g. `gemini=api_key,claude=oauth`"));
                        };
                        let (p, mode) = (p.trim(), mode.trim());
                        if !ctx.known_providers.contains(&p) {
                            return Err(at(line, format!("unknown provider `{p}` in `{key}`"))
                                .with_help(ctx.known_providers_help()));
                        }
                        let mode = mode.parse::<AuthMode>().map_err(|_| {
                            at(
                                line,
                                format!("invalid value \"{mode}\" for `{p}` in `{key}`"),
                            )
                            .with_help(format!(
                                "accepted values: {}",
                                AuthMode::spellings().join(", ")
                            ))
                        })?;
                        own.auth_mode.insert(p.to_string(), mode);
                    }
                }
                "fleetauth_host_key_checking" => {
                    let t = text()?;
                    own.host_key_checking = Some(t.parse::<HostKeyChecking>().map_err(|_| {
                        at(line, format!("invalid value \"{t}\" for `{key}`")).with_help(format!(
                            "accepted values: {}",
                            HostKeyChecking::spellings().join(", ")
                        ))
                    })?);
                }
                "fleetauth_connect_timeout"
                | "fleetauth_command_timeout"
                | "fleetauth_probe_timeout" => {
                    let t = text()?;
                    let d = crate::config_toml::parse_duration(&t).map_err(|e| {
                        at(line, format!("invalid duration \"{t}\" for `{key}`: {e}"))
                    })?;
                    match key.as_str() {
                        "fleetauth_connect_timeout" => own.connect_timeout = Some(d),
                        "fleetauth_command_timeout" => own.command_timeout = Some(d),
                        _ => own.probe_timeout = Some(d),
                    }
                }
                other if other.starts_with("fleetauth_") => {
                    return Err(at(line, format!("unknown variable `{other}`")).with_help(
                        format!(
                            "accepted fleetauth variables: {}",
                            FLEETAUTH_VARS.join(", ")
                        ),
                    ));
                }
                _ => {}
            }
        }

        let at_address = |m: String| sources[address_at.0].at(address_at.1, m);
        let spec = crate::inventory::split_host(&address)
            .map_err(|bad| at_address(bad.message).with_help(bad.help))?;
        if let (Some(p), Some(own_port)) = (spec.port, own.port)
            && p != own_port
        {
            return Err(at_address(format!(
                "`{address}` says port {p} but ansible_port says {own_port}"
            )));
        }
        if let (Some(u), Some(own_user)) = (&spec.user, &own.user)
            && u != own_user
        {
            return Err(at_address(format!(
                "`{address}` says user {u} but ansible_user says {own_user}"
            )));
        }
        own.port = spec.port.or(own.port);
        own.user = spec.user.or(own.user);
        own.tags = Some(
            groups
                .iter()
                .filter(|g| *g != "all" && *g != "ungrouped")
                .cloned()
                .collect(),
        );
        let (member, request) = ctx.assemble(
            host.clone(),
            spec.host,
            own,
            &Settings::default(),
            "set `fleetauth_providers` in the host's variables, a group's or [all:vars]",
            &|m| src.at(host_line, m),
        )?;
        ssh_config.insert(member.name.clone(), request);
        members.push(member);
    }
    Ok(Inventory {
        path: src.path.to_path_buf(),
        members,
        ssh_config,
        warnings: dirs.warnings.clone(),
    })
}

/// The `ansible_*` variables fleetauth reads (every `fleetauth_*` one is read too).
const ANSIBLE_VARS: &[&str] = &[
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
];

/// Does fleetauth read variable `key`?
fn is_read(key: &str) -> bool {
    key.starts_with("fleetauth_") || ANSIBLE_VARS.contains(&key)
}

/// An Ansible Vault ciphertext (a whole vaulted file, or an inline `!vault` value).
fn is_vaulted(text: &str) -> bool {
    text.trim_start().starts_with("$ANSIBLE_VAULT;")
}

fn expand(path: &str, ctx: &Ctx<'_>) -> Result<PathBuf, String> {
    crate::inventory::expand_tilde(path, ctx.env.home.as_deref()).map_err(|e| e.to_string())
}

/// `a,b, c` or a Python-style `['a', 'b']` → [a, b, c].
fn split_list(s: &str) -> Vec<String> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.split(',')
        .map(|p| unquote(p.trim()))
        .filter(|p| !p.is_empty())
        .collect()
}

/// The ProxyJump in ssh arguments: `-J x`, `-Jx`, `-o ProxyJump=x`, `-oProxyJump=x`,
/// `-o "ProxyJump x"`. `None` when there is none (or it is `none`).
fn proxy_jump(args: &str) -> Result<Option<String>, String> {
    let words = shell_words(args)?;
    let mut jump = None;
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let value = if w == "-J" || w == "-o" {
            i += 1;
            let next = words.get(i).ok_or(format!("`{w}` needs a value"))?.clone();
            if w == "-J" {
                Some(next)
            } else {
                option_jump(&next)
            }
        } else if let Some(rest) = w.strip_prefix("-J") {
            Some(rest.to_string())
        } else if let Some(rest) = w.strip_prefix("-o") {
            option_jump(rest)
        } else {
            None
        };
        if let Some(v) = value
            && jump.is_none()
        {
            jump = Some(v);
        }
        i += 1;
    }
    Ok(jump.filter(|j| !j.eq_ignore_ascii_case("none")))
}

fn option_jump(option: &str) -> Option<String> {
    let (key, value) = option
        .split_once('=')
        .or_else(|| option.split_once(char::is_whitespace))?;
    key.trim()
        .eq_ignore_ascii_case("ProxyJump")
        .then(|| value.trim().to_string())
}

mod vars_dirs;

#[cfg(test)]
mod tests;
