//! Finding and killing what a member started, through /proc.
//!
//! Killing an `sshd -D` does not end its connections, and no sshd signals a command when its
//! client goes away (no pty, no SIGHUP): a stub hanging on an unreachable vendor outlives the
//! test that started it. So a member is torn down in two sweeps: the sshd's whole process tree
//! (found while it is still a tree), then every process whose environment carries the member's
//! own `FLEETAUTH_STUB_VENDOR` (set by the sshd's `SetEnv`, so it marks every command a member
//! ran, even one reparented to init). Both sweeps only ever touch processes of this lab.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// Every live pid with its parent pid.
fn parents() -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            map.insert(pid, ppid);
        }
    }
    map
}

/// `root` and all its descendants, parents first.
pub(crate) fn tree(root: i32) -> Vec<i32> {
    let parents = parents();
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// Pids whose environment contains exactly `NAME=value`.
pub(crate) fn with_env(name: &str, value: &Path) -> Vec<i32> {
    let mut needle = format!("{name}=").into_bytes();
    needle.extend_from_slice(value.as_os_str().as_encoded_bytes());
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_slice()))
                .unwrap_or(false)
        })
        .collect()
}

pub(crate) fn kill(pids: &[i32]) {
    for pid in pids {
        // SAFETY: kill(2) with a pid we found; a stale pid only yields ESRCH.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
}

/// Kill the process group `pgid` (a command started with `process_group(0)`).
pub(crate) fn kill_group(pgid: i32) {
    // SAFETY: as above; a negative pid addresses the group.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Pids of every process whose real, effective or saved uid is `uid`.
pub(crate) fn owned_by(uid: u32) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|ids| {
                    ids.split_whitespace()
                        .take(3)
                        .any(|id| id.parse() == Ok(uid))
                })
        })
        .collect()
}
