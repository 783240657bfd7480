//! `group_vars/` and `host_vars/` beside an Ansible inventory file, found and read as Ansible's
//! `host_group_vars` plugin does for an inventory source.
//!
//! For each group of the inventory (`all` and `ungrouped` included) and each host NAME, the
//! first of `group_vars/NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json` that exists is used (the
//! same under `host_vars/`). A file is read as YAML (JSON is YAML). A directory gives its files,
//! recursively, in sorted order: names starting with `.` or ending in `~` are skipped, so are
//! files whose extension is not `.yml`, `.yaml` or `.json` (files without one are read) and
//! subdirectories with an extension. Within one group or host a later file's variable wins.
//! Each file is a mapping of variables; an empty file holds none. A file that is Ansible Vault
//! ciphertext (`$ANSIBLE_VAULT;` header) is skipped with a warning, not an error: vaulted files
//! hold secrets (`ansible_become_password`, …) that fleetauth does not read, and failing would
//! make every vaulted inventory unusable. Where these variables rank against the inventory
//! file's own: `super::resolve`. Names of groups and hosts nothing in the inventory uses are
//! not looked at (as Ansible).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use yaml_rust2::Yaml;

use super::{Model, Src, Var, is_vaulted, load_yaml, yaml_vars};
use crate::config_error::ConfigError;

/// Extensions Ansible tries after the bare name, in this order.
const EXTENSIONS: [&str; 3] = [".yml", ".yaml", ".json"];

/// One file read, kept so errors can quote it.
pub(super) struct VarsFile {
    pub(super) path: PathBuf,
    pub(super) text: String,
}

/// The variables of the `group_vars/` and `host_vars/` files, per group and per host.
#[derive(Default)]
pub(super) struct Dirs {
    /// Every file read, in reading order: [`Var::file`] `n` is `files[n - 1]`.
    pub(super) files: Vec<VarsFile>,
    pub(super) groups: HashMap<String, BTreeMap<String, Var>>,
    pub(super) hosts: HashMap<String, BTreeMap<String, Var>>,
    /// One line each, for stderr.
    pub(super) warnings: Vec<String>,
}

/// Reads `beside/group_vars/` and `beside/host_vars/` for the groups and hosts of `model`.
pub(super) fn read(beside: &Path, model: &Model) -> Result<Dirs, ConfigError> {
    let mut dirs = Dirs::default();
    if let Some(dir) = vars_dir(beside, "group_vars", &mut dirs.warnings)? {
        let mut groups: BTreeSet<&str> = model.groups.keys().map(String::as_str).collect();
        groups.extend(["all", "ungrouped"]);
        for group in groups {
            let vars = dirs.entity(&dir, group)?;
            if !vars.is_empty() {
                dirs.groups.insert(group.to_string(), vars);
            }
        }
    }
    if let Some(dir) = vars_dir(beside, "host_vars", &mut dirs.warnings)? {
        for (host, _) in &model.hosts {
            let vars = dirs.entity(&dir, host)?;
            if !vars.is_empty() {
                dirs.hosts.insert(host.clone(), vars);
            }
        }
    }
    Ok(dirs)
}

/// `beside/name` when it is a directory; a file there is skipped with a warning (as Ansible).
fn vars_dir(
    beside: &Path,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<PathBuf>, ConfigError> {
    let dir = beside.join(name);
    match fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(Some(dir)),
        Ok(_) => {
            warnings.push(format!(
                "warning: {} is not a directory: skipped",
                dir.display()
            ));
            Ok(None)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::new(&dir, format!("cannot read {name}/: {e}"))
            .with_help("make it readable, or move it away from the inventory file")),
    }
}

impl Dirs {
    /// The merged variables of the files for group or host `name` in `dir`.
    fn entity(&mut self, dir: &Path, name: &str) -> Result<BTreeMap<String, Var>, ConfigError> {
        let mut vars = BTreeMap::new();
        // A name that is not one path component cannot name a file of its own.
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return Ok(vars);
        }
        for path in find(dir, name)? {
            vars.extend(self.file(&path)?);
        }
        Ok(vars)
    }

    /// The variables of one file (none when it is empty or vaulted).
    fn file(&mut self, path: &Path) -> Result<BTreeMap<String, Var>, ConfigError> {
        let bytes = fs::read(path).map_err(|e| {
            ConfigError::new(path, format!("cannot read the variables file: {e}"))
                .with_help("make it readable, or remove it")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ConfigError::new(path, "the variables file is not UTF-8 text")
                .with_help("group_vars/ and host_vars/ files are YAML or JSON")
        })?;
        if is_vaulted(&text) {
            self.warnings.push(format!(
                "warning: {}: skipped: it is encrypted with Ansible Vault, which fleetauth \
                 cannot decrypt; keep the variables fleetauth reads in a plain file beside it",
                path.display()
            ));
            return Ok(BTreeMap::new());
        }
        let src = Src {
            path,
            text: &text,
            file: self.files.len() + 1,
        };
        let docs = load_yaml(&src)?;
        let vars = match docs.first() {
            None | Some(Yaml::Null) => BTreeMap::new(),
            Some(node @ Yaml::Hash(_)) => yaml_vars(&src, node, 1, "this file")?,
            Some(_) => {
                let line = src
                    .text
                    .lines()
                    .position(|l| {
                        let l = l.trim();
                        !l.is_empty() && !l.starts_with('#') && l != "---"
                    })
                    .map_or(1, |i| i + 1);
                return Err(src
                    .at(line, "a variables file must be a mapping of variables")
                    .with_help("write `name: value`, one a line"));
            }
        };
        self.files.push(VarsFile {
            path: path.to_path_buf(),
            text,
        });
        Ok(vars)
    }
}

/// The files for `name` in `dir`: the first of `name`, `name.yml`, `name.yaml`, `name.json`
/// that exists; a directory gives its files (see the module doc).
fn find(dir: &Path, name: &str) -> Result<Vec<PathBuf>, ConfigError> {
    for ext in std::iter::once("").chain(EXTENSIONS) {
        let path = dir.join(format!("{name}{ext}"));
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                let mut found = Vec::new();
                dir_files(&path, &mut found)?;
                return Ok(found);
            }
            Ok(_) => return Ok(vec![path]),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfigError::new(&path, format!("cannot read it: {e}"))
                    .with_help("make it readable, or remove it"));
            }
        }
    }
    Ok(Vec::new())
}

fn dir_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let cannot = |e: std::io::Error| {
        ConfigError::new(dir, format!("cannot list the directory: {e}"))
            .with_help("make it readable, or remove it")
    };
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).map_err(cannot)? {
        let name = entry.map_err(cannot)?.file_name();
        // A name that is not UTF-8 has no extension Ansible reads, nor could be a directory
        // of variables it recurses into with one.
        if let Some(name) = name.to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    for name in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = dir.join(&name);
        let ext = Path::new(&name)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()));
        let Ok(meta) = fs::metadata(&path) else {
            continue; // a dangling symlink: Ansible's isdir/isfile are both false
        };
        if meta.is_dir() {
            if ext.is_none() {
                dir_files(&path, found)?;
            }
        } else if meta.is_file() && ext.as_deref().is_none_or(|e| EXTENSIONS.contains(&e)) {
            found.push(path);
        }
    }
    Ok(())
}
