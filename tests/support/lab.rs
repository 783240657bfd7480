//! [`Lab`]: one test's fleet — operator side (keys, known_hosts, fleetauth's home) and members.
//!
//! Layout of a lab's temporary directory:
//! ```text
//! operator/                 HOME for fleetauth runs
//!   .ssh/id_ed25519{,.pub}  client key, authorized on every member (lab.identity())
//!   .ssh/known_hosts        every member's host key (lab.known_hosts()), except members built
//!                           with MemberBuilder::untrusted_host_key
//!   .config/                XDG_CONFIG_HOME
//!   fleetauth/              FLEETAUTH_HOME (not created: fleetauth creates it)
//! authorized_keys           what the members accept (AuthorizedKeysFile)
//! members/NAME/             sshd_config, host key, force-command, commands.log, sshd.log
//!   home/  bin/  vendor/    the member's HOME, PATH dir (stubs) and FLEETAUTH_STUB_VENDOR
//! inventory.toml            written by lab.inventory()
//! ```
//!
//! A member built with [`MemberBuilder::login_shell`] logs in as its own local user (see
//! [`super::users`]) whose passwd home is `members/NAME/home` and whose login shell runs every
//! command. Its HOME, vendor dir and commands.log then belong to that user, and the lab's
//! directory becomes traversable (0711) so the user can reach them and sshd, reading
//! `authorized_keys` as that user, can too.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::State;
use super::home::{self, Dirs, HomeSpec, Planted};
use super::sshd::{self, Reservation, ServerSpec};
use super::users::{self, LocalUser};

/// One test's fleet. Dropping it kills everything it started and removes its directory
/// (unless `FLEETAUTH_KEEP_LAB` is set).
pub struct Lab {
    entries: Mutex<Vec<Entry>>,
    silent: Mutex<Vec<Silent>>,
    agent: Mutex<Option<(Child, PathBuf)>>,
    user: String,
    root: PathBuf,
    dir: Option<tempfile::TempDir>,
}

enum Entry {
    Sshd(Member),
    Endpoint(Endpoint),
}

impl Lab {
    /// A fresh lab: temp dir, client ed25519 key, empty known_hosts, and `/run/sshd`.
    pub fn new() -> Lab {
        sshd::ensure_privsep_dir();
        let dir = tempfile::Builder::new()
            .prefix("fleetauth-lab-")
            .tempdir()
            .expect("create the lab dir");
        let root = dir.path().to_path_buf();
        let ssh = root.join("operator/.ssh");
        fs::create_dir_all(&ssh).unwrap();
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(root.join("operator/.config")).unwrap();
        fs::create_dir_all(root.join("members")).unwrap();
        let public = sshd::keygen(&ssh.join("id_ed25519"), "", "fleetauth-lab");
        home::write(&root.join("authorized_keys"), &format!("{public}\n"));
        home::write(&ssh.join("known_hosts"), "");
        let dir = if std::env::var_os("FLEETAUTH_KEEP_LAB").is_some() {
            eprintln!("keeping the lab at {}", root.display());
            let _ = dir.keep();
            None
        } else {
            Some(dir)
        };
        Lab {
            entries: Mutex::new(Vec::new()),
            silent: Mutex::new(Vec::new()),
            agent: Mutex::new(None),
            user: current_user(),
            root,
            dir,
        }
    }

    /// Start describing a member named `name` (a real sshd once `.start()`ed).
    pub fn member(&self, name: &str) -> MemberBuilder<'_> {
        MemberBuilder {
            lab: self,
            name: name.to_string(),
            spec: HomeSpec::default(),
            opts: Opts::default(),
        }
    }

    /// An inventory entry whose address is reserved but where nothing listens: connecting is
    /// refused. Its providers default to `["gemini"]` (see [`Endpoint::providers`]).
    pub fn down_member(&self, name: &str) -> Endpoint {
        self.claim_name(name);
        let endpoint = Endpoint::new(name, sshd::reserve(22));
        self.entries
            .lock()
            .unwrap()
            .push(Entry::Endpoint(endpoint.clone()));
        endpoint
    }

    /// An inventory entry where a TCP listener accepts connections and never says a word (no SSH
    /// banner): only a connect deadline gets past it. Kept alive until the lab is dropped.
    pub fn silent_member(&self, name: &str) -> Endpoint {
        self.claim_name(name);
        let reservation = sshd::reserve(22);
        let listener =
            TcpListener::bind((reservation.addr, reservation.port)).expect("bind silent member");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        self.silent.lock().unwrap().push(Silent {
            stop,
            thread: Some(thread),
        });
        let endpoint = Endpoint::new(name, reservation);
        self.entries
            .lock()
            .unwrap()
            .push(Entry::Endpoint(endpoint.clone()));
        endpoint
    }

    /// Write `inventory.toml`: `[defaults]` with `user`, `identity_file` and `known_hosts` (the
    /// lab's), then `extra` (more `[defaults]` keys, verbatim), then one `[members.NAME]` per
    /// member in creation order with `host`, `port` (when not 22), `providers` and the member's
    /// own extra lines. Returns its path.
    pub fn inventory(&self, extra: &str) -> PathBuf {
        self.inventory_named("inventory.toml", extra)
    }

    /// [`Lab::inventory`] under another file name in the lab dir (several inventories per test).
    pub fn inventory_named(&self, file_name: &str, extra: &str) -> PathBuf {
        let mut text = format!(
            "[defaults]\nuser = {}\nidentity_file = {}\nknown_hosts = {}\n",
            toml_str(&self.user),
            toml_str(&self.identity().display().to_string()),
            toml_str(&self.known_hosts().display().to_string()),
        );
        if !extra.trim().is_empty() {
            text.push_str(extra.trim_end());
            text.push('\n');
        }
        for entry in self.entries.lock().unwrap().iter() {
            let (name, addr, port, providers, lines) = match entry {
                Entry::Sshd(m) => (
                    m.name(),
                    m.addr(),
                    m.port(),
                    Some(m.0.providers.clone()),
                    m.0.inventory_lines.clone(),
                ),
                Entry::Endpoint(e) => {
                    let inner = e.0.lock().unwrap();
                    (
                        e.name(),
                        inner.reservation.addr,
                        inner.reservation.port,
                        inner.providers.clone(),
                        inner.inventory_lines.clone(),
                    )
                }
            };
            text.push_str(&format!(
                "\n[members.{}]\nhost = {}\n",
                toml_key(name),
                toml_str(&addr.to_string())
            ));
            if port != 22 {
                text.push_str(&format!("port = {port}\n"));
            }
            if let Entry::Sshd(m) = entry
                && m.0.login.is_some()
            {
                text.push_str(&format!("user = {}\n", toml_str(m.user())));
            }
            if let Some(providers) = providers {
                let list: Vec<String> = providers.iter().map(|p| toml_str(p)).collect();
                text.push_str(&format!("providers = [{}]\n", list.join(", ")));
            }
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let path = self.root.join(file_name);
        home::write(&path, &text);
        path
    }

    /// Start an ssh-agent holding the lab's client key; from now on `fleetauth` runs get its
    /// `SSH_AUTH_SOCK`. Idempotent. The agent is killed with the lab.
    pub fn with_agent(&self) -> &Lab {
        if self.agent_socket().is_none() {
            self.with_agent_keys(&[&self.identity()]);
        }
        self
    }

    /// Start the lab's ssh-agent if it is not running yet (empty, not even the lab's client key)
    /// and add `keys` to it in this order, the order the agent offers them in.
    pub fn with_agent_keys(&self, keys: &[&Path]) -> &Lab {
        let mut agent = self.agent.lock().unwrap();
        if agent.is_none() {
            *agent = Some(start_agent(&self.root.join("agent.sock")));
        }
        let socket = &agent.as_ref().unwrap().1;
        for key in keys {
            sshd::run_ok(
                Command::new("ssh-add")
                    .arg("-q")
                    .arg(key)
                    .env("SSH_AUTH_SOCK", socket),
            );
        }
        self
    }

    /// `SSH_AUTH_SOCK` of the lab's agent, once [`Lab::with_agent`] or [`Lab::with_agent_keys`]
    /// started it.
    pub fn agent_socket(&self) -> Option<PathBuf> {
        self.agent.lock().unwrap().as_ref().map(|(_, s)| s.clone())
    }

    /// Generate another client key at `operator/.ssh/NAME`, protected by `passphrase` ("" for
    /// none), and authorize it on every member of this lab. Returns the private key's path.
    pub fn extra_identity(&self, name: &str, passphrase: &str) -> PathBuf {
        let path = self.operator_home().join(".ssh").join(name);
        let public = sshd::keygen(&path, passphrase, name);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(self.root.join("authorized_keys"))
            .unwrap();
        writeln!(file, "{public}").unwrap();
        path
    }

    /// A client key no member accepts (for authentication failures).
    pub fn unauthorized_identity(&self) -> PathBuf {
        let path = self.operator_home().join(".ssh/unauthorized_ed25519");
        sshd::keygen(&path, "", "unauthorized");
        path
    }

    /// The lab's directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }
    /// HOME of fleetauth runs.
    pub fn operator_home(&self) -> PathBuf {
        self.root.join("operator")
    }
    /// FLEETAUTH_HOME of fleetauth runs (not created by the lab).
    pub fn fleetauth_home(&self) -> PathBuf {
        self.root.join("operator/fleetauth")
    }
    /// XDG_CONFIG_HOME of fleetauth runs.
    pub fn config_home(&self) -> PathBuf {
        self.root.join("operator/.config")
    }
    /// The client private key every member authorizes.
    pub fn identity(&self) -> PathBuf {
        self.root.join("operator/.ssh/id_ed25519")
    }
    /// The operator's known_hosts, holding every member's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("operator/.ssh/known_hosts")
    }
    /// The login name plain members accept (the current user; tests run as root). A member
    /// with its own login shell has its own user: [`Member::user`].
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The OpenSSH client options that reach this lab's members with its key and known_hosts,
    /// ignoring the user's own config (`-F /dev/null -i KEY -o UserKnownHostsFile=… -o
    /// StrictHostKeyChecking=yes -o BatchMode=yes …`); shared by `ssh` and `sftp`.
    pub fn client_options(&self) -> Vec<String> {
        self.client_options_with(&self.identity())
    }

    /// [`Lab::client_options`] offering only `identity` (say, from [`Lab::extra_identity`]).
    pub fn client_options_with(&self, identity: &Path) -> Vec<String> {
        let mut args = vec!["-F".to_string(), "/dev/null".into(), "-i".into()];
        args.push(identity.display().to_string());
        for option in [
            format!("UserKnownHostsFile={}", self.known_hosts().display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "StrictHostKeyChecking=yes".into(),
            "BatchMode=yes".into(),
            "IdentitiesOnly=yes".into(),
            "ConnectTimeout=10".into(),
            "LogLevel=ERROR".into(),
        ] {
            args.push("-o".into());
            args.push(option);
        }
        args
    }

    /// `ssh [client options] -p PORT USER@ADDR COMMAND` for `member`, with a clean environment
    /// (HOME = the operator's), ready to run or to `capture` with a deadline.
    pub fn ssh_command(&self, member: &Member, command: &str) -> Command {
        self.ssh_command_with(&self.identity(), member, command)
    }

    /// [`Lab::ssh_command`] logging in with `identity` instead of the lab's key.
    pub fn ssh_command_with(&self, identity: &Path, member: &Member, command: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.env_clear()
            .env("HOME", self.operator_home())
            .env("PATH", "/usr/bin:/bin")
            .args(self.client_options_with(identity))
            .arg("-p")
            .arg(member.port().to_string())
            .arg(format!("{}@{}", member.user(), member.addr()))
            .arg(command);
        cmd
    }

    /// Run a command on `member` with the OpenSSH client ([`Lab::ssh_command`]), stdin empty.
    /// For checking the harness and members independently of fleetauth.
    pub fn ssh(&self, member: &Member, command: &str) -> super::Output {
        self.ssh_with_stdin(member, command, b"")
    }

    /// [`Lab::ssh`] feeding `stdin` to the remote command.
    pub fn ssh_with_stdin(&self, member: &Member, command: &str, stdin: &[u8]) -> super::Output {
        super::run::capture(
            self.ssh_command(member, command),
            Some(stdin.to_vec()),
            Duration::from_secs(60),
        )
    }

    /// Let other users reach the lab's directory (0711: traverse, not list) and read
    /// `authorized_keys` (sshd reads it as the user logging in).
    fn make_traversable(&self) {
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o711))
            .expect("chmod the lab dir");
        fs::set_permissions(self.root.join("members"), fs::Permissions::from_mode(0o755))
            .expect("chmod the members dir");
        fs::set_permissions(
            self.root.join("authorized_keys"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod authorized_keys");
    }

    fn claim_name(&self, name: &str) {
        let taken = self.entries.lock().unwrap().iter().any(|e| match e {
            Entry::Sshd(m) => m.name() == name,
            Entry::Endpoint(e) => e.name() == name,
        });
        assert!(!taken, "two members named {name:?} in one lab");
    }

    fn trust_host_key(&self, addr: Ipv4Addr, port: u16, public: &str) {
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(self.known_hosts())
            .unwrap();
        // One write per line: members laid out from parallel threads must not interleave.
        let line = format!("{} {public}\n", sshd::known_hosts_host(addr, port));
        file.write_all(line.as_bytes()).unwrap();
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for entry in self.entries.get_mut().unwrap().iter() {
            if let Entry::Sshd(m) = entry {
                m.stop();
            }
        }
        for silent in self.silent.get_mut().unwrap().iter_mut() {
            silent.stop.store(true, Ordering::Relaxed);
            if let Some(t) = silent.thread.take() {
                let _ = t.join();
            }
        }
        if let Some((mut child, _)) = self.agent.get_mut().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The TempDir (self.dir) is removed after this, when the fields drop.
    }
}

struct Silent {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Opts {
    ambient_env: Vec<(String, String)>,
    inventory_lines: Vec<String>,
    port: Option<u16>,
    deny_client_key: bool,
    extra_host_keys: Vec<String>,
    untrusted_host_key: bool,
    login_shell: Option<String>,
    extra_config: Vec<String>,
    netns: Option<String>,
    listen: Option<Ipv4Addr>,
}

/// Describes one member; `.start()` lays it out and starts its sshd, `.build()` only lays it out.
#[must_use = "a member exists only once .start() (or .build()) is called"]
pub struct MemberBuilder<'a> {
    lab: &'a Lab,
    name: String,
    spec: HomeSpec,
    opts: Opts,
}

impl MemberBuilder<'_> {
    /// Put `provider` (gemini, claude, codex, copilot) in `state` on this member. Providers are
    /// listed in the inventory in call order, including NotInstalled ones.
    pub fn provider(mut self, provider: &str, state: State) -> Self {
        self.spec.providers.push((provider.to_string(), state));
        self
    }
    /// An extra line in the member's env file, verbatim (written before the providers' lines).
    pub fn env_line(mut self, line: &str) -> Self {
        self.spec.env_lines.push(line.to_string());
        self
    }
    /// The simulated vendor rejects `credential` (on top of what the states reject).
    pub fn vendor_rejects(mut self, credential: &str) -> Self {
        self.spec.rejects.push(credential.to_string());
        self
    }
    /// The vendor is unreachable for every CLI on this member (not just for VendorUnreachable
    /// providers): every prompt hangs.
    pub fn vendor_unreachable(mut self) -> Self {
        self.spec.vendor_unreachable = true;
        self
    }
    /// `false`: claude's `~/.claude.json` lacks `hasCompletedOnboarding` (the empty-success trap).
    pub fn onboarding(mut self, completed: bool) -> Self {
        self.spec.onboarding = completed;
        self
    }
    /// A variable every command on the member sees (sshd `SetEnv`), e.g. a stale key in the
    /// member's ambient environment.
    pub fn ambient_env(mut self, name: &str, value: &str) -> Self {
        self.opts
            .ambient_env
            .push((name.to_string(), value.to_string()));
        self
    }
    /// The version `cli --version` prints (the vendor's `version-<cli>` file).
    pub fn version(mut self, cli: &str, version: &str) -> Self {
        self.spec
            .versions
            .push((cli.to_string(), version.to_string()));
        self
    }
    /// Install the npm-based CLIs (gemini, claude, codex, copilot) as `npm install -g` does: a
    /// package directory with its package.json, and the bin a symlink into it.
    pub fn npm_layout(mut self) -> Self {
        self.spec.npm_layout = true;
        self
    }
    /// Every stub CLI start costs what a Node start-up costs (docs/stubs.md, "Start-up cost").
    pub fn node_startup(mut self) -> Self {
        self.spec.node_startup = true;
        self
    }
    /// Listen on `port` instead of 22 (known_hosts then says `[addr]:port`, the inventory
    /// `port = …`).
    pub fn port(mut self, port: u16) -> Self {
        self.opts.port = Some(port);
        self
    }
    /// An extra line in this member's inventory table, verbatim (`tags = ["gpu"]`).
    pub fn inventory_line(mut self, line: &str) -> Self {
        self.opts.inventory_lines.push(line.to_string());
        self
    }
    /// Authorize no client key at all: every login fails.
    pub fn deny_client_key(mut self) -> Self {
        self.opts.deny_client_key = true;
        self
    }
    /// Also offer a host key of type `kind` (`ssh-keygen -t kind`: "ecdsa", "rsa") besides the
    /// ed25519 one. Only the ed25519 key goes into the lab's known_hosts; the other is at
    /// [`Member::host_public_key_of`].
    pub fn extra_host_key(mut self, kind: &str) -> Self {
        self.opts.extra_host_keys.push(kind.to_string());
        self
    }

    /// Leave its host key out of the lab's known_hosts: the test writes what known_hosts should
    /// say about this member (a `@cert-authority` line, say), or nothing.
    pub fn untrusted_host_key(mut self) -> Self {
        self.opts.untrusted_host_key = true;
        self
    }

    /// Log in as a dedicated local user (`fa-sh-<pid>-<n>`, see [`Member::user`]) whose login
    /// shell is `shell`, so that shell, not `/bin/sh`, parses and runs every command line the
    /// member receives, as sshd does on a real host. `shell`: "bash", "dash", "zsh", "fish",
    /// "tcsh" (found in /usr/bin or /bin), an absolute path, or "busybox" (busybox's `sh`
    /// applet, through a symlink named `sh`). The user's passwd home is the member's HOME; what
    /// the harness plants there is chowned to it; the inventory gives the member `user = …`.
    /// Creating users needs root (the tests run as root).
    pub fn login_shell(mut self, shell: &str) -> Self {
        self.opts.login_shell = Some(shell.to_string());
        self
    }
    /// Start-up files that print a line to stdout and one to stderr for every shell:
    /// `.bashrc`, `.profile`, `.bash_profile`, `.zshenv`, `.zshrc`, `.config/fish/config.fish`,
    /// `.tcshrc`, `.cshrc`, and `.shrc` with `ENV` pointing at it. Each line starts with
    /// [`super::RC_NOISE`]; see `home::noisy_rc` for which shell reads which file when.
    pub fn noisy_rc(mut self) -> Self {
        self.spec.noisy_rc = true;
        self
    }

    /// An extra sshd_config line (`MaxSessions 1`, `AllowTcpForwarding no`, `HostCertificate
    /// …`), taking precedence over the harness's own settings.
    pub fn sshd_option(mut self, line: &str) -> Self {
        self.opts.extra_config.push(line.to_string());
        self
    }
    /// Run this member's sshd inside network namespace `ns` (see `netns.rs`): on its own
    /// `127.a.b.c` as usual, but that namespace's loopback, which only the namespace reaches.
    pub fn in_netns(mut self, ns: &str) -> Self {
        self.opts.netns = Some(ns.to_string());
        self
    }
    /// Listen on `addr` instead of a reserved loopback address (with [`Self::in_netns`], that
    /// namespace's end of a veth pair); known_hosts and the inventory then name `addr`.
    pub fn listen_on(mut self, addr: Ipv4Addr) -> Self {
        self.opts.listen = Some(addr);
        self
    }

    /// Lay the member out (HOME, bin, vendor, host key, known_hosts entry, inventory entry)
    /// without starting its sshd; [`Member::start`] starts it later.
    pub fn build(mut self) -> Member {
        let lab = self.lab;
        lab.claim_name(&self.name);
        let dir = lab.root.join("members").join(&self.name);
        let (home, bin, vendor) = (dir.join("home"), dir.join("bin"), dir.join("vendor"));
        for d in [&home, &bin, &vendor] {
            fs::create_dir_all(d).unwrap();
        }
        let login = self.opts.login_shell.as_deref().map(|shell| {
            lab.make_traversable();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            LocalUser::create(&home, &users::resolve_shell(shell, &dir))
        });
        if self.spec.noisy_rc {
            self.opts
                .ambient_env
                .push(("ENV".to_string(), home.join(".shrc").display().to_string()));
        }
        let planted = home::lay_out(
            &self.spec,
            &Dirs {
                home: &home,
                bin: &bin,
                vendor: &vendor,
            },
        );
        let reservation = sshd::reserve(self.opts.port.unwrap_or(22));
        let server = ServerSpec {
            dir,
            addr: self.opts.listen.unwrap_or(reservation.addr),
            port: reservation.port,
            home,
            bin,
            vendor,
            authorized_keys: (!self.opts.deny_client_key).then(|| lab.root.join("authorized_keys")),
            ambient_env: self.opts.ambient_env,
            extra_host_keys: self.opts.extra_host_keys,
            login_shell: login.is_some(),
            extra_config: self.opts.extra_config,
            netns: self.opts.netns,
        };
        if let Some(user) = &login {
            // The wrapper appends to commands.log as the user; the member dir stays root's.
            home::write(&server.commands_log(), "");
            for path in [&server.home, &server.vendor, &server.commands_log()] {
                users::chown_tree(path, user.uid, user.gid);
            }
        }
        let public = sshd::keygen(&server.host_key(), "", &self.name);
        for kind in &server.extra_host_keys {
            sshd::keygen_type(&server.host_key_of(kind), kind, "", &self.name);
        }
        if !self.opts.untrusted_host_key {
            lab.trust_host_key(server.addr, server.port, &public);
        }
        let member = Member(Arc::new(MemberInner {
            name: self.name,
            providers: self.spec.providers.iter().map(|(p, _)| p.clone()).collect(),
            planted,
            lab_user: lab.user.clone(),
            inventory_lines: self.opts.inventory_lines,
            server,
            sshd: Mutex::new(None),
            _reservation: reservation,
            login,
        }));
        lab.entries
            .lock()
            .unwrap()
            .push(Entry::Sshd(member.clone()));
        member
    }

    /// Lay the member out and start its sshd; returns once it accepts connections.
    pub fn start(self) -> Member {
        let member = self.build();
        member.start();
        member
    }
}

/// A member with a real sshd. Cheap to clone; the sshd (and everything it started) is killed
/// when the lab or the last handle is dropped.
#[derive(Clone)]
pub struct Member(Arc<MemberInner>);

struct MemberInner {
    name: String,
    providers: Vec<String>,
    planted: Vec<Planted>,
    lab_user: String,
    inventory_lines: Vec<String>,
    server: ServerSpec,
    sshd: Mutex<Option<Child>>,
    _reservation: Reservation,
    /// The member's own user (login-shell members); removed after the sshd is killed, when
    /// the fields drop.
    login: Option<LocalUser>,
}

impl Drop for MemberInner {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .sshd
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            sshd::kill(&mut child, &self.server.vendor);
        }
    }
}

impl Member {
    pub fn name(&self) -> &str {
        &self.0.name
    }
    /// Its loopback address (`127.a.b.c`), the inventory's `host`.
    pub fn addr(&self) -> Ipv4Addr {
        self.0.server.addr
    }
    pub fn port(&self) -> u16 {
        self.0.server.port
    }
    /// Its `$HOME`.
    pub fn home(&self) -> &Path {
        &self.0.server.home
    }
    /// The user fleetauth logs in as: the member's own `fa-sh-<pid>-<n>` when it has a
    /// [`MemberBuilder::login_shell`], else the lab's ([`Lab::user`]).
    pub fn user(&self) -> &str {
        match &self.0.login {
            Some(u) => &u.name,
            None => &self.0.lab_user,
        }
    }
    /// uid of [`Member::user`] (for a plain member, this process's euid).
    pub fn uid(&self) -> u32 {
        match &self.0.login {
            Some(u) => u.uid,
            // SAFETY: geteuid(2) cannot fail.
            None => unsafe { libc::geteuid() },
        }
    }
    /// Primary gid of [`Member::user`] (for a plain member, this process's egid).
    pub fn gid(&self) -> u32 {
        match &self.0.login {
            Some(u) => u.gid,
            // SAFETY: getegid(2) cannot fail.
            None => unsafe { libc::getegid() },
        }
    }
    /// The login shell running its commands (`None`: a plain member, `/bin/sh`).
    pub fn login_shell(&self) -> Option<&Path> {
        self.0.login.as_ref().map(|u| u.shell.as_path())
    }
    /// Give `path` (and everything under it, symlinks not followed) to [`Member::user`]: for
    /// files a test plants in a login-shell member's HOME after it was built. No-op for plain
    /// members.
    pub fn own(&self, path: &Path) {
        if let Some(u) = &self.0.login {
            users::chown_tree(path, u.uid, u.gid);
        }
    }
    /// The directory on its PATH holding the installed stubs.
    pub fn bin_dir(&self) -> &Path {
        &self.0.server.bin
    }
    /// Its simulated vendor (`$FLEETAUTH_STUB_VENDOR`).
    pub fn vendor_dir(&self) -> &Path {
        &self.0.server.vendor
    }
    /// Its env file, `$HOME/.config/fleetauth/env` (may not exist).
    pub fn env_file(&self) -> PathBuf {
        self.home().join(home::ENV_FILE)
    }
    /// The env file's text, "" when absent.
    pub fn env_file_contents(&self) -> String {
        fs::read_to_string(self.env_file()).unwrap_or_default()
    }
    /// Every command run over SSH so far, one per channel, in order (newlines shown as `\n`; an
    /// SFTP session shows as the sftp-server path).
    pub fn commands_log(&self) -> Vec<String> {
        home::lines(&self.0.server.commands_log())
    }
    /// Every stub invocation so far (`gemini -p Reply with OK --output-format json`), credentials
    /// redacted.
    pub fn calls_log(&self) -> Vec<String> {
        home::lines(&self.vendor_dir().join("calls.log"))
    }
    /// The providers listed for it in the inventory, in order.
    pub fn providers(&self) -> &[String] {
        &self.0.providers
    }
    /// What was planted per provider.
    pub fn planted(&self) -> &[Planted] {
        &self.0.planted
    }
    /// The secret planted for `provider` under `label` (`GEMINI_API_KEY`, `access_token`,
    /// `accessToken`, `refreshToken`, `CLAUDE_CODE_OAUTH_TOKEN`, `CODEX_API_KEY`,
    /// `OPENAI_API_KEY`, `github_token`, `COPILOT_GITHUB_TOKEN`, …). Panics listing the labels
    /// there are.
    pub fn secret(&self, provider: &str, label: &str) -> String {
        let planted = self.0.planted.iter().find(|p| p.provider == provider);
        let secrets = planted.map(|p| p.secrets.as_slice()).unwrap_or(&[]);
        match secrets.iter().find(|(l, _)| *l == label) {
            Some((_, s)) => s.clone(),
            None => panic!(
                "member {} has no {provider} secret labelled {label:?}; it has {:?}",
                self.name(),
                secrets.iter().map(|(l, _)| *l).collect::<Vec<_>>()
            ),
        }
    }
    /// Every secret planted on this member (for leak checks).
    pub fn secrets(&self) -> Vec<String> {
        self.0
            .planted
            .iter()
            .flat_map(|p| p.secrets.iter().map(|(_, s)| s.clone()))
            .collect()
    }
    /// Its `known_hosts` host pattern (`127.a.b.c` or `[127.a.b.c]:port`).
    pub fn known_hosts_host(&self) -> String {
        sshd::known_hosts_host(self.addr(), self.port())
    }
    /// Its current public host key (`ssh-ed25519 AAAA…`).
    pub fn host_public_key(&self) -> String {
        sshd::public_key(&self.0.server.host_key())
    }
    /// Its public host key of type `kind` (`ecdsa-sha2-nistp256 AAAA…` for "ecdsa"): "ed25519"
    /// or one added with [`MemberBuilder::extra_host_key`].
    pub fn host_public_key_of(&self, kind: &str) -> String {
        sshd::public_key(&self.0.server.host_key_of(kind))
    }
    /// The fingerprint of its current ed25519 host key (`SHA256:…`, as `ssh-keygen -l` prints it).
    pub fn host_key_fingerprint(&self) -> String {
        sshd::fingerprint(&self.0.server.host_key())
    }
    /// sshd's own log (connection and auth events).
    pub fn sshd_log(&self) -> String {
        fs::read_to_string(self.0.server.log()).unwrap_or_default()
    }

    /// Start its sshd (no-op when running); returns once it accepts connections.
    pub fn start(&self) {
        let mut sshd = self.0.sshd.lock().unwrap();
        if sshd.is_none() {
            *sshd = Some(self.0.server.start());
        }
    }
    /// Kill its sshd, its connections and everything they started. The address stays reserved,
    /// so afterwards connections are refused.
    pub fn stop(&self) {
        if let Some(mut child) = self.0.sshd.lock().unwrap_or_else(|p| p.into_inner()).take() {
            sshd::kill(&mut child, &self.0.server.vendor);
        }
    }
    /// Stop, generate a new host key (the lab's known_hosts keeps the old one), start again.
    pub fn restart_with_new_host_key(&self) {
        self.stop();
        sshd::keygen(&self.0.server.host_key(), "", self.name());
        self.start();
    }
    /// A `/bin/sh -c script` run locally exactly as the member would run it over SSH: the
    /// member's user, HOME (also the working directory), PATH and vendor, its ambient env,
    /// nothing else from the test's environment.
    pub fn sh(&self, script: &str) -> Command {
        let s = &self.0.server;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .env_clear()
            .env("HOME", &s.home)
            .env("PATH", format!("{}:/usr/bin:/bin", s.bin.display()))
            .env("FLEETAUTH_STUB_VENDOR", &s.vendor)
            .envs(s.ambient_env.iter().map(|(k, v)| (k, v)))
            .current_dir(&s.home);
        if let Some(u) = &self.0.login {
            use std::os::unix::process::CommandExt;
            cmd.uid(u.uid).gid(u.gid);
        }
        cmd
    }
    /// Pids of every command still running on this member (over SSH or through
    /// [`Member::sh`]): the processes carrying its `FLEETAUTH_STUB_VENDOR`.
    pub fn processes(&self) -> Vec<i32> {
        super::procs::with_env("FLEETAUTH_STUB_VENDOR", self.vendor_dir())
    }
    /// Kill whatever [`Member::sh`] or SSH sessions left running on this member.
    pub fn kill_strays(&self) {
        sshd::sweep(self.vendor_dir());
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Member({} at {})", self.name(), self.known_hosts_host())
    }
}

/// A down or silent member: an inventory entry on a reserved address with no sshd.
#[derive(Clone)]
pub struct Endpoint(Arc<Mutex<EndpointInner>>, Arc<str>);

struct EndpointInner {
    reservation: Reservation,
    providers: Option<Vec<String>>,
    inventory_lines: Vec<String>,
}

impl Endpoint {
    fn new(name: &str, reservation: Reservation) -> Endpoint {
        Endpoint(
            Arc::new(Mutex::new(EndpointInner {
                reservation,
                providers: Some(vec!["gemini".to_string()]),
                inventory_lines: Vec::new(),
            })),
            Arc::from(name),
        )
    }
    pub fn name(&self) -> &str {
        &self.1
    }
    pub fn addr(&self) -> Ipv4Addr {
        self.0.lock().unwrap().reservation.addr
    }
    pub fn port(&self) -> u16 {
        self.0.lock().unwrap().reservation.port
    }
    /// The providers listed for it in the inventory (default `["gemini"]`); an empty list
    /// omits the key, so the member inherits `[defaults] providers`.
    pub fn providers(self, providers: &[&str]) -> Self {
        self.0.lock().unwrap().providers =
            (!providers.is_empty()).then(|| providers.iter().map(|p| p.to_string()).collect());
        self
    }
    /// An extra line in its inventory table, verbatim.
    pub fn inventory_line(self, line: &str) -> Self {
        self.0
            .lock()
            .unwrap()
            .inventory_lines
            .push(line.to_string());
        self
    }
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        toml_str(s)
    }
}

/// An `ssh-agent -D` listening on `socket`, once the socket exists.
fn start_agent(socket: &Path) -> (Child, PathBuf) {
    let mut child = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssh-agent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ssh-agent did not create {}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, socket.to_path_buf())
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
