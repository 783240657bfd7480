//! Dedicated local users for members with their own login shell ([`MemberBuilder::login_shell`]).
//!
//! sshd runs every command as `$SHELL -c "$SSH_ORIGINAL_COMMAND"` with the login shell from the
//! password database, so the only faithful way to give a member fish, zsh, tcsh or busybox as its
//! login shell is a real account: `fa-sh-<pid>-<n>`, created with `useradd` (home = the member's
//! HOME, shell = the chosen shell, password `*`: not locked, since sshd without PAM refuses
//! locked accounts even for public keys) and removed with `userdel` when the member is dropped,
//! after every process it still runs has been killed.
//!
//! A test process killed outright (SIGKILL, a timeout in CI) never runs its destructors, so the
//! name carries the creating process's pid: the first creation in a process removes every
//! `fa-sh-<pid>-…` account whose process is gone.
//!
//! [`MemberBuilder::login_shell`]: super::MemberBuilder::login_shell

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Name prefix of every account the harness creates.
pub const PREFIX: &str = "fa-sh-";

/// useradd/userdel lock /etc/passwd: one at a time in this process (other processes are
/// handled by the tools' own lock and the retries below).
static ACCOUNTS: Mutex<bool> = Mutex::new(false);
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A local account that exists until this is dropped.
#[derive(Debug)]
pub(crate) struct LocalUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub shell: PathBuf,
}

impl LocalUser {
    /// `useradd` a fresh `fa-sh-<pid>-<n>` whose home is `home` (not created, not touched) and
    /// whose login shell is `shell`.
    pub fn create(home: &Path, shell: &Path) -> LocalUser {
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut reaped = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            reap_stale();
            *reaped = true;
        }
        // Our pid and a counter of our own: an account already named so was left by a dead
        // process that had our pid.
        if passwd_entry(&name).is_some() {
            remove(&name);
        }
        let mut cmd = Command::new(tool("useradd"));
        cmd.args(["-M", "-N", "-p", "*", "-c", "fleetauth test member", "-d"])
            .arg(home)
            .arg("-s")
            .arg(shell)
            .arg(&name);
        retry(&mut cmd, &format!("useradd {name}"));
        let (uid, gid) = passwd_entry(&name)
            .unwrap_or_else(|| panic!("useradd {name} succeeded but /etc/passwd lacks it"));
        LocalUser {
            name,
            uid,
            gid,
            shell: shell.to_path_buf(),
        }
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _guard = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        kill_processes_of(self.uid);
        remove(&self.name);
    }
}

/// The absolute path of the login shell `spec` names: an absolute path as is; `busybox` (or
/// `busybox sh`, `ash`): a symlink `DIR/busybox-sh/sh` to busybox, which busybox runs as its
/// `sh` (ash) applet, since sshd runs a login shell by path, without arguments; any other name:
/// found in /usr/bin or /bin.
pub(crate) fn resolve_shell(spec: &str, dir: &Path) -> PathBuf {
    let installed = |name: &str| {
        ["/usr/bin", "/bin", "/usr/local/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("{name} is not installed: run scripts/install-test-deps (as root)")
            })
    };
    match spec {
        "busybox" | "busybox sh" | "ash" => {
            let busybox = installed("busybox");
            let link_dir = dir.join("busybox-sh");
            fs::create_dir_all(&link_dir).expect("create the busybox shell dir");
            fs::set_permissions(&link_dir, fs::Permissions::from_mode(0o755)).unwrap();
            let link = link_dir.join("sh");
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(&busybox, &link).expect("link busybox as sh");
            link
        }
        path if path.starts_with('/') => {
            assert!(
                Path::new(path).exists(),
                "login shell {path} does not exist"
            );
            PathBuf::from(path)
        }
        name => installed(name),
    }
}

/// `lchown -R`: `path` and everything under it, never following a symlink (a member's bin dir
/// links to the repository's stubs, which must stay as they are).
pub(crate) fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("stat {}: {e}", path.display()),
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap_or_else(|e| panic!("list {}: {e}", path.display())) {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// uid and gid of `name` in /etc/passwd.
pub(crate) fn passwd_entry(name: &str) -> Option<(u32, u32)> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == name {
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// Remove every `fa-sh-<pid>-<n>` whose process is gone. Caller holds `ACCOUNTS`.
fn reap_stale() {
    let Ok(text) = fs::read_to_string("/etc/passwd") else {
        return;
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let Some(rest) = fields[0].strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Some(uid) = fields.get(2).and_then(|u| u.parse().ok()) {
            kill_processes_of(uid);
        }
        remove(fields[0]);
    }
}

/// Kill every process running as `uid`, and wait (briefly) until none is left: userdel refuses
/// to remove a user that still runs something.
fn kill_processes_of(uid: u32) {
    if uid == 0 {
        return;
    }
    for _ in 0..50 {
        let pids = super::procs::owned_by(uid);
        if pids.is_empty() {
            return;
        }
        super::procs::kill(&pids);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `userdel NAME` (retried while /etc/passwd is locked or the user is still busy); failures
/// other than "no such user" are reported but never panic (this runs in destructors).
fn remove(name: &str) {
    for attempt in 0..50 {
        let out = Command::new(tool("userdel"))
            .arg(name)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => return,
            // 6: the user does not exist.
            Ok(o) if o.status.code() == Some(6) => return,
            Ok(o) if attempt == 49 => {
                eprintln!(
                    "warning: userdel {name} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            Ok(_) => {
                if let Some((uid, _)) = passwd_entry(name) {
                    kill_processes_of(uid);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                eprintln!("warning: cannot run userdel: {e}");
                return;
            }
        }
    }
}

/// Run `cmd` until it succeeds, retrying while the account files are locked by another
/// process; panics with its stderr after ~10 s.
fn retry(cmd: &mut Command, what: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e} (run scripts/install-test-deps as root)"));
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // 9: the name is taken: retrying cannot help.
        if out.status.code() == Some(9) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} failed: {last} (the tests run as root to create login-shell users)");
}

/// An account tool by absolute path: the sbin dirs may be missing from the test's PATH.
fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}
