//! known_hosts: which host keys the operator trusts for which member.
//!
//! russh's own `check_known_hosts` reads only `~/.ssh/known_hosts`, ignores `@revoked`, and
//! re-reads the file on every call. A fleet run checks hundreds of members against the same few
//! files, so [`KnownHostsStore::load`] parses every distinct file once and every host key check
//! is an in-memory lookup. Keys learnt under `accept-new` are appended to the member's file *and*
//! to the in-memory copy, so later connections in the same run see them.
//!
//! The format and matching follow OpenSSH (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"):
//! - one key per line: `[@marker] patterns keytype base64 [comment]`, fields separated by any
//!   whitespace; blank lines and `#` comments are skipped;
//! - `patterns` is a comma list of names with `*` / `?` wildcards, where a `!`-negated match
//!   vetoes the line; comparison ignores ASCII case;
//! - a member on port 22 is looked up as `host`, on any other port as `[host]:port`;
//! - `|1|salt|hash` is a hashed name (`ssh-keygen -H`): HMAC-SHA1 of that lookup name keyed by
//!   the salt;
//! - `@revoked` refuses the key for the hosts it matches, whatever else the files say;
//! - `@cert-authority` lines match hosts like plain lines but vouch for no plain key: they name
//!   the CAs whose host certificates are accepted for those hosts ([`authorities`],
//!   [`check_certificate`]: host type, revocation of the key or the CA, a trusted CA, validity,
//!   the CA's signature through ssh-key's `Certificate::validate_at`, no critical options,
//!   principals naming the host). Certificates are never recorded.
//!
//! A line that cannot be parsed is skipped with a warning (as OpenSSH does) rather than making
//! the whole file, and so the whole fleet, unusable: why is a [`LineError`]. Only failing to
//! read a file at all, or to record a learnt key, is a [`KnownHostsError`].

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, PublicKey};
use sha1::Sha1;

/// Why one known_hosts line cannot be used (the line is skipped with a warning).
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("empty line")]
    Empty,
    #[error("unknown marker {0:?} (expected @revoked or @cert-authority)")]
    UnknownMarker(String),
    #[error("marker without host patterns")]
    MarkerWithoutHosts,
    #[error("empty host pattern list")]
    NoHostPatterns,
    #[error("hashed host name without a hash (expected |1|salt|hash)")]
    HashedWithoutHash,
    #[error("hashed host name: bad salt: {0}")]
    BadSalt(base64::DecodeError),
    #[error("hashed host name: bad hash: {0}")]
    BadHash(base64::DecodeError),
    #[error("hashed host name: hash is {0} bytes, HMAC-SHA1 gives 20")]
    HashLength(usize),
    #[error("missing key type")]
    MissingKeyType,
    #[error("missing base64 key")]
    MissingKey,
    #[error("cannot decode the {keytype} key: {error}")]
    BadKey {
        keytype: String,
        error: russh::keys::Error,
    },
    #[error("key type field says {keytype} but the key is {actual}")]
    KeyTypeMismatch { keytype: String, actual: String },
}

/// Why a known_hosts file could not be read, or a learnt key not recorded.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error(
        "cannot read known_hosts file {}: {error}; fix its permissions or point `known_hosts` in the inventory elsewhere",
        .path.display()
    )]
    Read { path: PathBuf, error: io::Error },
    #[error("cannot encode host key: {0}")]
    EncodeKey(russh::keys::ssh_key::Error),
    #[error("internal error: cannot re-parse {0:?}")]
    Reparse(String),
    #[error("cannot add the host key to {}: {error}", .path.display())]
    Append { path: PathBuf, error: io::Error },
}

/// The SHA-256 fingerprint of `key` in OpenSSH's notation (`SHA256:…`, unpadded base64).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The name a member is recorded under: `host` on port 22, `[host]:port` otherwise (lowercase).
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The optional marker in front of a known_hosts line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `@cert-authority`: parsed, never used for matching (see the module docs).
    CertAuthority,
    /// `@revoked`: this key must never be accepted for the matching hosts.
    Revoked,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// Comma-separated patterns, lowercased.
    Patterns(Vec<String>),
    /// `|1|salt|hash`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

impl Hosts {
    fn parse(field: &str) -> Result<Hosts, LineError> {
        if let Some(rest) = field.strip_prefix("|1|") {
            let (salt, hash) = rest.split_once('|').ok_or(LineError::HashedWithoutHash)?;
            let salt = STANDARD.decode(salt).map_err(LineError::BadSalt)?;
            let hash = STANDARD.decode(hash).map_err(LineError::BadHash)?;
            if hash.len() != 20 {
                return Err(LineError::HashLength(hash.len()));
            }
            return Ok(Hosts::Hashed { salt, hash });
        }
        let patterns: Vec<String> = field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        if patterns.is_empty() {
            return Err(LineError::NoHostPatterns);
        }
        Ok(Hosts::Patterns(patterns))
    }

    /// OpenSSH `match_pattern_list`: some positive pattern matches and no negated one does.
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let mut positive = false;
                for pattern in patterns {
                    match pattern.strip_prefix('!') {
                        Some(negated) if glob_match(negated, name) => return false,
                        Some(_) => {}
                        None => positive |= glob_match(pattern, name),
                    }
                }
                positive
            }
        }
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else literally. Called for
/// every line of every file for each connection, so without allocating: most patterns are
/// plain names, and host names are ASCII (bytes are characters then).
fn glob_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == name;
    }
    if pattern.is_ascii() && name.is_ascii() {
        return glob_match_units(pattern.as_bytes(), name.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_match_units(&p, &n, '*', '?')
}

fn glob_match_units<T: PartialEq + Copy>(p: &[T], n: &[T], any: T, one: T) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and which name position it currently swallows up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(&c) if c == any => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == one || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == any)
}

/// One parsed known_hosts line.
#[derive(Debug, Clone)]
pub struct Entry {
    marker: Option<Marker>,
    hosts: Hosts,
    key: PublicKey,
    /// 1-based line number in its file (0 for keys learnt in this run).
    line: usize,
}

impl Entry {
    /// Parse one line. `Ok(None)` for blank and comment lines; `Err` says what is wrong.
    pub fn parse(text: &str, line: usize) -> Result<Option<Entry>, LineError> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return Ok(None);
        }
        let mut fields = text.split_ascii_whitespace();
        let mut hosts_field = fields.next().ok_or(LineError::Empty)?;
        let marker = match hosts_field {
            "@cert-authority" => Some(Marker::CertAuthority),
            "@revoked" => Some(Marker::Revoked),
            m if m.starts_with('@') => return Err(LineError::UnknownMarker(m.to_string())),
            _ => None,
        };
        if marker.is_some() {
            hosts_field = fields.next().ok_or(LineError::MarkerWithoutHosts)?;
        }
        let hosts = Hosts::parse(hosts_field)?;
        let keytype = fields.next().ok_or(LineError::MissingKeyType)?;
        let blob = fields.next().ok_or(LineError::MissingKey)?;
        let key =
            russh::keys::parse_public_key_base64(blob).map_err(|error| LineError::BadKey {
                keytype: keytype.to_string(),
                error,
            })?;
        let actual = key.algorithm();
        if actual.as_str() != keytype {
            return Err(LineError::KeyTypeMismatch {
                keytype: keytype.to_string(),
                actual: actual.as_str().to_string(),
            });
        }
        Ok(Some(Entry {
            marker,
            hosts,
            key,
            line,
        }))
    }

    pub fn marker(&self) -> Option<Marker> {
        self.marker
    }

    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether this line applies to `name` (see [`lookup_name`]).
    pub fn matches(&self, name: &str) -> bool {
        self.hosts.matches(name)
    }
}

/// One known_hosts file, parsed.
#[derive(Debug, Clone)]
pub struct KnownHostsFile {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl KnownHostsFile {
    /// Parse `text` as the content of `path`; malformed lines are skipped with a warning.
    pub fn parse(path: &Path, text: &str) -> KnownHostsFile {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match Entry::parse(line, i + 1) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(why) => tracing::warn!(
                    "{}:{}: skipping unusable known_hosts line: {why}",
                    path.display(),
                    i + 1
                ),
            }
        }
        KnownHostsFile {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// Read and parse `path`. A missing file is an empty one (nothing known yet).
    pub fn read(path: &Path) -> io::Result<KnownHostsFile> {
        match fs::read(path) {
            Ok(bytes) => Ok(KnownHostsFile::parse(
                path,
                &String::from_utf8_lossy(&bytes),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KnownHostsFile {
                path: path.to_path_buf(),
                entries: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// What the known_hosts files say about the key a member presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host lists exactly this key.
    Known,
    /// No line for this host at all.
    Unknown,
    /// Lines for this host exist but none lists this key. `expected` is the recorded key of the
    /// same type if there is one, else the first recorded key of another type (a server that
    /// suddenly only offers a different key type is treated as a changed key, never as new).
    Changed {
        expected: PublicKey,
        path: PathBuf,
        line: usize,
    },
    /// An `@revoked` line for this host lists this key.
    Revoked { path: PathBuf, line: usize },
}

/// Decide what `files` say about `key` for the member at `host`:`port`.
pub fn check<'a>(
    files: impl IntoIterator<Item = &'a KnownHostsFile>,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Verdict {
    let name = lookup_name(host, port);
    let mut known = false;
    let mut same_type: Option<(&Path, &Entry)> = None;
    let mut other_type: Option<(&Path, &Entry)> = None;
    for file in files {
        for entry in file.entries.iter().filter(|e| e.matches(&name)) {
            let same_key = entry.key.key_data() == key.key_data();
            match entry.marker {
                Some(Marker::Revoked) if same_key => {
                    return Verdict::Revoked {
                        path: file.path.clone(),
                        line: entry.line,
                    };
                }
                Some(_) => {}
                None if same_key => known = true,
                None if entry.key.algorithm() == key.algorithm() => {
                    same_type.get_or_insert((&file.path, entry));
                }
                None => {
                    other_type.get_or_insert((&file.path, entry));
                }
            }
        }
    }
    if known {
        return Verdict::Known;
    }
    match same_type.or(other_type) {
        Some((path, entry)) => Verdict::Changed {
            expected: entry.key.clone(),
            path: path.to_path_buf(),
            line: entry.line,
        },
        None => Verdict::Unknown,
    }
}

/// The key algorithms recorded (unrevoked, non-CA) for `host`:`port` in `files`, in file order,
/// without duplicates. Used to ask a member for a key type we can actually verify.
pub fn recorded_algorithms<'a>(
    files: impl IntoIterator<Item = &'a KnownHostsFile>,
    host: &str,
    port: u16,
) -> Vec<Algorithm> {
    let name = lookup_name(host, port);
    let mut out = Vec::new();
    for file in files {
        for entry in file.entries.iter() {
            if entry.marker.is_none() && entry.matches(&name) {
                let alg = entry.key.algorithm();
                if !out.contains(&alg) {
                    out.push(alg);
                }
            }
        }
    }
    out
}

/// The `@cert-authority` lines of `files` that apply to `host`:`port`, as `(path, line, CA key)`
/// in file order. Matching is the same as for plain lines (patterns, negation, hashed names,
/// `[host]:port`).
pub fn authorities<'a>(
    files: impl IntoIterator<Item = &'a KnownHostsFile>,
    host: &str,
    port: u16,
) -> Vec<(PathBuf, usize, PublicKey)> {
    let name = lookup_name(host, port);
    let mut out = Vec::new();
    for file in files {
        for entry in file.entries.iter() {
            if entry.marker == Some(Marker::CertAuthority) && entry.matches(&name) {
                out.push((file.path.clone(), entry.line, entry.key.clone()));
            }
        }
    }
    out
}

/// The first `@revoked` line of `files` for `host`:`port` listing `key`.
fn revocation(files: &[&KnownHostsFile], name: &str, key: &KeyData) -> Option<(PathBuf, usize)> {
    files.iter().find_map(|file| {
        file.entries
            .iter()
            .find(|e| {
                e.marker == Some(Marker::Revoked) && e.key.key_data() == key && e.matches(name)
            })
            .map(|e| (file.path.clone(), e.line))
    })
}

/// A time in a certificate (seconds since the epoch), as RFC 3339 UTC; `forever` for OpenSSH's
/// "no end" value.
fn cert_time(secs: u64) -> String {
    if secs == u64::MAX {
        return "forever".to_string();
    }
    match i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
    {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{secs} (seconds since 1970)"),
    }
}

/// Why a host certificate is not accepted (see [`check_certificate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    #[error("it is a user certificate, not a host certificate")]
    NotHostCertificate,
    #[error(
        "its key {fingerprint} is revoked at {}:{line}",
        .path.display()
    )]
    KeyRevoked {
        fingerprint: String,
        path: PathBuf,
        line: usize,
    },
    #[error(
        "it is signed by certificate authority {ca}, which is revoked at {}:{line}",
        .path.display()
    )]
    AuthorityRevoked {
        ca: String,
        path: PathBuf,
        line: usize,
    },
    #[error(
        "it is signed by certificate authority {ca}, which no @cert-authority line for {name} in known_hosts trusts{}",
        if .trusted.is_empty() { String::from(" (there is none)") } else { format!(" (trusted: {})", .trusted.join(", ")) }
    )]
    UnknownAuthority {
        ca: String,
        name: String,
        trusted: Vec<String>,
    },
    #[error("it expired at {} (valid from {} to {})", cert_time(*.valid_before), cert_time(*.valid_after), cert_time(*.valid_before))]
    Expired { valid_after: u64, valid_before: u64 },
    #[error("it is not valid before {} (valid from {} to {})", cert_time(*.valid_after), cert_time(*.valid_after), cert_time(*.valid_before))]
    NotYetValid { valid_after: u64, valid_before: u64 },
    #[error("its signature by certificate authority {ca} does not verify")]
    BadSignature { ca: String },
    #[error("it names no principals; fleetauth accepts only a host certificate listing {name}")]
    NoPrincipals { name: String },
    #[error("it is valid for {}, not for {name}", .principals.join(", "))]
    WrongPrincipal {
        name: String,
        principals: Vec<String>,
    },
    #[error("it has critical options ({}), which host certificates must not have", .0.join(", "))]
    CriticalOptions(Vec<String>),
}

/// Decide whether `cert`, presented by the member at `host`:`port` (the known_hosts name:
/// `HostKeyAlias` or the host), is a host certificate the `@cert-authority` lines of `files`
/// vouch for at `now` (seconds since the epoch). Accepted: the CA line's file and line number.
///
/// The checks, in order: a host (not user) certificate; neither its key nor its CA revoked by
/// an `@revoked` line for the host; signed by the key of a `@cert-authority` line matching the
/// host; `valid_after <= now < valid_before`; the CA's signature verifies (ssh-key's
/// `Certificate::validate_at`); no critical options (as OpenSSH); and its principals list the
/// host name without the port, lowercased (as OpenSSH compares it). A certificate that names no
/// principal is refused (OpenSSH would accept it for any host).
pub fn check_certificate<'a>(
    files: impl IntoIterator<Item = &'a KnownHostsFile>,
    host: &str,
    port: u16,
    cert: &Certificate,
    now: u64,
) -> Result<(PathBuf, usize), CertRefusal> {
    let files: Vec<&KnownHostsFile> = files.into_iter().collect();
    let name = lookup_name(host, port);
    if !cert.cert_type().is_host() {
        return Err(CertRefusal::NotHostCertificate);
    }
    if let Some((path, line)) = revocation(&files, &name, cert.public_key()) {
        return Err(CertRefusal::KeyRevoked {
            fingerprint: cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
            path,
            line,
        });
    }
    let ca_fingerprint = cert.signature_key().fingerprint(HashAlg::Sha256);
    let ca = ca_fingerprint.to_string();
    if let Some((path, line)) = revocation(&files, &name, cert.signature_key()) {
        return Err(CertRefusal::AuthorityRevoked { ca, path, line });
    }
    let trusted = authorities(files.iter().copied(), host, port);
    let Some((path, line, _)) = trusted
        .iter()
        .find(|(_, _, key)| key.key_data() == cert.signature_key())
    else {
        return Err(CertRefusal::UnknownAuthority {
            ca,
            name,
            trusted: trusted.iter().map(|(_, _, k)| fingerprint(k)).collect(),
        });
    };
    let (valid_after, valid_before) = (cert.valid_after(), cert.valid_before());
    if now >= valid_before {
        return Err(CertRefusal::Expired {
            valid_after,
            valid_before,
        });
    }
    if now < valid_after {
        return Err(CertRefusal::NotYetValid {
            valid_after,
            valid_before,
        });
    }
    if cert.validate_at(now, [&ca_fingerprint]).is_err() {
        return Err(CertRefusal::BadSignature { ca });
    }
    if !cert.critical_options().is_empty() {
        return Err(CertRefusal::CriticalOptions(
            cert.critical_options().keys().cloned().collect(),
        ));
    }
    let principal = host.to_ascii_lowercase();
    let principals = cert.valid_principals();
    if principals.is_empty() {
        return Err(CertRefusal::NoPrincipals { name: principal });
    }
    if !principals.contains(&principal) {
        return Err(CertRefusal::WrongPrincipal {
            name: principal,
            principals: principals.to_vec(),
        });
    }
    Ok((path.clone(), *line))
}

/// The line `accept-new` appends: `name keytype base64`, no comment.
pub fn format_line(host: &str, port: u16, key: &PublicKey) -> Result<String, KnownHostsError> {
    let bare = PublicKey::new(key.key_data().clone(), "");
    let openssh = bare.to_openssh().map_err(KnownHostsError::EncodeKey)?;
    Ok(format!(
        "{} {}",
        lookup_name(host, port),
        openssh.trim_end()
    ))
}

/// Every known_hosts file of a run: the members' own files plus the global one, parsed once.
/// Shared by all connections; `learn` serialises appends behind the write lock.
#[derive(Debug)]
pub struct KnownHostsStore {
    files: RwLock<HashMap<PathBuf, KnownHostsFile>>,
    global: Option<PathBuf>,
}

impl KnownHostsStore {
    /// Load each distinct file once. `global` (normally `/etc/ssh/ssh_known_hosts`) is consulted
    /// for every member; missing files count as empty, unreadable ones are an error naming them.
    pub fn load<'a>(
        user_files: impl IntoIterator<Item = &'a Path>,
        global: Option<&'a Path>,
    ) -> Result<KnownHostsStore, KnownHostsError> {
        let mut files = HashMap::new();
        for path in user_files.into_iter().chain(global) {
            if files.contains_key(path) {
                continue;
            }
            let file = KnownHostsFile::read(path).map_err(|error| KnownHostsError::Read {
                path: path.to_path_buf(),
                error,
            })?;
            tracing::debug!(
                path = %path.display(),
                entries = file.entries.len(),
                "loaded known_hosts"
            );
            files.insert(path.to_path_buf(), file);
        }
        Ok(KnownHostsStore {
            files: RwLock::new(files),
            global: global.map(Path::to_path_buf),
        })
    }

    /// Make sure `user_file` is loaded (a member that was not known when the store was built).
    fn ensure_loaded(&self, user_file: &Path) {
        if self.read_files().contains_key(user_file) {
            return;
        }
        let file = KnownHostsFile::read(user_file).unwrap_or_else(|e| {
            tracing::warn!("cannot read known_hosts file {}: {e}", user_file.display());
            KnownHostsFile {
                path: user_file.to_path_buf(),
                entries: Vec::new(),
            }
        });
        self.write_files()
            .entry(user_file.to_path_buf())
            .or_insert(file);
    }

    fn read_files(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PathBuf, KnownHostsFile>> {
        self.files.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_files(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PathBuf, KnownHostsFile>> {
        self.files.write().unwrap_or_else(|p| p.into_inner())
    }

    fn files_for<'m>(
        &self,
        map: &'m HashMap<PathBuf, KnownHostsFile>,
        user_file: &Path,
    ) -> Vec<&'m KnownHostsFile> {
        let mut out: Vec<&KnownHostsFile> = map.get(user_file).into_iter().collect();
        if let Some(global) = &self.global
            && global != user_file
            && let Some(file) = map.get(global)
        {
            out.push(file);
        }
        out
    }

    /// What the member's file and the global file say about `key` for `host`:`port`.
    pub fn check(&self, user_file: &Path, host: &str, port: u16, key: &PublicKey) -> Verdict {
        self.ensure_loaded(user_file);
        let map = self.read_files();
        check(self.files_for(&map, user_file), host, port, key)
    }

    /// Key algorithms recorded for `host`:`port` in the member's file and the global file.
    pub fn recorded_algorithms(&self, user_file: &Path, host: &str, port: u16) -> Vec<Algorithm> {
        self.ensure_loaded(user_file);
        let map = self.read_files();
        recorded_algorithms(self.files_for(&map, user_file), host, port)
    }

    /// The `@cert-authority` lines for `host`:`port` in the member's file and the global file.
    pub fn authorities(
        &self,
        user_file: &Path,
        host: &str,
        port: u16,
    ) -> Vec<(PathBuf, usize, PublicKey)> {
        self.ensure_loaded(user_file);
        let map = self.read_files();
        authorities(self.files_for(&map, user_file), host, port)
    }

    /// [`check_certificate`] against the member's file and the global file.
    pub fn check_certificate(
        &self,
        user_file: &Path,
        host: &str,
        port: u16,
        cert: &Certificate,
        now: u64,
    ) -> Result<(PathBuf, usize), CertRefusal> {
        self.ensure_loaded(user_file);
        let map = self.read_files();
        check_certificate(self.files_for(&map, user_file), host, port, cert, now)
    }

    /// `accept-new`: record `key` for `host`:`port` in `user_file` unless the host became known
    /// meanwhile (then that verdict is returned and nothing is written). On success the key is
    /// trusted for the rest of the run even if writing the file failed; the write error is
    /// returned as `Err` so the caller can warn.
    pub fn learn(
        &self,
        user_file: &Path,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<Verdict, KnownHostsError> {
        self.ensure_loaded(user_file);
        let mut map = self.write_files();
        let verdict = check(self.files_for(&map, user_file), host, port, key);
        if verdict != Verdict::Unknown {
            return Ok(verdict);
        }
        let line = format_line(host, port, key)?;
        let written = append_line(user_file, &line);
        let entry = Entry::parse(&line, 0)
            .ok()
            .flatten()
            .ok_or_else(|| KnownHostsError::Reparse(line.clone()))?;
        if let Some(file) = map.get_mut(user_file) {
            file.entries.push(entry);
        }
        written
            .map(|()| Verdict::Known)
            .map_err(|error| KnownHostsError::Append {
                path: user_file.to_path_buf(),
                error,
            })
    }
}

/// Append one line, creating the file 0600 (and its directory 0700) if needed, and starting on
/// a fresh line if the file does not end with a newline.
fn append_line(path: &Path, line: &str) -> io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let len = file.metadata()?.len();
    let mut text = String::new();
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    text.push_str(line);
    text.push('\n');
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWBqk/tHvt7FfSRQ65YIkQyLrUQBNEij3+lHZbOOMA1";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOyGyDXyR+5t8eVMmlVSLGAK3C3FqqBh2AdDylwbi1Du";
    const KEY_C: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOIroRYziNvsKe2I/RFGovHa/H82oWlkp2GV3xa3T/b0";
    const KEY_E: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHERAXF82W2VqJanKUuKrJ3AY8BV0oo3GWBRq54/wULTkEw+5G7mwopPISAkDg48r4grZtxBqQEETxHC9Jux7FE=";

    fn key(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    fn file(text: &str) -> KnownHostsFile {
        KnownHostsFile::parse(Path::new("/test/known_hosts"), text)
    }

    fn verdict(text: &str, host: &str, port: u16, k: &str) -> Verdict {
        check([&file(text)], host, port, &key(k))
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        let hash = mac.finalize().into_bytes();
        format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash))
    }

    #[test]
    fn fingerprint_is_openssh_sha256() {
        // `ssh-keygen -lf` on KEY_A prints this.
        assert_eq!(
            fingerprint(&key(KEY_A)),
            "SHA256:nYbmyQs5/29cbaf7p+p45pKlt85YSHL/c2rcSDEPw+M"
        );
    }

    #[test]
    fn plain_name_matches_its_key() {
        assert_eq!(
            verdict(&format!("web1 {KEY_A}"), "web1", 22, KEY_A),
            Verdict::Known
        );
    }

    #[test]
    fn name_in_comma_list_matches_ignoring_case() {
        let text = format!("other,WEB1.example.com,10.0.0.1 {KEY_A} a comment");
        assert_eq!(
            verdict(&text, "web1.EXAMPLE.com", 22, KEY_A),
            Verdict::Known
        );
        assert_eq!(verdict(&text, "10.0.0.1", 22, KEY_A), Verdict::Known);
        assert_eq!(verdict(&text, "10.0.0.2", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn fields_may_be_separated_by_tabs_and_runs_of_spaces() {
        let text = format!("  web1\t{}", KEY_A.replacen(' ', "   ", 1));
        assert_eq!(verdict(&text, "web1", 22, KEY_A), Verdict::Known);
    }

    #[test]
    fn non_default_port_needs_bracketed_name() {
        let bare = format!("web1 {KEY_A}");
        assert_eq!(verdict(&bare, "web1", 2222, KEY_A), Verdict::Unknown);
        let bracketed = format!("[web1]:2222 {KEY_A}");
        assert_eq!(verdict(&bracketed, "web1", 2222, KEY_A), Verdict::Known);
        assert_eq!(verdict(&bracketed, "web1", 22, KEY_A), Verdict::Unknown);
        assert_eq!(verdict(&bracketed, "web1", 2223, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn hashed_name_matches_only_its_host_and_port() {
        let text = format!(
            "{} {KEY_A}",
            hashed("[10.1.2.3]:2222", b"0123456789abcdefghij")
        );
        assert_eq!(verdict(&text, "10.1.2.3", 2222, KEY_A), Verdict::Known);
        assert_eq!(verdict(&text, "10.1.2.3", 22, KEY_A), Verdict::Unknown);
        assert_eq!(verdict(&text, "10.1.2.4", 2222, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn names_hashed_by_ssh_keygen_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(
            &path,
            format!("web1.example.com {KEY_A}\n[127.0.0.9]:2200 {KEY_B}\n"),
        )
        .unwrap();
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-H", "-f"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("ssh-keygen must be installed for this test");
        assert!(status.success());
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("web1"),
            "ssh-keygen -H left a plain name: {text}"
        );
        assert_eq!(text.matches("|1|").count(), 2);

        let f = KnownHostsFile::read(&path).unwrap();
        assert_eq!(
            check([&f], "web1.example.com", 22, &key(KEY_A)),
            Verdict::Known
        );
        assert_eq!(check([&f], "127.0.0.9", 2200, &key(KEY_B)), Verdict::Known);
        assert_eq!(check([&f], "127.0.0.9", 22, &key(KEY_B)), Verdict::Unknown);
        assert!(matches!(
            check([&f], "web1.example.com", 22, &key(KEY_C)),
            Verdict::Changed { .. }
        ));
    }

    #[test]
    fn another_key_of_the_same_type_is_a_change() {
        let text = format!("# fleet\nweb2 {KEY_C}\nweb1 {KEY_A}\n");
        match verdict(&text, "web1", 22, KEY_B) {
            Verdict::Changed {
                expected,
                path,
                line,
            } => {
                assert_eq!(expected.key_data(), key(KEY_A).key_data());
                assert_eq!(path, Path::new("/test/known_hosts"));
                assert_eq!(line, 3);
            }
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    #[test]
    fn only_another_key_type_recorded_is_a_change_not_new() {
        let text = format!("web1 {KEY_E}\n");
        match verdict(&text, "web1", 22, KEY_A) {
            Verdict::Changed { expected, .. } => {
                assert_eq!(expected.key_data(), key(KEY_E).key_data())
            }
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    #[test]
    fn a_second_recorded_key_makes_it_known() {
        let text = format!("web1 {KEY_B}\nweb1 {KEY_A}\n");
        assert_eq!(verdict(&text, "web1", 22, KEY_A), Verdict::Known);
    }

    #[test]
    fn unknown_host() {
        assert_eq!(
            verdict(&format!("web1 {KEY_A}"), "web9", 22, KEY_A),
            Verdict::Unknown
        );
        assert_eq!(verdict("", "web9", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn revoked_key_is_refused_even_when_also_listed() {
        let text = format!("web1 {KEY_A}\n@revoked * {KEY_A}\n");
        assert_eq!(
            verdict(&text, "web1", 22, KEY_A),
            Verdict::Revoked {
                path: PathBuf::from("/test/known_hosts"),
                line: 2
            }
        );
        // Other keys for the host are unaffected.
        let text = format!("web1 {KEY_B}\n@revoked * {KEY_A}\n");
        assert_eq!(verdict(&text, "web1", 22, KEY_B), Verdict::Known);
    }

    #[test]
    fn revocation_in_the_global_file_applies() {
        let user = file(&format!("web1 {KEY_A}\n"));
        let global = KnownHostsFile::parse(
            Path::new("/etc/ssh/ssh_known_hosts"),
            &format!("@revoked web1 {KEY_A}\n"),
        );
        assert!(matches!(
            check([&user, &global], "web1", 22, &key(KEY_A)),
            Verdict::Revoked { .. }
        ));
    }

    #[test]
    fn cert_authority_lines_record_no_plain_key() {
        let text = format!("@cert-authority *.example.com {KEY_A}\n");
        assert_eq!(
            verdict(&text, "web1.example.com", 22, KEY_A),
            Verdict::Unknown
        );
        assert!(recorded_algorithms([&file(&text)], "web1.example.com", 22).is_empty());
    }

    /// Certificates made by `ssh-keygen -s`, in a temp dir.
    pub(crate) struct Signer {
        pub(crate) dir: tempfile::TempDir,
    }

    impl Signer {
        pub(crate) fn new() -> Signer {
            Signer {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        /// A fresh ed25519 key pair named `name`; returns its public key line.
        pub(crate) fn key(&self, name: &str) -> String {
            let path = self.dir.path().join(name);
            let status = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
                .arg(&path)
                .status()
                .expect("ssh-keygen must be installed for this test");
            assert!(status.success());
            fs::read_to_string(path.with_extension("pub"))
                .unwrap()
                .trim()
                .to_string()
        }

        /// `ssh-keygen -s CA -I id args… SUBJECT.pub`: SUBJECT's certificate.
        pub(crate) fn sign(&self, ca: &str, subject: &str, args: &[&str]) -> Certificate {
            let out = std::process::Command::new("ssh-keygen")
                .arg("-q")
                .arg("-s")
                .arg(self.dir.path().join(ca))
                .args(["-I", "test-id"])
                .args(args)
                .arg(self.dir.path().join(format!("{subject}.pub")))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let cert = self.dir.path().join(format!("{subject}-cert.pub"));
            Certificate::from_openssh(fs::read_to_string(cert).unwrap().trim()).unwrap()
        }
    }

    /// 2025-06-01T00:00:00Z, inside `VALIDITY`.
    pub(crate) const NOW: u64 = 1_748_736_000;
    pub(crate) const VALIDITY: &str = "20250101:20260101";

    #[test]
    fn authority_lines_match_like_plain_lines_and_vouch_for_no_plain_key() {
        let text = format!(
            "@cert-authority *.example.com,!bad.example.com {KEY_A}\n\
             @cert-authority [10.0.0.*]:2222 {KEY_B}\n\
             {} {KEY_C}\n\
             @cert-authority {} {KEY_E}\n\
             web1.example.com {KEY_C}\n",
            hashed("db1", b"0123456789abcdefghij"),
            hashed("[db2]:2200", b"abcdefghij0123456789"),
        );
        let f = file(&text);
        let lines = |host: &str, port: u16| -> Vec<usize> {
            authorities([&f], host, port)
                .iter()
                .map(|(_, l, _)| *l)
                .collect()
        };
        assert_eq!(lines("web1.example.com", 22), [1]);
        assert_eq!(lines("WEB1.example.COM", 22), [1]);
        assert!(lines("bad.example.com", 22).is_empty(), "negated");
        assert!(lines("web1.example.com", 2222).is_empty());
        assert_eq!(lines("10.0.0.7", 2222), [2]);
        assert!(lines("10.0.0.7", 22).is_empty());
        assert_eq!(lines("db2", 2200), [4], "hashed [host]:port");
        assert!(lines("db1", 22).is_empty(), "a plain hashed line is no CA");
        // A CA line does not make its own key, or any plain key, known.
        assert_eq!(
            check([&f], "web2.example.com", 22, &key(KEY_A)),
            Verdict::Unknown
        );
        let store_dir = tempfile::tempdir().unwrap();
        let path = store_dir.path().join("known_hosts");
        fs::write(&path, &text).unwrap();
        let store = KnownHostsStore::load([path.as_path()], None).unwrap();
        let found = store.authorities(&path, "web1.example.com", 22);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, path);
        assert_eq!(found[0].2.key_data(), key(KEY_A).key_data());
    }

    #[test]
    fn a_host_certificate_signed_by_a_trusted_ca_for_this_host_is_accepted() {
        let s = Signer::new();
        let ca = s.key("ca");
        s.key("host");
        let text = format!("# fleet\n@cert-authority web1,[web2]:2222 {ca}\n");
        let f = file(&text);
        let cert = s.sign("ca", "host", &["-h", "-n", "web1,web2", "-V", VALIDITY]);
        assert_eq!(
            check_certificate([&f], "web1", 22, &cert, NOW),
            Ok((PathBuf::from("/test/known_hosts"), 2))
        );
        // The principal is the name without the port, compared lowercased.
        assert!(check_certificate([&f], "WEB2", 2222, &cert, NOW).is_ok());
        // The validity window: valid_after <= now < valid_before.
        assert!(check_certificate([&f], "web1", 22, &cert, cert.valid_after()).is_ok());
    }

    #[test]
    fn host_certificate_refusals_say_why() {
        let s = Signer::new();
        let ca = s.key("ca");
        let other_ca = s.key("other_ca");
        let host = s.key("host");
        let f = file(&format!("@cert-authority web1 {ca}\n"));
        let fp = |line: &str| fingerprint(&key(line));
        let good = s.sign("ca", "host", &["-h", "-n", "web1", "-V", VALIDITY]);

        let expired = check_certificate([&f], "web1", 22, &good, good.valid_before());
        assert_eq!(
            expired.unwrap_err().to_string(),
            format!(
                "it expired at {} (valid from {} to {})",
                cert_time(good.valid_before()),
                cert_time(good.valid_after()),
                cert_time(good.valid_before())
            )
        );
        assert!(cert_time(good.valid_before()).starts_with("2026-01-01T"));
        let early = check_certificate([&f], "web1", 22, &good, good.valid_after() - 1);
        assert!(
            matches!(early, Err(CertRefusal::NotYetValid { .. })),
            "{early:?}"
        );
        assert!(
            early
                .unwrap_err()
                .to_string()
                .starts_with("it is not valid before 2025-01-01T")
        );

        let wrong = s.sign(
            "ca",
            "host",
            &["-h", "-n", "db1,db1.example.com", "-V", VALIDITY],
        );
        assert_eq!(
            check_certificate([&f], "web1", 22, &wrong, NOW)
                .unwrap_err()
                .to_string(),
            "it is valid for db1, db1.example.com, not for web1"
        );
        let anyone = s.sign("ca", "host", &["-h", "-V", VALIDITY]);
        assert_eq!(
            check_certificate([&f], "web1", 22, &anyone, NOW).unwrap_err(),
            CertRefusal::NoPrincipals {
                name: "web1".into()
            }
        );

        let stranger = s.sign("other_ca", "host", &["-h", "-n", "web1", "-V", VALIDITY]);
        assert_eq!(
            check_certificate([&f], "web1", 22, &stranger, NOW)
                .unwrap_err()
                .to_string(),
            format!(
                "it is signed by certificate authority {}, which no @cert-authority line for web1 in known_hosts trusts (trusted: {})",
                fp(&other_ca),
                fp(&ca)
            )
        );
        // A CA trusted for other hosts only is no CA for this one.
        let elsewhere = file(&format!("@cert-authority web9 {ca}\n"));
        assert_eq!(
            check_certificate([&elsewhere], "web1", 22, &good, NOW)
                .unwrap_err()
                .to_string(),
            format!(
                "it is signed by certificate authority {}, which no @cert-authority line for web1 in known_hosts trusts (there is none)",
                fp(&ca)
            )
        );

        let user = s.sign("ca", "host", &["-n", "web1", "-V", VALIDITY]);
        assert_eq!(
            check_certificate([&f], "web1", 22, &user, NOW).unwrap_err(),
            CertRefusal::NotHostCertificate
        );

        // Revocation of the certificate's key or of its CA, by any @revoked line for the host.
        let revoked_key = file(&format!("@cert-authority web1 {ca}\n@revoked * {host}\n"));
        assert!(matches!(
            check_certificate([&revoked_key], "web1", 22, &good, NOW),
            Err(CertRefusal::KeyRevoked { line: 2, .. })
        ));
        let revoked_ca = file(&format!("@cert-authority web1 {ca}\n@revoked web* {ca}\n"));
        assert_eq!(
            check_certificate([&revoked_ca], "web1", 22, &good, NOW)
                .unwrap_err()
                .to_string(),
            format!(
                "it is signed by certificate authority {}, which is revoked at /test/known_hosts:2",
                fp(&ca)
            )
        );

        // A certificate whose signed content was altered: the CA's signature does not verify.
        let mut blob = good.to_bytes().unwrap();
        let at = blob.windows(4).position(|w| w == b"web1").unwrap();
        blob[at + 3] = b'2';
        let forged = Certificate::from_bytes(&blob).unwrap();
        let f2 = file(&format!("@cert-authority web2 {ca}\n"));
        assert_eq!(
            check_certificate([&f2], "web2", 22, &forged, NOW).unwrap_err(),
            CertRefusal::BadSignature { ca: fp(&ca) }
        );
    }

    #[test]
    fn wildcards_and_negation() {
        let text = format!("*.example.com,!bad.example.com,db?? {KEY_A}\n");
        assert_eq!(
            verdict(&text, "web1.example.com", 22, KEY_A),
            Verdict::Known
        );
        assert_eq!(
            verdict(&text, "bad.example.com", 22, KEY_A),
            Verdict::Unknown
        );
        assert_eq!(verdict(&text, "db01", 22, KEY_A), Verdict::Known);
        assert_eq!(verdict(&text, "db1", 22, KEY_A), Verdict::Unknown);
        assert_eq!(verdict(&text, "example.com", 22, KEY_A), Verdict::Unknown);
        let ported = format!("[*.example.com]:2222 {KEY_A}\n");
        assert_eq!(
            verdict(&ported, "a.example.com", 2222, KEY_A),
            Verdict::Known
        );
        assert_eq!(
            verdict(&ported, "a.example.com", 22, KEY_A),
            Verdict::Unknown
        );
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b", "abab"));
        assert!(!glob_match("a*b", "abac"));
        assert!(!glob_match("?", ""));
        assert!(glob_match("*.*", "a.b.c"));
    }

    #[test]
    fn malformed_lines_are_skipped_and_the_rest_still_counts() {
        let text = format!(
            "@bogus web1 {KEY_B}\nweb1 ssh-ed25519 not-base64!!\nweb1\n|1|xx {KEY_B}\nweb1 ecdsa-sha2-nistp256 {}\nweb1 {KEY_A}\n",
            KEY_A.split(' ').nth(1).unwrap()
        );
        let f = file(&text);
        assert_eq!(f.entries().len(), 1, "{:?}", f.entries());
        assert_eq!(f.entries()[0].line(), 6);
        assert_eq!(check([&f], "web1", 22, &key(KEY_A)), Verdict::Known);
    }

    #[test]
    fn line_errors_say_what_is_wrong() {
        let blob = KEY_A.split(' ').nth(1).unwrap();
        let why = |line: &str| Entry::parse(line, 1).unwrap_err().to_string();
        assert_eq!(
            why(&format!("@bogus web1 {KEY_A}")),
            "unknown marker \"@bogus\" (expected @revoked or @cert-authority)"
        );
        assert_eq!(why("@revoked"), "marker without host patterns");
        assert_eq!(why("web1"), "missing key type");
        assert_eq!(why("web1 ssh-ed25519"), "missing base64 key");
        assert!(
            why("web1 ssh-ed25519 not-base64!!").starts_with("cannot decode the ssh-ed25519 key: "),
            "{}",
            why("web1 ssh-ed25519 not-base64!!")
        );
        assert_eq!(
            why(&format!("web1 ecdsa-sha2-nistp256 {blob}")),
            "key type field says ecdsa-sha2-nistp256 but the key is ssh-ed25519"
        );
        assert_eq!(why(&format!(",, {KEY_A}")), "empty host pattern list");
        assert_eq!(
            why(&format!("|1|xx {KEY_A}")),
            "hashed host name without a hash (expected |1|salt|hash)"
        );
        assert!(why(&format!("|1|!!|AAAA {KEY_A}")).starts_with("hashed host name: bad salt: "));
        assert!(why(&format!("|1|AAAA|!! {KEY_A}")).starts_with("hashed host name: bad hash: "));
        assert_eq!(
            why(&format!("|1|AAAA|AAAA {KEY_A}")),
            "hashed host name: hash is 3 bytes, HMAC-SHA1 gives 20"
        );
    }

    #[test]
    fn recorded_algorithms_in_file_order() {
        let text = format!("web1 {KEY_E}\nweb1 {KEY_A}\nweb1 {KEY_B}\nweb2 {KEY_C}\n");
        let algs = recorded_algorithms([&file(&text)], "web1", 22);
        assert_eq!(algs, vec![key(KEY_E).algorithm(), key(KEY_A).algorithm()]);
    }

    #[test]
    fn format_line_uses_bracketed_name_off_port_22() {
        assert_eq!(
            format_line("Web1", 22, &key(KEY_A)).unwrap(),
            format!("web1 {KEY_A}")
        );
        assert_eq!(
            format_line("127.0.0.5", 2200, &key(KEY_A)).unwrap(),
            format!("[127.0.0.5]:2200 {KEY_A}")
        );
    }

    #[test]
    fn learn_appends_creates_0600_and_is_visible_at_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("known_hosts");
        let store = KnownHostsStore::load([path.as_path()], None).unwrap();
        assert_eq!(
            store.check(&path, "127.0.0.5", 2200, &key(KEY_A)),
            Verdict::Unknown
        );

        assert_eq!(
            store.learn(&path, "127.0.0.5", 2200, &key(KEY_A)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            store.check(&path, "127.0.0.5", 2200, &key(KEY_A)),
            Verdict::Known
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("[127.0.0.5]:2200 {KEY_A}\n")
        );

        // A different key for the same host is not learnt over the first one.
        assert!(matches!(
            store.learn(&path, "127.0.0.5", 2200, &key(KEY_B)).unwrap(),
            Verdict::Changed { .. }
        ));
        // Another host goes on its own line, even if the file lacked a final newline.
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.trim_end()).unwrap();
        store.learn(&path, "web7", 22, &key(KEY_C)).unwrap();
        let reread = KnownHostsFile::read(&path).unwrap();
        assert_eq!(reread.entries().len(), 2);
        assert_eq!(check([&reread], "web7", 22, &key(KEY_C)), Verdict::Known);
        assert_eq!(
            check([&reread], "127.0.0.5", 2200, &key(KEY_A)),
            Verdict::Known
        );
    }

    #[test]
    fn store_reads_each_file_once_and_consults_the_global_file() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user_known_hosts");
        let global = dir.path().join("global_known_hosts");
        fs::write(&global, format!("web1 {KEY_A}\n")).unwrap();
        let store = KnownHostsStore::load([user.as_path(), user.as_path()], Some(global.as_path()))
            .unwrap();
        // Changes on disk after loading are not seen: the files are parsed once per run.
        fs::write(&global, format!("web1 {KEY_B}\n")).unwrap();
        assert_eq!(store.check(&user, "web1", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(
            store.recorded_algorithms(&user, "web1", 22),
            vec![key(KEY_A).algorithm()]
        );
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where a file is expected cannot be read as one.
        let err = KnownHostsStore::load([dir.path()], None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "cannot read known_hosts file {}: Is a directory (os error 21); fix its permissions or point `known_hosts` in the inventory elsewhere",
                dir.path().display()
            )
        );
    }
}
