//! The audit log: one JSON line per thing fleetauth did to a member's credentials.
//!
//! `$FLEETAUTH_HOME/audit.jsonl` answers "who put which key on which member, and when" after
//! the fact. Each line records time, operator, member, provider, action, where the key came
//! from and the key's fingerprint — never the key: a line is built from an [`AuditEntry`], which
//! has no field that could hold one, and a fingerprint that is not a `sha256:` prefix is
//! refused. JSON Lines because it appends without rewriting, survives a crash mid-run (every
//! complete line stays valid) and is read by `jq` and every log shipper.
//!
//! Appends take an exclusive lock on the file, so concurrent runs never interleave a line; the
//! file is created 0600 in a 0700 directory and refused when looser, like the store.

use std::ffi::CStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::store::{self, AUDIT_FILE, DIR_MODE, FILE_MODE};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339, UTC, millisecond precision.
    pub time: String,
    /// The local user who ran fleetauth.
    pub operator: String,
    /// Member name from the inventory (`-` for local actions such as `auth set`).
    pub member: String,
    pub provider: String,
    /// What happened: a provision action (`pushed`, `unchanged`, `failed`, `restored`, …) or a
    /// store action (`set`, `unset`).
    pub action: String,
    /// Where the key came from (`store`, `env`, `prompt`, `share_oauth`, …).
    pub source: String,
    /// `sha256:` + 12 hex digits of the key ([`crate::mask::fingerprint`]), when a key was involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// `provision --rotate`: the fingerprint of the key this one replaced (computed on the
    /// member), in the same form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_fingerprint: Option<String>,
}

impl AuditEntry {
    /// An entry stamped now, for the current operator.
    pub fn new(
        member: &str,
        provider: &str,
        action: &str,
        source: &str,
        fingerprint: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            operator: operator(),
            member: member.to_string(),
            provider: provider.to_string(),
            action: action.to_string(),
            source: source.to_string(),
            fingerprint,
            previous_fingerprint: None,
        }
    }

    /// The entry, recording the fingerprint of the key it replaced (`--rotate`).
    pub fn replacing(mut self, previous: Option<String>) -> AuditEntry {
        self.previous_fingerprint = previous;
        self
    }
}

/// Append `entry` as one line to `dir/audit.jsonl`, under an exclusive lock, and sync it.
///
/// Creates `dir` (0700) and the file (0600) when absent. Fails with
/// [`io::ErrorKind::PermissionDenied`] when either is looser, not the operator's, or the file is
/// a symlink (the message says which `chmod` fixes it), and with
/// [`io::ErrorKind::InvalidInput`] when `entry.fingerprint` is not a fingerprint.
pub fn append(dir: &Path, entry: &AuditEntry) -> io::Result<()> {
    if entry
        .fingerprint
        .iter()
        .chain(&entry.previous_fingerprint)
        .any(|fp| !is_fingerprint(fp))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "audit entry refused: its fingerprint is not of the form sha256:<12 hex digits>",
        ));
    }
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
    }
    store::check_private_dir(dir).map_err(permission_denied)?;
    let path = dir.join(AUDIT_FILE);
    store::check_private_file(&path).map_err(permission_denied)?;
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    file.lock()?;
    let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
    line.push(b'\n');
    // One write of the whole line: with O_APPEND and the lock, lines never interleave.
    file.write_all(&line)?;
    file.sync_data()
}

/// Every entry of `dir/audit.jsonl`, oldest first; empty when there is none. A line that is not
/// an entry (a torn last line after a crash) is skipped.
pub fn read(dir: &Path) -> io::Result<Vec<AuditEntry>> {
    let path = dir.join(AUDIT_FILE);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.lock_shared()?;
    let mut entries = Vec::new();
    for line in io::BufReader::new(file).lines() {
        if let Ok(entry) = serde_json::from_str(&line?) {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// The local user running fleetauth: the passwd name of the effective uid, else `$USER`,
/// else `uid:N`.
pub fn operator() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    passwd_name(uid)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| format!("uid:{uid}"))
}

fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data; getpwuid_r writes only into `pwd` and `buf` (bounded by
    // its length) and sets `result` to null or to `&mut pwd`.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        CStr::from_ptr(pwd.pw_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn permission_denied(e: store::StoreError) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask;
    use secrecy::SecretString;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn entry(member: &str, fingerprint: Option<String>) -> AuditEntry {
        AuditEntry::new(member, "gemini", "pushed", "store", fingerprint)
    }

    #[test]
    fn entries_append_as_json_lines_in_a_private_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fleetauth");
        let key = SecretString::from("AIzaSyD-the-audited-key-7x2f".to_string());
        let fp = mask::fingerprint(&key);
        append(&dir, &entry("build-01", Some(fp.clone()))).unwrap();
        append(&dir, &entry("build-02", None)).unwrap();
        let path = dir.join(AUDIT_FILE);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["member"], "build-01");
        assert_eq!(first["provider"], "gemini");
        assert_eq!(first["action"], "pushed");
        assert_eq!(first["source"], "store");
        assert_eq!(first["fingerprint"], fp.as_str());
        assert_eq!(first["operator"], operator().as_str());
        assert!(humantime::parse_rfc3339(first["time"].as_str().unwrap()).is_ok());
        assert!(!lines[1].contains("fingerprint"));
        assert!(!text.contains("AIza"));
        let read_back = read(&dir).unwrap();
        assert_eq!(read_back.len(), 2);
        assert_eq!(read_back[0].fingerprint.as_deref(), Some(fp.as_str()));
        assert_eq!(read_back[1].member, "build-02");
    }

    #[test]
    fn a_fingerprint_field_cannot_carry_a_key() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in [
            "AIzaSyD-a-real-key-by-mistake",
            "sha256:AIzaSyD-key",
            "sha256:abc",
        ] {
            let err = append(tmp.path(), &entry("m", Some(bad.to_string()))).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(!err.to_string().contains("AIza"));
        }
        assert!(!tmp.path().join(AUDIT_FILE).exists());
        // The replaced key's fingerprint is held to the same form.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let rotated = entry("m", Some("sha256:0123456789ab".into()));
        let bad = rotated.clone().replacing(Some("AIzaSyD-old-key".into()));
        assert_eq!(
            append(tmp.path(), &bad).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        append(
            tmp.path(),
            &rotated.replacing(Some("sha256:ba9876543210".into())),
        )
        .unwrap();
        let back = read(tmp.path()).unwrap();
        assert_eq!(
            back[0].previous_fingerprint.as_deref(),
            Some("sha256:ba9876543210")
        );
    }

    #[test]
    fn a_loose_log_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        append(tmp.path(), &entry("m", None)).unwrap();
        let path = tmp.path().join(AUDIT_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = append(tmp.path(), &entry("m", None)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert_eq!(read(tmp.path()).unwrap().len(), 1);
    }

    #[test]
    fn concurrent_appends_never_interleave() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fa");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let member = format!("member-{t}-{i}-{}", "x".repeat(300));
                        append(&dir, &entry(&member, None)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = fs::read_to_string(dir.join(AUDIT_FILE)).unwrap();
        assert_eq!(text.lines().count(), 200);
        for line in text.lines() {
            serde_json::from_str::<AuditEntry>(line).unwrap();
        }
    }

    #[test]
    fn operator_is_the_local_user() {
        let name = operator();
        assert!(!name.is_empty());
        let uid = unsafe { libc::geteuid() };
        if uid == 0 {
            assert_eq!(name, "root");
        }
    }
}
