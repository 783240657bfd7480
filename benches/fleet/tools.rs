//! The contenders, each turned into one command line over the same members doing the same work.
//!
//! The work is fleetauth's own probe script (`fleetauth::probe::build_script`, built from the
//! scenario's inventory exactly as `sweep` builds it): CLI present, version, credential files,
//! env file, for two providers. fleetauth sends it on the channel's stdin to `sh -s`; every other
//! tool sends it as the remote command (the members' `ForceCommand` wrapper runs that with
//! `sh -c`), which is what `ssh HOST "$script"` and Ansible's `raw` do.
//!
//! Each tool runs as its users run it, with only what a fair comparison needs changed:
//! - OpenSSH: `xargs -P 64` over `ssh -F /dev/null -i KEY` with the lab's known_hosts, strict
//!   host key checking and `BatchMode`; once with OpenSSH's default key exchange (sntrup761x25519
//!   on 9.x) and once with `-o KexAlgorithms=curve25519-sha256` (what fleetauth negotiates).
//! - parallel-ssh: its native (libssh2) `ParallelSSHClient`, pool 64, one attempt
//!   (benches/fleet/pssh_probe.py). It verifies no host keys.
//! - Ansible: `ansible all -m raw -f 64` with the defaults (strict host key checking, `-C`, a
//!   pty) except `ControlMaster=no`: a persistent master would carry connections from one round
//!   into the next and its CPU would escape the accounting (it daemonises).
//!
//! Every tool gets the same deadline for a member that never answers (`ConnectTimeout`, pssh
//! `timeout`, Ansible `timeout`, fleetauth `connect_timeout`) and a clean environment: the lab
//! operator's HOME (its key and known_hosts), a plain PATH, a UTF-8 locale.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::members::{Target, providers};
use crate::support::Lab;

/// Members in flight per tool (fleetauth's default `-j`, xargs `-P`, pssh pool, Ansible forks).
pub const PARALLEL: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    Fleetauth,
    SshDefault,
    SshCurve,
    Pssh,
    Ansible,
    FleetauthDeep,
    ProvisionCheck,
    /// OpenSSH (curve25519) running no probe: what a bare connection costs the member.
    SshCurveBare,
    /// `fleetauth sweep` from another build (`FLEETAUTH_BENCH_ALT=PATH`), to A/B a change.
    FleetauthAlt,
}

impl Tool {
    pub const ALL: [Tool; 9] = [
        Tool::Fleetauth,
        Tool::SshDefault,
        Tool::SshCurve,
        Tool::Pssh,
        Tool::Ansible,
        Tool::FleetauthDeep,
        Tool::ProvisionCheck,
        Tool::SshCurveBare,
        Tool::FleetauthAlt,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Tool::Fleetauth => "fleetauth",
            Tool::SshDefault => "ssh-default",
            Tool::SshCurve => "ssh-curve25519",
            Tool::Pssh => "parallel-ssh",
            Tool::Ansible => "ansible",
            Tool::FleetauthDeep => "fleetauth-deep",
            Tool::ProvisionCheck => "provision-check",
            Tool::SshCurveBare => "ssh-curve25519-bare",
            Tool::FleetauthAlt => "fleetauth-alt",
        }
    }

    pub fn parse(s: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.id() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Tool::Fleetauth => "`fleetauth sweep` (-j 64)",
            Tool::SshDefault => "`xargs -P 64 ssh` (default kex)",
            Tool::SshCurve => "`xargs -P 64 ssh -o KexAlgorithms=curve25519-sha256`",
            Tool::Pssh => "parallel-ssh `ParallelSSHClient` (pool 64)",
            Tool::Ansible => "`ansible -m raw -f 64`",
            Tool::FleetauthDeep => "`fleetauth sweep --deep` (-j 64)",
            Tool::ProvisionCheck => "`fleetauth provision --check` (-j 64)",
            Tool::SshCurveBare => {
                "baseline: `xargs -P 64 ssh -o KexAlgorithms=curve25519-sha256` running only `printf` (no probe)"
            }
            Tool::FleetauthAlt => "`fleetauth sweep` (-j 64), build in $FLEETAUTH_BENCH_ALT",
        }
    }
}

/// Where the tools are.
pub struct Env {
    pub fleetauth: PathBuf,
    /// The Python venv holding parallel-ssh and ansible-core.
    pub venv: PathBuf,
    pub pssh_driver: PathBuf,
}

/// One set of members and the files every tool reads for it.
pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
    pub targets: Vec<Target>,
    /// Members that can answer (targets minus silent ones).
    pub expected: usize,
    /// Deadline for a member that never answers (and fleetauth's command_timeout).
    pub deadline: Duration,
    pub tools: Vec<Tool>,
    pub sshd_pids: Vec<i32>,
    pub script: String,
    /// What Ansible's `raw` and parallel-ssh run: the script gzipped and base64-encoded,
    /// unpacked into `sh` on the member (`echo … | base64 -d | gunzip -c | sh`, 16 kB instead
    /// of 49 kB). Ansible splits `raw`'s argument with its own quoting rules, not a shell's, and
    /// refuses the probe script ("failed at splitting arguments … unbalanced … quotes");
    /// libssh2 (parallel-ssh) gets the 49 kB exec request refused (`InvalidRequestError`): it
    /// must fit a 32 kB packet. Their users would send such a script this way. Still one
    /// connection and one command; the member runs three small processes more.
    pub packed_command: String,
    /// The round-trip time the WAN proxy adds (`--rtt`); None: straight to the members.
    pub rtt: Option<Duration>,
}

impl Scenario {
    /// Write the inventory, host lists and the probe script under `root/NAME/` (each run's
    /// stdout and stderr go to its `out/`, kept after the run for a post-mortem).
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        lab: &Lab,
        root: &Path,
        name: &str,
        targets: Vec<Target>,
        expected: usize,
        deadline: Duration,
        tools: Vec<Tool>,
        sshd_pids: Vec<i32>,
    ) -> Scenario {
        let dir = root.join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("out")).unwrap();
        fs::create_dir_all(dir.join("ansible-tmp")).unwrap();
        for t in &targets {
            assert_eq!(t.port, 22, "the host lists assume port 22 ({})", t.name);
        }
        let secs = deadline.as_secs().max(1);

        let mut inv = format!(
            "[defaults]\nuser = {user:?}\nidentity_file = {key:?}\nknown_hosts = {kh:?}\n\
             providers = [{providers}]\nconnect_timeout = \"{secs}s\"\ncommand_timeout = \"{cmd}s\"\n",
            user = lab.user(),
            key = lab.identity().display().to_string(),
            kh = lab.known_hosts().display().to_string(),
            providers = providers()
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            cmd = secs.max(60),
        );
        let mut hosts = String::new();
        let mut ansible = String::from("[members]\n");
        for t in &targets {
            let _ = write!(inv, "\n[members.{}]\nhost = \"{}\"\n", t.name, t.addr);
            let _ = writeln!(hosts, "{}", t.addr);
            let _ = writeln!(ansible, "{} ansible_host={}", t.name, t.addr);
        }
        let _ = write!(
            ansible,
            "\n[all:vars]\nansible_connection=ssh\nansible_user={}\nansible_ssh_private_key_file={}\n\
             ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes'\n",
            lab.user(),
            lab.identity().display(),
            lab.known_hosts().display()
        );
        fs::write(dir.join("inventory.toml"), &inv).unwrap();
        fs::write(dir.join("hosts.txt"), &hosts).unwrap();
        fs::write(dir.join("ansible.ini"), &ansible).unwrap();
        let script = probe_script(&dir.join("inventory.toml"));
        fs::write(dir.join("probe.sh"), &script).unwrap();
        fs::write(dir.join("probe-packed.sh"), packed(&script)).unwrap();
        Scenario {
            name: name.to_string(),
            dir,
            targets,
            expected,
            deadline,
            tools,
            sshd_pids,
            packed_command: packed(&script),
            script,
            rtt: None,
        }
    }

    pub fn n(&self) -> usize {
        self.targets.len()
    }

    /// The command for `tool`, its stdout and stderr going to files under `out/`.
    pub fn command(&self, lab: &Lab, env: &Env, tool: Tool, round: usize) -> Command {
        let secs = self.deadline.as_secs().max(1).to_string();
        let inv = self.dir.join("inventory.toml");
        let mut cmd = match tool {
            Tool::Fleetauth | Tool::FleetauthDeep | Tool::ProvisionCheck | Tool::FleetauthAlt => {
                let bin = match (tool, std::env::var_os("FLEETAUTH_BENCH_ALT")) {
                    (Tool::FleetauthAlt, Some(alt)) => PathBuf::from(alt),
                    _ => env.fleetauth.clone(),
                };
                // FLEETAUTH_BENCH_PROFILE=DIR: record a CPU profile of every fleetauth run
                // (perf's software cpu-clock event; the figures then include perf's overhead).
                let mut c = match std::env::var_os("FLEETAUTH_BENCH_PROFILE") {
                    Some(dir) => {
                        let data = Path::new(&dir).join(format!(
                            "{}-{}-{round}.perf.data",
                            self.name,
                            tool.id()
                        ));
                        let mut c = Command::new("perf");
                        c.args(["record", "-q", "-e", "cpu-clock", "-F", "4999", "-g", "-o"])
                            .arg(data)
                            .arg("--")
                            .arg(&bin);
                        c
                    }
                    None => Command::new(&bin),
                };
                match tool {
                    Tool::ProvisionCheck => c.args(["provision", "--check"]),
                    _ => c.arg("sweep"),
                };
                if tool == Tool::FleetauthDeep {
                    c.arg("--deep");
                }
                c.arg("-i")
                    .arg(&inv)
                    .args(["--no-input", "-j", &PARALLEL.to_string()]);
                c
            }
            Tool::SshDefault | Tool::SshCurve | Tool::SshCurveBare => {
                let mut c = Command::new("xargs");
                c.arg("-a").arg(self.dir.join("hosts.txt")).args([
                    "-P",
                    &PARALLEL.to_string(),
                    "-I",
                    "@HOST@",
                ]);
                if self.expected < self.n() {
                    // GNU xargs exits at once when a command exits 255 (how ssh reports a
                    // member it could not reach), leaving the other ssh running unwaited: with
                    // hung members each ssh goes through `sh -c`.
                    c.args(["sh", "-c", r#"ssh "$@" || exit 1"#]);
                }
                c.arg("ssh");
                for opt in lab.client_options() {
                    if opt.starts_with("ConnectTimeout=") {
                        c.arg(format!("ConnectTimeout={secs}"));
                    } else {
                        c.arg(opt);
                    }
                }
                if tool != Tool::SshDefault {
                    c.args(["-o", "KexAlgorithms=curve25519-sha256"]);
                }
                c.args(["-n", "-l", lab.user(), "@HOST@"]);
                if tool == Tool::SshCurveBare {
                    // A shell builtin: the member runs its login path and nothing else.
                    c.arg(r"printf '@@FA\t-\tdone\t1\n'");
                } else {
                    c.arg(&self.script);
                }
                c
            }
            Tool::Pssh => {
                let mut c = Command::new(env.venv.join("bin/python"));
                c.arg(&env.pssh_driver)
                    .arg(self.dir.join("hosts.txt"))
                    .arg(lab.user())
                    .arg(lab.identity())
                    .arg(self.dir.join("probe-packed.sh"))
                    .arg(&secs)
                    .arg(PARALLEL.to_string());
                c
            }
            Tool::Ansible => {
                let mut c = Command::new(env.venv.join("bin/ansible"));
                c.args(["all", "-i"])
                    .arg(self.dir.join("ansible.ini"))
                    .args(["-m", "raw", "-f", &PARALLEL.to_string(), "-a"])
                    .arg(&self.packed_command)
                    .env("ANSIBLE_HOST_KEY_CHECKING", "True")
                    .env("ANSIBLE_SSH_ARGS", "-C -o ControlMaster=no")
                    .env("ANSIBLE_TIMEOUT", &secs)
                    .env("ANSIBLE_LOCAL_TEMP", self.dir.join("ansible-tmp"))
                    .env("ANSIBLE_HOME", self.dir.join("ansible-home"))
                    .env("ANSIBLE_NOCOLOR", "1")
                    .env("ANSIBLE_DEPRECATION_WARNINGS", "False");
                c
            }
        };
        let path = format!("{}:/usr/bin:/bin", env.venv.join("bin").display());
        cmd.env_clear_keep(&[
            ("HOME", lab.operator_home().display().to_string()),
            ("FLEETAUTH_HOME", lab.fleetauth_home().display().to_string()),
            ("XDG_CONFIG_HOME", lab.config_home().display().to_string()),
            ("PATH", path),
            ("LANG", "C.UTF-8".into()),
            ("LC_ALL", "C.UTF-8".into()),
        ]);
        // FLEETAUTH_BENCH_RUST_LOG=russh=debug: fleetauth's (and russh's) log, with
        // timestamps, in each fleetauth run's .err file (to line up with `--trace`).
        if let Some(filter) = std::env::var_os("FLEETAUTH_BENCH_RUST_LOG")
            && matches!(
                tool,
                Tool::Fleetauth | Tool::FleetauthDeep | Tool::ProvisionCheck | Tool::FleetauthAlt
            )
        {
            cmd.env("RUST_LOG", filter);
        }
        let (out, err) = self.output_files(tool, round);
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(out).unwrap())
            .stderr(fs::File::create(err).unwrap());
        cmd
    }

    pub fn output_files(&self, tool: Tool, round: usize) -> (PathBuf, PathBuf) {
        let base = self.dir.join("out").join(format!("{}-{round}", tool.id()));
        (base.with_extension("out"), base.with_extension("err"))
    }

    /// How many members the run fully probed, from what the tool printed.
    pub fn completed(&self, tool: Tool, round: usize) -> usize {
        let (out, _) = self.output_files(tool, round);
        let text = String::from_utf8_lossy(&fs::read(out).unwrap_or_default()).into_owned();
        match tool {
            Tool::Fleetauth | Tool::FleetauthDeep | Tool::ProvisionCheck | Tool::FleetauthAlt => {
                fleetauth_answered(&text) / providers().len()
            }
            Tool::SshDefault | Tool::SshCurve | Tool::SshCurveBare | Tool::Ansible => {
                // Records carry the script's nonce after `@@FA`.
                text.matches("\t-\tdone\t1").count()
            }
            Tool::Pssh => text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("done="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }
}

/// Rows neither `unreachable` nor `error`, from the table's summary line
/// (`N members, R rows: a ready, b needs_auth, c not_installed, d unreachable, e error`).
fn fleetauth_answered(text: &str) -> usize {
    let Some(line) = text.lines().rev().find(|l| l.contains(" rows: ")) else {
        return 0;
    };
    let number_before = |word: &str| -> usize {
        line.split(", ")
            .flat_map(|part| part.split(": "))
            .find_map(|part| {
                let (n, w) = part.trim().split_once(' ')?;
                (w == word).then(|| n.parse().ok()).flatten()
            })
            .unwrap_or(0)
    };
    number_before("rows")
        .saturating_sub(number_before("unreachable"))
        .saturating_sub(number_before("error"))
}

/// `script` as a command that unpacks it into `sh`: see [`Scenario::packed_command`].
fn packed(script: &str) -> String {
    use std::io::Write as _;
    let mut gzip = Command::new("gzip")
        .args(["-n", "-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    gzip.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .expect("feed gzip");
    let out = gzip.wait_with_output().expect("gzip");
    assert!(out.status.success(), "gzip failed");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, out.stdout);
    format!("echo {b64} | base64 -d | gunzip -c | sh")
}

/// fleetauth's probe script for the first member of `inventory`, built as `sweep` builds it.
fn probe_script(inventory: &Path) -> String {
    let registry = fleetauth::provider::Registry::builtin().expect("built-in providers");
    let inv = fleetauth::inventory::load(inventory, &registry.names()).expect("bench inventory");
    let member = &inv.members[0];
    fleetauth::probe::build_script(&fleetauth::sweep::probe_request(member, &registry, false))
        .text()
        .to_string()
}

trait EnvClearKeep {
    fn env_clear_keep(&mut self, vars: &[(&str, String)]) -> &mut Self;
}

impl EnvClearKeep for Command {
    /// A clean environment with exactly `vars` plus what was set with `.env` before.
    fn env_clear_keep(&mut self, vars: &[(&str, String)]) -> &mut Self {
        let set: Vec<(String, String)> = self
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        self.env_clear();
        for (k, v) in vars {
            self.env(k, v);
        }
        for (k, v) in set {
            self.env(k, v);
        }
        self
    }
}
