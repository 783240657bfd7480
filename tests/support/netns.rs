//! Private networks for bastion tests: two network namespaces behind the test's own.
//!
//! ```text
//!   this process ── veth ── namespace "outer" ── veth ── namespace "inner"
//!   10.213.N.1            10.213.N.2 | 10.213.N.5       10.213.N.6
//! ```
//!
//! The test process reaches `outer`'s veth address only. An sshd listening there is a bastion;
//! sshds on `outer`'s own loopback (any `127.x`) are reachable from `outer` only, that is only
//! through that bastion. `inner`'s veth address is reachable from `outer` but not from here (this
//! namespace has no route to it): a second bastion there, with members on `inner`'s loopback,
//! makes a two-hop chain. Each network holds a lock on `N` (`$TMPDIR/fleetauth-test-nets/N`), so
//! parallel test processes never share addresses; the namespaces and links are removed on drop
//! (the kernel also removes a link with its namespace). Needs root and iproute2.

use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::process::Command;

/// Two private namespaces, see the module docs.
pub struct Networks {
    pub outer: String,
    pub inner: String,
    n: u8,
    _lock: File,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run `ip` (apt-get install iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Networks {
    pub fn new() -> Networks {
        let dir = std::env::temp_dir().join("fleetauth-test-nets");
        fs::create_dir_all(&dir).expect("create the network lock dir");
        let start = (std::process::id() % 200) as u8;
        for i in 0..250u8 {
            let n = start.wrapping_add(i) % 250 + 1;
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(n.to_string()))
                .expect("open a network lock file");
            if lock.try_lock().is_err() {
                continue;
            }
            let nets = Networks {
                outer: format!("fa-net{n}-o"),
                inner: format!("fa-net{n}-i"),
                n,
                _lock: lock,
            };
            nets.remove();
            nets.create();
            return nets;
        }
        panic!("no free test network (250 in use?)");
    }

    /// The outer namespace's address, reachable from here (a bastion listens on it).
    pub fn outer_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.n, 2)
    }

    /// The inner namespace's address, reachable from the outer namespace only.
    pub fn inner_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.n, 6)
    }

    fn link(&self, side: char) -> String {
        format!("fa{}{side}", self.n)
    }

    fn create(&self) {
        let n = self.n;
        for ns in [&self.outer, &self.inner] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // Here ↔ outer.
        let (here, outer_end) = (self.link('h'), self.link('o'));
        ip(&[
            "link",
            "add",
            &here,
            "type",
            "veth",
            "peer",
            "name",
            &outer_end,
            "netns",
            &self.outer,
        ]);
        ip(&["addr", "add", &format!("10.213.{n}.1/30"), "dev", &here]);
        ip(&["link", "set", &here, "up"]);
        let outer_addr = format!("10.213.{n}.2/30");
        ip(&[
            "-n",
            &self.outer,
            "addr",
            "add",
            &outer_addr,
            "dev",
            &outer_end,
        ]);
        ip(&["-n", &self.outer, "link", "set", &outer_end, "up"]);
        // Outer ↔ inner.
        let (a, b) = (self.link('a'), self.link('b'));
        ip(&[
            "-n",
            &self.outer,
            "link",
            "add",
            &a,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            &self.inner,
        ]);
        let a_addr = format!("10.213.{n}.5/30");
        ip(&["-n", &self.outer, "addr", "add", &a_addr, "dev", &a]);
        ip(&["-n", &self.outer, "link", "set", &a, "up"]);
        let b_addr = format!("10.213.{n}.6/30");
        ip(&["-n", &self.inner, "addr", "add", &b_addr, "dev", &b]);
        ip(&["-n", &self.inner, "link", "set", &b, "up"]);
    }

    /// Remove what a previous holder of this number may have left.
    fn remove(&self) {
        for ns in [&self.outer, &self.inner] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.link('h')])
            .output();
    }
}

impl Drop for Networks {
    fn drop(&mut self) {
        self.remove();
    }
}
