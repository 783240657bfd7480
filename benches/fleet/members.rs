//! The benchmark fleet: the integration tests' real sshd members (tests/support), started in
//! parallel, plus silent endpoints for the hung-members scenario.
//!
//! With `--four-providers` (and `--node-stubs`, which implies it) every member lists four
//! npm-installed CLIs (`gemini`, `claude`, `codex`, `copilot`, laid out as `npm install -g`
//! does), and `--node-stubs` makes every start of a stub CLI cost what a Node start-up costs
//! (docs/stubs.md, "Start-up cost"): the members' CPU then shows what a sweep of real CLIs costs.
//!
//! Otherwise every member lists the same two providers (`gemini`, `claude`) so that one probe script —
//! fleetauth's own, from `fleetauth::probe::build_script` — is the work every tool sends. Their
//! states rotate over four layouts so the script takes every branch it takes on a real fleet
//! (credential file present, key in the env file, CLI missing, rejected key), and with
//! `--deep` every prompt answers at once (no member simulates an unreachable vendor: a hang
//! would measure the stub's deadline, not the tools).

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::measure;
use crate::support::{Endpoint, Lab, Member, State};

/// The providers every member lists, in inventory order.
const TWO: [&str; 2] = ["gemini", "claude"];
const FOUR: [&str; 4] = ["gemini", "claude", "codex", "copilot"];

static FOUR_PROVIDERS: AtomicBool = AtomicBool::new(false);
static NODE_STUBS: AtomicBool = AtomicBool::new(false);

/// Choose the members' providers and stubs (before any member starts).
pub fn configure(four_providers: bool, node_stubs: bool) {
    FOUR_PROVIDERS.store(four_providers || node_stubs, Ordering::Relaxed);
    NODE_STUBS.store(node_stubs, Ordering::Relaxed);
}

/// The providers every member lists, in inventory order.
pub fn providers() -> &'static [&'static str] {
    if FOUR_PROVIDERS.load(Ordering::Relaxed) {
        &FOUR
    } else {
        &TWO
    }
}

/// Threads starting members at once (each runs ssh-keygen, then sshd, then polls its port).
const STARTERS: usize = 8;

/// Something an inventory row points at.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub addr: Ipv4Addr,
    pub port: u16,
}

pub struct Fleet {
    pub lab: Lab,
    /// Real members, by name (`m0000`, `m0001`, …), with their sshd master pid.
    members: Vec<(Member, i32)>,
    silent: Vec<Endpoint>,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet {
            lab: Lab::new(),
            members: Vec::new(),
            silent: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Start members until there are `n`. Returns how long that took.
    pub fn grow(&mut self, n: usize) -> Duration {
        let start = Instant::now();
        let first = self.members.len();
        if n <= first {
            return Duration::ZERO;
        }
        let next = AtomicUsize::new(first);
        let started = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..STARTERS {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let member = start_member(&self.lab, i);
                        started.lock().unwrap().push(member);
                    }
                });
            }
        });
        let mut started = started.into_inner().unwrap();
        started.sort_by(|a, b| a.name().cmp(b.name()));
        let pids = measure::sshd_masters(self.lab.dir());
        for member in started {
            let pid = *pids.get(member.name()).unwrap_or_else(|| {
                panic!("no sshd master found in /proc for member {}", member.name())
            });
            self.members.push((member, pid));
        }
        start.elapsed()
    }

    /// Add silent endpoints (accept TCP, never speak) until there are `n`.
    pub fn grow_silent(&mut self, n: usize) {
        while self.silent.len() < n {
            let name = format!("hung{:04}", self.silent.len());
            self.silent.push(self.lab.silent_member(&name));
        }
    }

    /// The first `n` real members.
    pub fn targets(&self, n: usize) -> Vec<Target> {
        self.members[..n]
            .iter()
            .map(|(m, _)| Target {
                name: m.name().to_string(),
                addr: m.addr(),
                port: m.port(),
            })
            .collect()
    }

    /// `n` targets of which every tenth (positions 9, 19, …) is a silent endpoint.
    pub fn targets_with_hung(&mut self, n: usize) -> Vec<Target> {
        let hung = n / 10;
        self.grow_silent(hung);
        let real = self.targets(n - hung);
        let mut real = real.into_iter();
        let mut silent = self.silent.iter();
        (0..n)
            .map(|i| {
                if i % 10 == 9 {
                    let e = silent.next().expect("enough silent endpoints");
                    Target {
                        name: e.name().to_string(),
                        addr: e.addr(),
                        port: e.port(),
                    }
                } else {
                    real.next().expect("enough real members")
                }
            })
            .collect()
    }

    /// sshd master pids of the first `n` real members.
    pub fn sshd_pids(&self, n: usize) -> Vec<i32> {
        self.members[..n.min(self.members.len())]
            .iter()
            .map(|(_, p)| *p)
            .collect()
    }
}

/// Lay out and start member `i`.
fn start_member(lab: &Lab, i: usize) -> Member {
    let (gemini, claude) = match i % 4 {
        0 => (State::OauthValid, State::EnvKey),
        1 => (State::EnvKey, State::OauthValid),
        2 => (State::OauthExpired, State::NotInstalled),
        _ => (State::NoAuth, State::RejectedKey),
    };
    let member = lab
        .member(&format!("m{i:04}"))
        .provider(TWO[0], gemini)
        .provider(TWO[1], claude);
    if !FOUR_PROVIDERS.load(Ordering::Relaxed) {
        return member.start();
    }
    // codex and copilot rotate too: a login file, a key in the env file, nothing, a rejected key.
    let (codex, copilot) = match i % 4 {
        0 => (State::OauthValid, State::EnvKey),
        1 => (State::EnvKey, State::OauthValid),
        2 => (State::NoAuth, State::NoAuth),
        _ => (State::RejectedKey, State::EnvKey),
    };
    let member = member
        .provider(FOUR[2], codex)
        .provider(FOUR[3], copilot)
        .npm_layout();
    if NODE_STUBS.load(Ordering::Relaxed) {
        member.node_startup().start()
    } else {
        member.start()
    }
}
