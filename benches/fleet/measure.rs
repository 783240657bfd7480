//! Measuring one tool run: wall time, the client's CPU and memory, and what the run cost the
//! members' sshd processes.
//!
//! Why these sources and not others:
//! - **Client CPU and `ru_maxrss` come from `wait4(2)`** on the tool's top process. The kernel
//!   folds every descendant the tool reaped (xargs' `ssh` processes, Ansible's forks and their
//!   `ssh`) into that figure, so a multi-process tool is charged for its whole tree without us
//!   tracking pids. `ru_maxrss` is the largest *single* process of that tree, which flatters
//!   tools that fan out over processes; so the tree's summed RSS is also sampled from /proc
//!   (every 50 ms, walking `/proc/PID/task/TID/children`, which costs a few reads per process
//!   rather than a scan of the whole /proc with its thousand sshd).
//! - **The members' CPU is read from each member's sshd master** (`/proc/PID/stat` utime +
//!   stime + cutime + cstime) before and after the run. sshd forks one child per connection
//!   and reaps it; that child reaped the shell and everything the probe ran; so every cycle a
//!   connection cost the member ends up in the master's `cutime`/`cstime` once the connection
//!   is over. [`wait_idle`] waits for that before the second reading.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one tool run cost on the client side.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
    /// Largest single process of the tool's tree (kB), from `wait4`.
    pub maxrss_kb: u64,
    /// Largest sum of RSS over the tool's live process tree (kB), sampled.
    pub tree_rss_kb: u64,
    /// Exit status (None: killed by a signal).
    pub exit: Option<i32>,
    /// Killed at the bench's own deadline.
    pub killed: bool,
}

impl Usage {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit (1000 members: 1000 sockets in the
/// client, plus the silent members' held sockets in this process). Returns the new limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn page_kb() -> u64 {
    // SAFETY: as above.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 / 1024 } else { 4 }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// Run `cmd` in its own process group until it exits or `deadline` passes (then the group is
/// killed). stdin/stdout/stderr are whatever `cmd` was given.
pub fn run(mut cmd: Command, deadline: Duration) -> Usage {
    cmd.process_group(0);
    let start = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id() as i32;
    // The child is reaped by wait4 below, never by `Child`.
    drop(child);

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            let kb = page_kb();
            while !stop.load(Ordering::Relaxed) {
                let rss = tree_rss_pages(pid) * kb;
                peak.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid out-parameter; pid is our own unreaped child.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        let _ = tx.send((r, status, ru, Instant::now()));
    });
    let mut killed = false;
    let (r, status, ru, ended) = match rx.recv_timeout(deadline) {
        Ok(v) => v,
        Err(_) => {
            killed = true;
            // SAFETY: kill(2) on the process group we created.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            rx.recv().expect("wait4 thread")
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    assert!(r == pid, "wait4({pid}) failed");
    let exit = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Usage {
        wall: ended - start,
        user: timeval(ru.ru_utime),
        sys: timeval(ru.ru_stime),
        maxrss_kb: ru.ru_maxrss as u64,
        tree_rss_kb: peak.load(Ordering::Relaxed),
        exit,
        killed,
    }
}

/// Resident pages of `root` and all its live descendants.
fn tree_rss_pages(root: i32) -> u64 {
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if let Ok(statm) = fs::read_to_string(format!("/proc/{pid}/statm")) {
            total += statm
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        }
        stack.extend(children(pid));
    }
    total
}

/// Direct children of `pid` (every thread's children).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|s| s.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// CPU (s) this bench process has used so far (the silent members' threads, the sampler).
pub fn self_cpu() -> f64 {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (timeval(ru.ru_utime) + timeval(ru.ru_stime)).as_secs_f64()
}

/// utime + stime + cutime + cstime of one process, in seconds.
fn process_cpu(pid: i32, ticks: u64) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": fields after the comm's closing parenthesis.
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime..cstime are fields 14..17.
    let sum: u64 = f
        .get(11..15)?
        .iter()
        .filter_map(|s| s.parse::<u64>().ok())
        .sum();
    Some(sum as f64 / ticks as f64)
}

/// utime + stime of one process (the WAN proxy), in seconds; 0 when it is gone.
pub fn own_cpu(pid: i32) -> f64 {
    let ticks = clock_ticks();
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let sum: u64 = f
        .get(11..13)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.parse::<u64>().ok())
        .sum();
    sum as f64 / ticks as f64
}

/// Total CPU (s) consumed so far by these sshd masters and every connection they reaped.
pub fn sshd_cpu(pids: &[i32]) -> f64 {
    let ticks = clock_ticks();
    pids.iter().filter_map(|p| process_cpu(*p, ticks)).sum()
}

/// Wait until no sshd master has a child left (every connection of the run is over and
/// reaped, so its CPU is in the master's cutime/cstime), at most `limit`. Returns whether they
/// all went idle.
pub fn wait_idle(pids: &[i32], limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if pids.iter().all(|p| children(*p).is_empty()) {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid of every member sshd master of the lab at `lab_dir`, by member name. The masters
/// are this process's own children (the lab spawned them); sshd rewrites its command line to
/// `sshd: /usr/sbin/sshd -D -e -f …/members/NAME/sshd_config [listener] …`, so the name is
/// read from the `members/NAME/` part of it.
pub fn sshd_masters(lab_dir: &std::path::Path) -> std::collections::HashMap<String, i32> {
    let needle = format!("{}/members/", lab_dir.display());
    let mut found = std::collections::HashMap::new();
    for pid in children(std::process::id() as i32) {
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !text.starts_with("sshd") && !text.contains("/sshd ") {
            continue;
        }
        if let Some((_, rest)) = text.split_once(&needle)
            && let Some((name, _)) = rest.split_once('/')
        {
            found.insert(name.to_string(), pid);
        }
    }
    found
}
