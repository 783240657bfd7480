//! One OpenSSH server per member: loopback address reservation, host keys, sshd_config, the
//! `ForceCommand` wrapper, start and stop.
//!
//! Addresses: each member gets its own `127.a.b.c` so that every member can listen on port 22
//! (the common case, and the plain `host` form in known_hosts). Parallel tests in one process
//! and parallel test processes (several worktrees share this machine) must never pick the same
//! address, and a dead test must not leak its claim: a member holds an exclusive `flock` on
//! `$TMPDIR/fleetauth-test-addrs/127.a.b.c` for its lifetime, which the kernel drops with the
//! process. The search starts at an offset derived from the pid so processes rarely collide.

use std::fs::{self, File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A loopback address (and port) this process owns until the reservation is dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub addr: Ipv4Addr,
    pub port: u16,
    _lock: File,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Reserve a free `127.a.b.c` (never `127.0.…`, never `.0` or `.255`) where `port` can be bound.
pub(crate) fn reserve(port: u16) -> Reservation {
    let dir = std::env::temp_dir().join("fleetauth-test-addrs");
    fs::create_dir_all(&dir).expect("create the address lock dir");
    let base = (std::process::id() % 2048) << 12;
    let mut last_error = None;
    for _ in 0..20_000 {
        let idx = (base + NEXT.fetch_add(1, Ordering::Relaxed)) % (1 << 23);
        let (a, b, c) = (1 + (idx >> 16) as u8, (idx >> 8) as u8, idx as u8);
        if c == 0 || c == 255 {
            continue;
        }
        let addr = Ipv4Addr::new(127, a, b, c);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(addr.to_string()))
            .expect("open an address lock file");
        if lock.try_lock().is_err() {
            continue;
        }
        match TcpListener::bind((addr, port)) {
            Ok(_) => {
                return Reservation {
                    addr,
                    port,
                    _lock: lock,
                };
            }
            Err(e) => last_error = Some(e),
        }
    }
    panic!(
        "no free loopback address for port {port} (last bind error: {last_error:?}); \
         tests bind 127.x.y.z:{port} as root — is something listening on *:{port}?"
    );
}

/// Absolute path of the sshd binary (sshd re-executes itself and insists on one).
fn sshd_binary() -> &'static str {
    ["/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("OpenSSH server (sshd) is not installed: apt-get install openssh-server")
}

fn sftp_server() -> &'static str {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or("internal-sftp")
}

/// Run as root, sshd needs its privilege-separation directory.
pub(crate) fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.exists() {
        fs::create_dir_all(dir).expect("create /run/sshd (sshd's privilege separation dir)");
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
}

/// `ssh-keygen` a passphrase-less (or protected) ed25519 key at `path`; returns the public key
/// line's first two fields (`ssh-ed25519 AAAA…`).
pub(crate) fn keygen(path: &Path, passphrase: &str, comment: &str) -> String {
    keygen_type(path, "ed25519", passphrase, comment)
}

/// [`keygen`] for another key type (`ssh-keygen -t kind`: "ecdsa", "rsa", …).
pub(crate) fn keygen_type(path: &Path, kind: &str, passphrase: &str, comment: &str) -> String {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(pub_path(path));
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", passphrase, "-C", comment, "-f"])
            .arg(path),
    );
    public_key(path)
}

/// Run an OpenSSH tool (`ssh-keygen`, `ssh-add`) with stdin closed; panics with its stderr
/// unless it succeeds. Returns its stdout.
pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?} (apt-get install openssh-client): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ssh-ed25519 AAAA…` of the key whose private half is at `path`.
pub(crate) fn public_key(path: &Path) -> String {
    let text = fs::read_to_string(pub_path(path)).expect("read public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The OpenSSH fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it) of the key whose private
/// half is at `path`.
pub(crate) fn fingerprint(path: &Path) -> String {
    let text = run_ok(Command::new("ssh-keygen").arg("-lf").arg(pub_path(path)));
    text.split_whitespace()
        .nth(1)
        .expect("ssh-keygen -l prints BITS FINGERPRINT …")
        .to_string()
}

pub(crate) fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// The host pattern for a known_hosts line: `addr`, or `[addr]:port` off port 22.
pub(crate) fn known_hosts_host(addr: Ipv4Addr, port: u16) -> String {
    if port == 22 {
        addr.to_string()
    } else {
        format!("[{addr}]:{port}")
    }
}

/// Everything needed to (re)start one member's sshd.
#[derive(Debug, Clone)]
pub(crate) struct ServerSpec {
    pub dir: PathBuf,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub home: PathBuf,
    pub bin: PathBuf,
    pub vendor: PathBuf,
    /// None: no key is authorized (every login fails).
    pub authorized_keys: Option<PathBuf>,
    pub ambient_env: Vec<(String, String)>,
    /// Host key types offered besides ed25519 ("ecdsa", "rsa").
    pub extra_host_keys: Vec<String>,
    /// The member logs in as a dedicated user whose login shell runs the commands (see
    /// [`ServerSpec::write_config`]); false: `/bin/sh` runs them, as the lab's own user.
    pub login_shell: bool,
    /// Extra sshd_config lines, written before the harness's own so that they win (sshd takes
    /// the first value of a keyword).
    pub extra_config: Vec<String>,
    /// Run sshd inside this network namespace (`ip netns exec NS`): only what can route into
    /// the namespace reaches it. Readiness is then read from sshd's log, not by connecting.
    pub netns: Option<String>,
}

impl ServerSpec {
    pub fn host_key(&self) -> PathBuf {
        self.host_key_of("ed25519")
    }
    /// The private host key of type `kind` (ed25519, or one of `extra_host_keys`).
    pub fn host_key_of(&self, kind: &str) -> PathBuf {
        self.dir.join(format!("ssh_host_{kind}_key"))
    }
    pub fn commands_log(&self) -> PathBuf {
        self.dir.join("commands.log")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// Write sshd_config and the ForceCommand wrapper.
    ///
    /// sshd runs even a ForceCommand through the user's login shell (`$SHELL -c WRAPPER`). A
    /// plain member's wrapper then runs the client's command with `/bin/sh -c`. A login-shell
    /// member's wrapper hands it back to the login shell, `exec "$SHELL" -c
    /// "$SSH_ORIGINAL_COMMAND"`, exactly what sshd without a ForceCommand does, so that shell
    /// parses fleetauth's command line as on a real host. Its start-up files therefore run
    /// twice (once for the wrapper, once for the command); `SHLVL` is unset in between so the
    /// second bash still reads `.bashrc` as the one sshd starts does.
    pub fn write_config(&self) -> PathBuf {
        let wrapper = self.dir.join("force-command");
        let (prepare, shell) = if self.login_shell {
            ("unset SHLVL\n", "\"$SHELL\"")
        } else {
            ("", "/bin/sh")
        };
        super::home::write(
            &wrapper,
            &format!(
                r#"#!/bin/sh
# fleetauth test member: log the command (one line, newlines as \n), run it from $HOME.
printf '%s\n' "${{SSH_ORIGINAL_COMMAND-}}" |
    awk 'NR > 1 {{ printf "\\n" }} {{ printf "%s", $0 }} END {{ printf "\n" }}' >>{log}
cd "$HOME" || exit 1
{prepare}[ -n "${{SSH_ORIGINAL_COMMAND-}}" ] || exec {shell} -l
exec {shell} -c "$SSH_ORIGINAL_COMMAND"
"#,
                log = sh_quote(&self.commands_log())
            ),
        );
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");

        let mut env = vec![
            ("HOME".to_string(), self.home.display().to_string()),
            (
                "PATH".to_string(),
                format!("{}:/usr/bin:/bin", self.bin.display()),
            ),
            (
                "FLEETAUTH_STUB_VENDOR".to_string(),
                self.vendor.display().to_string(),
            ),
        ];
        env.extend(self.ambient_env.iter().cloned());
        let set_env: Vec<String> = env
            .iter()
            .map(|(k, v)| {
                assert!(
                    !v.contains(['"', '\n', '\\']) && !k.contains(['"', '=', ' ', '\n']),
                    "SetEnv {k:?}: names and values with quotes, backslashes or newlines can't be written in sshd_config"
                );
                format!("\"{k}={v}\"")
            })
            .collect();
        let authorized = match &self.authorized_keys {
            Some(p) => p.display().to_string(),
            None => "none".to_string(),
        };
        let host_keys: String = std::iter::once("ed25519")
            .chain(self.extra_host_keys.iter().map(String::as_str))
            .map(|kind| format!("HostKey {}\n", self.host_key_of(kind).display()))
            .collect();
        let extra: String = self.extra_config.iter().map(|l| format!("{l}\n")).collect();
        let config = format!(
            "# fleetauth test member\n\
             {extra}\
             ListenAddress {addr}:{port}\n\
             {host_keys}\
             PidFile none\n\
             AuthorizedKeysFile {authorized}\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin yes\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UseDNS no\n\
             LogLevel VERBOSE\n\
             SetEnv {set_env}\n\
             ForceCommand {wrapper}\n\
             Subsystem sftp {sftp}\n",
            addr = self.addr,
            port = self.port,
            set_env = set_env.join(" "),
            wrapper = wrapper.display(),
            sftp = sftp_server(),
        );
        let path = self.dir.join("sshd_config");
        super::home::write(&path, &config);
        path
    }

    /// Start `sshd -D -e` and wait until it accepts connections. Panics with sshd's log when it
    /// exits or does not listen within 10 s.
    pub fn start(&self) -> Child {
        let config = self.write_config();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open sshd.log");
        let listening_before = self.listening_lines();
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, sshd_binary()]);
                c
            }
            None => Command::new(sshd_binary()),
        };
        let mut child = command
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn sshd");
        let target = SocketAddr::from((self.addr, self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait sshd") {
                panic!(
                    "sshd for {target} exited ({status}) before listening; its log:\n{}",
                    fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            let ready = match &self.netns {
                Some(_) => self.listening_lines() > listening_before,
                None => TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok(),
            };
            if ready {
                return child;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "sshd for {target} did not accept connections within 10 s; its log:\n{}",
                    fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl ServerSpec {
    /// How many times sshd's log says it is listening (it says so once per start).
    fn listening_lines(&self) -> usize {
        fs::read_to_string(self.log())
            .unwrap_or_default()
            .matches("Server listening on")
            .count()
    }
}

/// Kill an sshd with every connection and command it started, and every process still carrying
/// the member's vendor dir in its environment.
pub(crate) fn kill(child: &mut Child, vendor: &Path) {
    let pids = super::procs::tree(child.id() as i32);
    super::procs::kill(&pids);
    let _ = child.wait();
    sweep(vendor);
}

/// Kill every process started under a member (by its `FLEETAUTH_STUB_VENDOR`).
pub(crate) fn sweep(vendor: &Path) {
    super::procs::kill(&super::procs::with_env("FLEETAUTH_STUB_VENDOR", vendor));
}

/// Single-quote a path for sh.
pub(crate) fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}
