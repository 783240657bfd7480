//! The operator's local credential store: the keys `fleetauth auth set` collected, encrypted at
//! rest, for `provision` to push to members.
//!
//! It lives in fleetauth's home, [`fleetauth_home`] (`$FLEETAUTH_HOME`, default
//! `$XDG_CONFIG_HOME/fleetauth` when that is absolute, else `~/.config/fleetauth`), as two
//! files:
//!
//! - `credentials.age` — every key, encrypted with [age] to a passphrase (scrypt). The
//!   passphrase comes from the caller (a hidden prompt or `FLEETAUTH_PASSPHRASE`) and is never
//!   stored; the first `set` fixes it, every later operation must decrypt with it.
//! - `credentials.toml` — a plain index: provider, kind, fingerprint, time set. It lets
//!   `auth status` say what is stored without asking for the passphrase; only the masked value
//!   needs it. It holds no part of any key (a SHA-256 prefix identifies a key, reveals nothing).
//!   It is always rewritten from the decrypted contents, so it heals itself on the next write.
//!
//! Both are written atomically (temporary file in the same directory, fsync, rename, fsync of
//! the directory) under an advisory lock on `credentials.lock`, so concurrent `auth set`s lose
//! nothing and a crash never leaves half a file. The directory must be 0700 and every file
//! 0600, owned by the operator: anything looser is refused with the `chmod` that fixes it,
//! because a store readable by others is not worth its encryption.
//!
//! [age]: https://age-encryption.org

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::mask;
use crate::shell;

/// The encrypted file holding every key.
pub const CREDENTIALS_FILE: &str = "credentials.age";
/// The plain index: which providers have a key, of what kind, with which fingerprint.
pub const INDEX_FILE: &str = "credentials.toml";
/// The advisory lock file taken around every read-modify-write.
pub const LOCK_FILE: &str = "credentials.lock";
/// The audit log (written by [`crate::audit`]); its permissions are checked here too.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// Mode of the store directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in it.
pub const FILE_MODE: u32 = 0o600;

/// scrypt work factor (log2 N) for new encryptions: 2^18 costs about 0.6 s and 256 MiB here,
/// above current guidance (N ≥ 2^17). Fixed rather than age's per-machine calibration, which
/// picked 2^20 (1 GiB, several seconds per `auth set` on a busy machine) and varies with load.
pub const DEFAULT_WORK_FACTOR: u8 = 18;

const PAYLOAD_VERSION: u32 = 1;

/// The local credential store. Cheap to open; every operation takes the lock and re-checks
/// permissions itself, so a `Store` may be kept for a whole run.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// scrypt work factor (log2 N) for new encryptions.
    work_factor: u8,
}

/// What [`Store::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The provider had no key before.
    Added,
    /// The provider's key (or its kind) changed.
    Replaced,
    /// The identical key of the same kind was already stored; nothing was written.
    Unchanged,
}

/// One line of the plain index: everything `auth status` shows without the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub provider: String,
    /// The push kind (`api_key`, `oauth_token`, … — a provider's `[[keys]]`).
    pub kind: String,
    /// `sha256:` + 12 hex digits, see [`crate::mask::fingerprint`].
    pub fingerprint: String,
    /// When the key was stored, RFC 3339 UTC.
    pub set_at: String,
}

/// One decrypted credential. `Debug` shows the value redacted.
#[derive(Debug, Clone)]
pub struct StoredCredential {
    /// The push kind (`api_key`, `oauth_token`, … — a provider's `[[keys]]`).
    pub kind: String,
    pub value: SecretString,
    /// When the key was stored, RFC 3339 UTC.
    pub set_at: String,
}

impl StoredCredential {
    pub fn fingerprint(&self) -> String {
        mask::fingerprint(&self.value)
    }
    pub fn masked(&self) -> String {
        mask::mask(&self.value)
    }
}

/// Everything that can go wrong with the store. No variant ever carries a key or passphrase.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "refusing to use {}: its mode is {mode:04o}, which lets other users {access} it; run `chmod {want:o} {}` and try again",
        path.display(), shell::quote(&path.to_string_lossy())
    )]
    Permissions {
        path: PathBuf,
        mode: u32,
        want: u32,
        access: &'static str,
    },
    #[error(
        "refusing to use {}: it is owned by uid {owner}, not by you (uid {me}); run fleetauth as its owner or set FLEETAUTH_HOME to a directory of your own",
        path.display()
    )]
    NotOwned { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "refusing to use {}: it is not a regular file (a symbolic link or a directory?); move it aside and try again",
        path.display()
    )]
    NotRegular { path: PathBuf },
    #[error(
        "{} is not a directory; set FLEETAUTH_HOME to a directory for fleetauth's state",
        path.display()
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "wrong passphrase for {}: give the passphrase used for the first `fleetauth auth set` (prompt or FLEETAUTH_PASSPHRASE); if it is lost, delete {} and {} and set every key again",
        path.display(), path.display(), index.display()
    )]
    WrongPassphrase { path: PathBuf, index: PathBuf },
    #[error(
        "{} cannot be read as a fleetauth credential store ({reason}); restore it from a backup, or delete it and set every key again",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "`{0}` is not a valid provider name (letters, digits, `_`, `-` and `.`, starting with a letter or digit)"
    )]
    InvalidProvider(String),
    #[error("the key for {0} is empty; nothing to store")]
    EmptyValue(String),
    #[error("invalid key kind `{0}`: a kind is lowercase letters, digits and `_`")]
    InvalidKind(String),
    #[error(
        "the key for {0} contains a line break, carriage return or NUL; a key is one line — enter it again without them"
    )]
    ControlCharacter(String),
    #[error(
        "the passphrase is empty; choose one (it encrypts every stored key and is never stored itself)"
    )]
    EmptyPassphrase,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

impl Store {
    /// Open the store in `dir`, creating it (mode 0700, parents too) when absent. Fails when the
    /// directory or any of the store's files is looser than 0700/0600, not owned by the current
    /// user, or (for files) not a regular file.
    pub fn open(dir: PathBuf) -> Result<Store, StoreError> {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&dir)
                .map_err(io_error("create the directory", &dir))?;
        }
        let store = Store {
            dir,
            work_factor: DEFAULT_WORK_FACTOR,
        };
        store.check_permissions()?;
        Ok(store)
    }

    /// Use scrypt work factor `N = 2^log_n` for new encryptions instead of
    /// [`DEFAULT_WORK_FACTOR`]. For tests; production keeps the default. Reading accepts any
    /// factor up to age's limit for this machine, whatever wrote the file.
    ///
    /// # Panics
    /// When `log_n` is 0 or ≥ 64.
    pub fn with_work_factor(mut self, log_n: u8) -> Store {
        assert!(0 < log_n && log_n < 64, "scrypt work factor out of range");
        self.work_factor = log_n;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a passphrase has been fixed (some `set` has written the encrypted file). The CLI
    /// asks for a new passphrase twice when it has not.
    pub fn has_passphrase(&self) -> bool {
        self.path(CREDENTIALS_FILE).exists()
    }

    /// Store `value` as `provider`'s credential. The first `set` fixes the passphrase; later ones
    /// must decrypt with it ([`StoreError::WrongPassphrase`] otherwise). An identical key of the
    /// same kind writes nothing and returns [`SetOutcome::Unchanged`].
    pub fn set(
        &self,
        provider: &str,
        kind: &str,
        value: SecretString,
        pass: &SecretString,
    ) -> Result<SetOutcome, StoreError> {
        validate_provider(provider)?;
        validate_kind(kind)?;
        validate_value(provider, &value)?;
        validate_passphrase(pass)?;
        let _lock = self.lock(LockKind::Exclusive)?;
        let mut creds = self.read_credentials(pass)?;
        let outcome = match creds.get(provider) {
            None => SetOutcome::Added,
            Some(old) if old.kind == kind && old.value.expose_secret() == value.expose_secret() => {
                SetOutcome::Unchanged
            }
            Some(_) => SetOutcome::Replaced,
        };
        if outcome != SetOutcome::Unchanged {
            creds.insert(
                provider.to_string(),
                StoredCredential {
                    kind: kind.to_string(),
                    value,
                    set_at: now(),
                },
            );
            self.write_credentials(&creds, pass)?;
        }
        self.write_index(&creds)?;
        Ok(outcome)
    }

    /// Remove `provider`'s credential. Ok(false) when it had none. Needs the passphrase because
    /// the encrypted file is rewritten.
    pub fn unset(&self, provider: &str, pass: &SecretString) -> Result<bool, StoreError> {
        validate_provider(provider)?;
        validate_passphrase(pass)?;
        let _lock = self.lock(LockKind::Exclusive)?;
        if !self.has_passphrase() {
            self.write_index(&BTreeMap::new())?;
            return Ok(false);
        }
        let mut creds = self.read_credentials(pass)?;
        let removed = creds.remove(provider).is_some();
        if removed {
            self.write_credentials(&creds, pass)?;
        }
        self.write_index(&creds)?;
        Ok(removed)
    }

    /// The plain index, sorted by provider. Needs no passphrase. Empty when nothing is stored.
    pub fn index(&self) -> Result<Vec<IndexEntry>, StoreError> {
        let _lock = self.lock(LockKind::Shared)?;
        let path = self.path(INDEX_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        let records: BTreeMap<String, IndexRecord> =
            toml::from_str(&text).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                reason: format!(
                    "{} (the next `fleetauth auth set` rewrites it)",
                    e.message()
                ),
            })?;
        Ok(records
            .into_iter()
            .map(|(provider, r)| IndexEntry {
                provider,
                kind: r.kind,
                fingerprint: r.fingerprint,
                set_at: r.set_at,
            })
            .collect())
    }

    /// `provider`'s key, or None. Decrypts the store (about half a second of scrypt work by default):
    /// to read several, use [`Store::load`] once.
    pub fn get(
        &self,
        provider: &str,
        pass: &SecretString,
    ) -> Result<Option<SecretString>, StoreError> {
        Ok(self.load(pass)?.remove(provider).map(|c| c.value))
    }

    /// Every stored credential, decrypted, by provider.
    pub fn load(
        &self,
        pass: &SecretString,
    ) -> Result<BTreeMap<String, StoredCredential>, StoreError> {
        let _lock = self.lock(LockKind::Shared)?;
        self.read_credentials(pass)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn check_permissions(&self) -> Result<(), StoreError> {
        check_private_dir(&self.dir)?;
        for name in [CREDENTIALS_FILE, INDEX_FILE, LOCK_FILE, AUDIT_FILE] {
            check_private_file(&self.path(name))?;
        }
        Ok(())
    }

    fn lock(&self, kind: LockKind) -> Result<File, StoreError> {
        self.check_permissions()?;
        let path = self.path(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_error("open the lock file", &path))?;
        match kind {
            LockKind::Shared => file.lock_shared(),
            LockKind::Exclusive => file.lock(),
        }
        .map_err(io_error("lock", &path))?;
        Ok(file)
    }

    /// The decrypted contents; empty when the encrypted file does not exist yet.
    fn read_credentials(
        &self,
        pass: &SecretString,
    ) -> Result<BTreeMap<String, StoredCredential>, StoreError> {
        let path = self.path(CREDENTIALS_FILE);
        let ciphertext = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        let plaintext = self.decrypt(&path, &ciphertext, pass)?;
        let payload: Payload =
            serde_json::from_slice(&plaintext).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                // serde_json's message names a position, never the data.
                reason: format!("decrypted contents are not valid: {e}"),
            })?;
        if payload.version != PAYLOAD_VERSION {
            return Err(StoreError::Corrupt {
                path,
                reason: format!(
                    "format version {} (this fleetauth reads {PAYLOAD_VERSION}; is it newer?)",
                    payload.version
                ),
            });
        }
        Ok(payload
            .credentials
            .into_iter()
            .map(|(provider, e)| {
                (
                    provider,
                    StoredCredential {
                        kind: e.kind,
                        value: e.value,
                        set_at: e.set_at,
                    },
                )
            })
            .collect())
    }

    fn decrypt(
        &self,
        path: &Path,
        ciphertext: &[u8],
        pass: &SecretString,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let decryptor =
            age::Decryptor::new_buffered(ciphertext).map_err(|e| corrupt(e.to_string()))?;
        if !decryptor.is_scrypt() {
            return Err(corrupt("it is not encrypted to a passphrase".to_string()));
        }
        let mut identity = age::scrypt::Identity::new(pass.clone());
        // age's own cap follows this machine's speed; never refuse what fleetauth writes.
        identity.set_max_work_factor(self.work_factor.max(DEFAULT_WORK_FACTOR + 2));
        let mut reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::DecryptionFailed
                | age::DecryptError::KeyDecryptionFailed
                | age::DecryptError::NoMatchingKeys => StoreError::WrongPassphrase {
                    path: path.to_path_buf(),
                    index: self.path(INDEX_FILE),
                },
                other => corrupt(other.to_string()),
            })?;
        // Pre-sized so the plaintext is never reallocated (and copied) while it is read.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
        reader
            .read_to_end(&mut plaintext)
            .map_err(|e| corrupt(format!("truncated or altered: {e}")))?;
        Ok(plaintext)
    }

    fn write_credentials(
        &self,
        creds: &BTreeMap<String, StoredCredential>,
        pass: &SecretString,
    ) -> Result<(), StoreError> {
        let path = self.path(CREDENTIALS_FILE);
        let payload = PayloadOut {
            version: PAYLOAD_VERSION,
            credentials: creds
                .iter()
                .map(|(provider, c)| {
                    let entry = EntryOut {
                        kind: &c.kind,
                        value: c.value.expose_secret(),
                        set_at: &c.set_at,
                    };
                    (provider.as_str(), entry)
                })
                .collect(),
        };
        let capacity = 256
            + creds
                .values()
                .map(|c| c.value.expose_secret().len() * 2 + 128)
                .sum::<usize>();
        let mut plaintext = Zeroizing::new(Vec::with_capacity(capacity));
        serde_json::to_writer(&mut *plaintext, &payload).map_err(|e| StoreError::Io {
            action: "serialise",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        let mut recipient = age::scrypt::Recipient::new(pass.clone());
        recipient.set_work_factor(self.work_factor);
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .map_err(|e| StoreError::Io {
                    action: "encrypt",
                    path: path.clone(),
                    source: io::Error::other(e.to_string()),
                })?;
        let mut ciphertext = Vec::with_capacity(plaintext.len() + 512);
        let mut writer = encryptor
            .wrap_output(&mut ciphertext)
            .map_err(io_error("encrypt", &path))?;
        writer
            .write_all(&plaintext)
            .map_err(io_error("encrypt", &path))?;
        writer.finish().map_err(io_error("encrypt", &path))?;
        self.replace(CREDENTIALS_FILE, &ciphertext)
    }

    /// Rewrite the index from `creds` when its bytes differ.
    fn write_index(&self, creds: &BTreeMap<String, StoredCredential>) -> Result<(), StoreError> {
        let records: BTreeMap<&str, IndexRecord> = creds
            .iter()
            .map(|(provider, c)| {
                let record = IndexRecord {
                    kind: c.kind.clone(),
                    fingerprint: c.fingerprint(),
                    set_at: c.set_at.clone(),
                };
                (provider.as_str(), record)
            })
            .collect();
        let body = toml::to_string(&records).map_err(|e| StoreError::Io {
            action: "serialise",
            path: self.path(INDEX_FILE),
            source: io::Error::other(e),
        })?;
        let text = format!(
            "# fleetauth credential index: which providers have a key in {CREDENTIALS_FILE}.\n\
             # Written by `fleetauth auth set/unset`; holds no secret. Do not edit.\n{body}"
        );
        match fs::read(self.path(INDEX_FILE)) {
            Ok(old) if old == text.as_bytes() => Ok(()),
            _ => self.replace(INDEX_FILE, text.as_bytes()),
        }
    }

    /// Atomically replace `name` with `bytes`: temporary file (0600) in the store directory,
    /// fsync, rename over the target, fsync the directory.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(name);
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .permissions(fs::Permissions::from_mode(FILE_MODE))
            .tempfile_in(&self.dir)
            .map_err(io_error("create a temporary file in", &self.dir))?;
        tmp.write_all(bytes)
            .map_err(io_error("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_error("sync", &path))?;
        tmp.persist(&path)
            .map_err(|e| io_error("replace", &path)(e.error))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("sync the directory", &self.dir))
    }
}

#[derive(Clone, Copy)]
enum LockKind {
    Shared,
    Exclusive,
}

/// Refuse `dir` unless it is a directory owned by the current user with no group/other access.
pub fn check_private_dir(dir: &Path) -> Result<(), StoreError> {
    let meta = fs::metadata(dir).map_err(io_error("inspect", dir))?;
    if !meta.is_dir() {
        return Err(StoreError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    check_owner_and_mode(dir, &meta, DIR_MODE)
}

/// Refuse `path` unless it is absent, or a regular file (not a symlink) owned by the current
/// user with no group/other access.
pub fn check_private_file(path: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("inspect", path)(e)),
    };
    if !meta.file_type().is_file() {
        return Err(StoreError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    check_owner_and_mode(path, &meta, FILE_MODE)
}

fn check_owner_and_mode(path: &Path, meta: &fs::Metadata, want: u32) -> Result<(), StoreError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(StoreError::NotOwned {
            path: path.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        let access = if mode & 0o044 != 0 {
            "read"
        } else {
            "write or enter"
        };
        return Err(StoreError::Permissions {
            path: path.to_path_buf(),
            mode,
            want,
            access,
        });
    }
    Ok(())
}

/// fleetauth's own directory on the operator's machine — the store, `providers/`, the audit log:
/// `$FLEETAUTH_HOME`, else `$XDG_CONFIG_HOME/fleetauth`, else `~/.config/fleetauth`. Empty
/// variables count as unset; a relative `XDG_CONFIG_HOME` is ignored, as the XDG Base Directory
/// specification requires. The one place this is decided; every command asks here.
pub fn fleetauth_home() -> PathBuf {
    fleetauth_home_from(
        std::env::var_os("FLEETAUTH_HOME"),
        std::env::var_os("XDG_CONFIG_HOME"),
        dirs::home_dir(),
    )
}

fn fleetauth_home_from(
    fleetauth_home: Option<OsString>,
    xdg_config_home: Option<OsString>,
    home: Option<PathBuf>,
) -> PathBuf {
    if let Some(dir) = fleetauth_home.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = xdg_config_home
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return xdg.join("fleetauth");
    }
    home.unwrap_or_else(|| PathBuf::from("."))
        .join(".config")
        .join("fleetauth")
}

fn validate_provider(provider: &str) -> Result<(), StoreError> {
    let mut bytes = provider.bytes();
    let ok = provider.len() <= 64
        && matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidProvider(provider.to_string()))
    }
}

fn validate_value(provider: &str, value: &SecretString) -> Result<(), StoreError> {
    let v = value.expose_secret();
    if v.is_empty() {
        return Err(StoreError::EmptyValue(provider.to_string()));
    }
    if v.contains(['\n', '\r', '\0']) {
        return Err(StoreError::ControlCharacter(provider.to_string()));
    }
    Ok(())
}

/// A push kind: lowercase letters, digits and `_` (what `[[keys]]` accepts).
fn validate_kind(kind: &str) -> Result<(), StoreError> {
    let ok = kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidKind(kind.to_string()))
    }
}

fn validate_passphrase(pass: &SecretString) -> Result<(), StoreError> {
    if pass.expose_secret().is_empty() {
        return Err(StoreError::EmptyPassphrase);
    }
    Ok(())
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexRecord {
    kind: String,
    fingerprint: String,
    set_at: String,
}

/// The decrypted file, as read.
#[derive(Deserialize)]
struct Payload {
    version: u32,
    credentials: BTreeMap<String, PayloadEntry>,
}

#[derive(Deserialize)]
struct PayloadEntry {
    kind: String,
    value: SecretString,
    set_at: String,
}

/// The decrypted file, as written: borrows the secrets instead of copying them.
#[derive(Serialize)]
struct PayloadOut<'a> {
    version: u32,
    credentials: BTreeMap<&'a str, EntryOut<'a>>,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    kind: &'a str,
    value: &'a str,
    set_at: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Fast scrypt for tests; production uses DEFAULT_WORK_FACTOR.
    const TEST_LOG_N: u8 = 10;
    const KEY: &str = "AIzaSyD-0123456789-abcdefghijklmnop7x2f";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn pass() -> SecretString {
        secret("correct horse battery staple")
    }

    fn new_store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("fleetauth"))
            .unwrap()
            .with_work_factor(TEST_LOG_N);
        (tmp, store)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Every file under `dir`, read as bytes.
    fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(all_bytes(&path));
            } else {
                out.push((path.clone(), fs::read(&path).unwrap()));
            }
        }
        out
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn open_creates_a_private_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/fleetauth");
        let store = Store::open(dir.clone()).unwrap();
        assert_eq!(store.dir(), dir);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert!(!store.has_passphrase());
        assert!(store.index().unwrap().is_empty());
    }

    #[test]
    fn round_trip_with_private_files() {
        let (_tmp, store) = new_store();
        assert_eq!(
            store
                .set("gemini", "api_key", secret(KEY), &pass())
                .unwrap(),
            SetOutcome::Added
        );
        assert!(store.has_passphrase());
        assert_eq!(
            store
                .get("gemini", &pass())
                .unwrap()
                .unwrap()
                .expose_secret(),
            KEY
        );
        assert!(store.get("claude", &pass()).unwrap().is_none());
        for name in [CREDENTIALS_FILE, INDEX_FILE, LOCK_FILE] {
            assert_eq!(mode(&store.path(name)), 0o600, "{name}");
        }
        let loaded = store.load(&pass()).unwrap();
        assert_eq!(loaded["gemini"].kind, "api_key");
        assert_eq!(loaded["gemini"].masked(), "AIz…7x2f");
        // Nothing but the three files is left behind (no temporary files).
        let mut names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [CREDENTIALS_FILE, LOCK_FILE, INDEX_FILE]);
    }

    #[test]
    fn the_production_work_factor_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("s")).unwrap();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        let header = fs::read(store.path(CREDENTIALS_FILE)).unwrap();
        let stanza = format!(" {DEFAULT_WORK_FACTOR}\n");
        assert!(
            contains(&header[..80], stanza.as_bytes()),
            "scrypt stanza uses the default"
        );
        assert_eq!(
            store
                .get("gemini", &pass())
                .unwrap()
                .unwrap()
                .expose_secret(),
            KEY
        );
    }

    #[test]
    fn index_needs_no_passphrase_and_shows_no_key() {
        let (_tmp, store) = new_store();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        store
            .set(
                "claude",
                "oauth_token",
                secret("sk-ant-oat01-zzzzzzzzzz"),
                &pass(),
            )
            .unwrap();
        let index = store.index().unwrap();
        let providers: Vec<_> = index.iter().map(|e| e.provider.as_str()).collect();
        assert_eq!(providers, ["claude", "gemini"]);
        assert_eq!(index[0].kind, "oauth_token");
        assert_eq!(index[1].kind, "api_key");
        assert_eq!(index[1].fingerprint, mask::fingerprint(&secret(KEY)));
        assert!(
            humantime::parse_rfc3339(&index[1].set_at).is_ok(),
            "{}",
            index[1].set_at
        );
    }

    #[test]
    fn the_key_is_in_no_file_in_plain_text() {
        let (_tmp, store) = new_store();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        store
            .set(
                "codex",
                "api_key",
                secret("sk-proj-ABCDEFGHIJKLMNOP"),
                &pass(),
            )
            .unwrap();
        store.unset("codex", &pass()).unwrap();
        let files = all_bytes(store.dir());
        assert!(files.len() >= 3);
        for (path, bytes) in files {
            for needle in [KEY, &KEY[10..22], "sk-proj-ABCDEFGHIJKLMNOP", "ABCDEFGHIJ"] {
                assert!(
                    !contains(&bytes, needle.as_bytes()),
                    "{} holds key bytes",
                    path.display()
                );
            }
            assert!(
                !contains(&bytes, b"correct horse"),
                "{} holds the passphrase",
                path.display()
            );
        }
    }

    #[test]
    fn identical_set_is_unchanged_and_writes_nothing() {
        let (_tmp, store) = new_store();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        let before = fs::read(store.path(CREDENTIALS_FILE)).unwrap();
        let meta = fs::metadata(store.path(CREDENTIALS_FILE)).unwrap();
        assert_eq!(
            store
                .set("gemini", "api_key", secret(KEY), &pass())
                .unwrap(),
            SetOutcome::Unchanged
        );
        // age output is randomised: equal bytes prove the file was not rewritten.
        assert_eq!(fs::read(store.path(CREDENTIALS_FILE)).unwrap(), before);
        assert_eq!(
            fs::metadata(store.path(CREDENTIALS_FILE)).unwrap().ino(),
            meta.ino()
        );
        assert_eq!(
            store
                .set(
                    "gemini",
                    "api_key",
                    secret("AIza-another-key-0000"),
                    &pass()
                )
                .unwrap(),
            SetOutcome::Replaced
        );
        assert_eq!(
            store
                .set(
                    "gemini",
                    "oauth_token",
                    secret("AIza-another-key-0000"),
                    &pass()
                )
                .unwrap(),
            SetOutcome::Replaced
        );
        assert_eq!(store.index().unwrap()[0].kind, "oauth_token");
    }

    #[test]
    fn wrong_passphrase_is_refused_clearly() {
        let (_tmp, store) = new_store();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        let wrong = secret("not the passphrase");
        let before = fs::read(store.path(CREDENTIALS_FILE)).unwrap();
        for err in [
            store.get("gemini", &wrong).unwrap_err(),
            store
                .set("claude", "api_key", secret("sk-ant-api03-xxxxxxxx"), &wrong)
                .unwrap_err(),
            store.unset("gemini", &wrong).unwrap_err(),
        ] {
            assert!(matches!(err, StoreError::WrongPassphrase { .. }), "{err:?}");
            let msg = err.to_string();
            let path = store.path(CREDENTIALS_FILE);
            assert!(
                msg.starts_with(&format!("wrong passphrase for {}", path.display())),
                "{msg}"
            );
            assert!(!msg.contains("not the passphrase"));
        }
        assert_eq!(fs::read(store.path(CREDENTIALS_FILE)).unwrap(), before);
        assert_eq!(
            store
                .get("gemini", &pass())
                .unwrap()
                .unwrap()
                .expose_secret(),
            KEY
        );
    }

    #[test]
    fn unset_removes_and_reports_absence() {
        let (_tmp, store) = new_store();
        assert!(!store.unset("gemini", &pass()).unwrap());
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        store
            .set(
                "claude",
                "api_key",
                secret("sk-ant-api03-xxxxxxxx"),
                &pass(),
            )
            .unwrap();
        assert!(store.unset("gemini", &pass()).unwrap());
        assert!(!store.unset("gemini", &pass()).unwrap());
        assert!(store.get("gemini", &pass()).unwrap().is_none());
        let index: Vec<_> = store
            .index()
            .unwrap()
            .into_iter()
            .map(|e| e.provider)
            .collect();
        assert_eq!(index, ["claude"]);
    }

    #[test]
    fn a_loose_directory_is_refused_with_the_fix() {
        let (_tmp, store) = new_store();
        for loose in [0o755, 0o750, 0o701] {
            chmod(store.dir(), loose);
            let err = Store::open(store.dir().to_path_buf()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Permissions { .. }), "{msg}");
            assert!(msg.contains(&store.dir().display().to_string()), "{msg}");
            assert!(msg.contains(&format!("{loose:04o}")), "{msg}");
            assert!(msg.contains("chmod 700"), "{msg}");
            // An open store re-checks before every operation.
            assert!(store.index().is_err());
        }
        chmod(store.dir(), 0o700);
        assert!(store.index().is_ok());
    }

    #[test]
    fn a_loose_file_is_refused_with_the_fix() {
        let (_tmp, store) = new_store();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        for name in [CREDENTIALS_FILE, INDEX_FILE] {
            let path = store.path(name);
            chmod(&path, 0o644);
            let err = store.get("gemini", &pass()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(
                msg.contains("0644") && msg.contains("chmod 600") && msg.contains("read"),
                "{msg}"
            );
            assert!(Store::open(store.dir().to_path_buf()).is_err());
            chmod(&path, 0o600);
        }
        assert!(store.get("gemini", &pass()).is_ok());
    }

    #[test]
    fn a_symlinked_file_is_refused() {
        let (tmp, store) = new_store();
        let elsewhere = tmp.path().join("elsewhere.toml");
        fs::write(&elsewhere, "").unwrap();
        chmod(&elsewhere, 0o600);
        std::os::unix::fs::symlink(&elsewhere, store.path(INDEX_FILE)).unwrap();
        assert!(matches!(
            store.index().unwrap_err(),
            StoreError::NotRegular { .. }
        ));
    }

    #[test]
    fn a_foreign_directory_is_refused() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to give a directory to another user");
            return;
        }
        let (_tmp, store) = new_store();
        std::os::unix::fs::chown(store.dir(), Some(54321), None).unwrap();
        let err = Store::open(store.dir().to_path_buf()).unwrap_err();
        assert!(err.to_string().contains("owned by uid 54321"), "{err}");
    }

    #[test]
    fn concurrent_sets_lose_nothing() {
        let (_tmp, store) = new_store();
        let store = Arc::new(store);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let value = secret(&format!("key-number-{i}-abcdefgh"));
                    store
                        .set(&format!("p{i}"), "api_key", value, &pass())
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), SetOutcome::Added);
        }
        let loaded = store.load(&pass()).unwrap();
        assert_eq!(loaded.len(), 8);
        for i in 0..8 {
            assert_eq!(
                loaded[&format!("p{i}")].value.expose_secret(),
                format!("key-number-{i}-abcdefgh")
            );
        }
        assert_eq!(store.index().unwrap().len(), 8);
    }

    #[test]
    fn the_index_heals_from_the_encrypted_file() {
        let (_tmp, store) = new_store();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        fs::remove_file(store.path(INDEX_FILE)).unwrap();
        assert!(store.index().unwrap().is_empty());
        assert_eq!(
            store
                .set("gemini", "api_key", secret(KEY), &pass())
                .unwrap(),
            SetOutcome::Unchanged
        );
        assert_eq!(store.index().unwrap()[0].provider, "gemini");
        fs::write(store.path(INDEX_FILE), "not [ toml").unwrap();
        assert!(matches!(
            store.index().unwrap_err(),
            StoreError::Corrupt { .. }
        ));
    }

    #[test]
    fn a_damaged_encrypted_file_is_reported_as_such() {
        let (_tmp, store) = new_store();
        store
            .set("gemini", "api_key", secret(KEY), &pass())
            .unwrap();
        let path = store.path(CREDENTIALS_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            store.get("gemini", &pass()).unwrap_err(),
            StoreError::Corrupt { .. }
        ));
        fs::write(&path, b"plain garbage").unwrap();
        assert!(matches!(
            store.get("gemini", &pass()).unwrap_err(),
            StoreError::Corrupt { .. }
        ));
    }

    #[test]
    fn bad_input_is_refused_before_anything_is_written() {
        let (_tmp, store) = new_store();
        let err = |r: Result<SetOutcome, StoreError>| r.unwrap_err().to_string();
        assert!(err(store.set("../x", "api_key", secret(KEY), &pass())).contains("provider name"));
        assert!(err(store.set("gemini", "api_key", secret(""), &pass())).contains("empty"));
        let msg = err(store.set("gemini", "api_key", secret("AIza-line\nbreak"), &pass()));
        assert!(msg.contains("line break") && !msg.contains("AIza"), "{msg}");
        assert!(
            err(store.set("gemini", "api_key", secret(KEY), &secret("")))
                .contains("passphrase is empty")
        );
        assert!(!store.has_passphrase());
    }

    #[test]
    fn fleetauth_home_prefers_fleetauth_home_then_absolute_xdg_then_home() {
        let home = Some(PathBuf::from("/home/op"));
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            fleetauth_home_from(os("/srv/fa"), os("/x"), home.clone()),
            PathBuf::from("/srv/fa")
        );
        assert_eq!(
            fleetauth_home_from(os(""), os("/x"), home.clone()),
            PathBuf::from("/x/fleetauth")
        );
        assert_eq!(
            fleetauth_home_from(None, None, home.clone()),
            PathBuf::from("/home/op/.config/fleetauth")
        );
        assert_eq!(
            fleetauth_home_from(None, os(""), home),
            PathBuf::from("/home/op/.config/fleetauth")
        );
    }

    #[test]
    fn a_relative_xdg_config_home_is_ignored() {
        let home = Some(PathBuf::from("/home/op"));
        let os = |s: &str| Some(OsString::from(s));
        for relative in ["relative", "./cfg", "../cfg", "cfg/"] {
            assert_eq!(
                fleetauth_home_from(None, os(relative), home.clone()),
                PathBuf::from("/home/op/.config/fleetauth"),
                "XDG_CONFIG_HOME={relative}"
            );
        }
    }

    #[test]
    fn debug_output_redacts_values() {
        let c = StoredCredential {
            kind: "api_key".to_string(),
            value: secret(KEY),
            set_at: now(),
        };
        assert!(!format!("{c:?}").contains("AIza"));
    }
}
