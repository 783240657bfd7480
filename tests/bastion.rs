//! Jump hosts (ProxyJump) with real sshds in private network namespaces (`support::netns`):
//! members that only a bastion can reach are swept and provisioned through it, one and two hops
//! deep, as `ssh -F CONFIG HOST` reaches them; members share connections to a bastion; a bastion
//! that is down, refuses the key or refuses forwarding makes its members unreachable, naming
//! the hop.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::netns::Networks;
use support::{Lab, Member, State, fake};

/// The members of one bastion test, and the ssh_config that routes them.
struct Fleet {
    lab: Lab,
    jump1: Member,
    jump2: Member,
    /// Behind jump1 (the outer namespace's loopback).
    behind1: Vec<Member>,
    /// Behind jump2 (the inner namespace's loopback), two hops away.
    behind2: Vec<Member>,
    config: PathBuf,
    inventory: PathBuf,
    // Dropped last: the namespaces outlive the sshds in them.
    nets: Networks,
}

/// `Host` blocks for the two bastions, then everything else with the lab's key and known_hosts.
/// c1 is reached through jump2, whose own ProxyJump is jump1 (nested); c2's inventory names
/// the chain `jump1,jump2`; b3 is reached through a `Host` alias carrying the ProxyJump.
fn fleet(jump1_options: &[&str]) -> Fleet {
    let nets = Networks::new();
    let lab = Lab::new();
    let mut jump1 = lab
        .member("jump1")
        .in_netns(&nets.outer)
        .listen_on(nets.outer_addr());
    for option in jump1_options {
        jump1 = jump1.sshd_option(option);
    }
    let jump1 = jump1.start();
    let jump2 = lab
        .member("jump2")
        .in_netns(&nets.inner)
        .listen_on(nets.inner_addr())
        .start();
    let behind = |name: &str, ns: &str, state: State| {
        lab.member(name)
            .in_netns(ns)
            .provider("gemini", state)
            .start()
    };
    let behind1 = vec![
        behind("b1", &nets.outer, State::EnvKey),
        behind("b2", &nets.outer, State::NoAuth),
        behind("b3", &nets.outer, State::NoAuth),
    ];
    let behind2 = vec![
        behind("c1", &nets.inner, State::NoAuth),
        behind("c2", &nets.inner, State::EnvKey),
    ];
    let user = lab.user().to_string();
    let config = lab.dir().join("ssh_config");
    write_config(&lab, &nets, &behind1[2], &config, &lab.identity());
    let inventory = lab.dir().join("bastion.toml");
    std::fs::write(
        &inventory,
        format!(
            "[defaults]\nuser = \"{user}\"\nidentity_file = \"{id}\"\nknown_hosts = \"{kh}\"\n\
             providers = [\"gemini\"]\nssh_config = \"{cfg}\"\nprobe_timeout = \"10s\"\n\
             [members.b1]\nhost = \"{b1}\"\nproxy_jump = \"jump1\"\n\
             [members.b2]\nhost = \"{b2}\"\nproxy_jump = \"jump1\"\n\
             [members.b3]\nhost = \"alias-b3\"\n\
             [members.c1]\nhost = \"{c1}\"\nproxy_jump = \"jump2\"\n\
             [members.c2]\nhost = \"{c2}\"\nproxy_jump = \"jump1,jump2\"\n",
            id = lab.identity().display(),
            kh = lab.known_hosts().display(),
            cfg = config.display(),
            b1 = behind1[0].addr(),
            b2 = behind1[1].addr(),
            c1 = behind2[0].addr(),
            c2 = behind2[1].addr(),
        ),
    )
    .unwrap();
    Fleet {
        lab,
        jump1,
        jump2,
        behind1,
        behind2,
        config,
        inventory,
        nets,
    }
}

/// The fleet's ssh_config: jump1 logs in with `jump1_identity`, everything else with the lab's
/// key; all with the lab's known_hosts, strictly.
fn write_config(lab: &Lab, nets: &Networks, b3: &Member, path: &Path, jump1_identity: &Path) {
    let common = format!(
        "  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n\
         \x20 StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n",
        kh = lab.known_hosts().display(),
    );
    let user = lab.user();
    std::fs::write(
        path,
        format!(
            "Host jump1\n  HostName {j1}\n  User {user}\n  IdentityFile {j1_id}\n{common}\
             Host jump2\n  HostName {j2}\n  User {user}\n  ProxyJump jump1\n\
             Host alias-b3\n  HostName {b3}\n  ProxyJump jump1\n\
             Host * !jump1\n  IdentityFile {id}\n{common}",
            j1 = nets.outer_addr(),
            j2 = nets.inner_addr(),
            b3 = b3.addr(),
            j1_id = jump1_identity.display(),
            id = lab.identity().display(),
        ),
    )
    .unwrap();
}

/// `ssh -F config [-J jumps] USER@HOST true` with OpenSSH: the reference for what is reachable.
fn openssh_reaches(config: &Path, jumps: Option<&str>, user: &str, host: &str) -> bool {
    ssh_true(config, jumps, user, host, 3).code == Some(0)
}

/// `ssh … true` must succeed: a loaded machine gets a generous connect timeout (the
/// negative check above keeps its short one), and a failure shows what ssh said.
fn assert_openssh_reaches(config: &Path, jumps: Option<&str>, user: &str, host: &str) {
    let out = ssh_true(config, jumps, user, host, 30);
    assert_eq!(out.code, Some(0), "OpenSSH -J {jumps:?} {host}: {out}");
}

fn ssh_true(
    config: &Path,
    jumps: Option<&str>,
    user: &str,
    host: &str,
    connect_timeout: u32,
) -> support::Output {
    let mut cmd = Command::new("ssh");
    cmd.arg("-F").arg(config);
    if let Some(j) = jumps {
        cmd.args(["-J", j]);
    }
    cmd.args(["-o", &format!("ConnectTimeout={connect_timeout}")])
        .arg(format!("{user}@{host}"))
        .arg("true");
    support::capture(cmd, None, Duration::from_secs(90))
}

fn accepted_logins(member: &Member) -> usize {
    member.sshd_log().matches("Accepted publickey").count()
}

#[test]
fn members_behind_bastions_are_swept_and_provisioned_through_them() {
    let f = fleet(&[]);
    let (lab, user) = (&f.lab, f.lab.user());
    let inv = f.inventory.to_str().unwrap();

    // The reference: OpenSSH reaches every member only through the bastions.
    for m in &f.behind1 {
        assert!(
            !openssh_reaches(&f.config, Some("none"), user, &m.addr().to_string()),
            "{} must not be reachable directly",
            m.name()
        );
        assert_openssh_reaches(&f.config, Some("jump1"), user, &m.addr().to_string());
    }
    assert_openssh_reaches(&f.config, None, user, "alias-b3");
    for m in &f.behind2 {
        assert_openssh_reaches(&f.config, Some("jump2"), user, &m.addr().to_string());
    }
    let (j1_before, j2_before) = (accepted_logins(&f.jump1), accepted_logins(&f.jump2));

    // inventory check shows each chain, first hop first.
    let check = lab.fleetauth(&["inventory", "check", "-i", inv, "--format", "json"]);
    check.assert_exit(0);
    let listed = check.json();
    let chain = |i: usize| -> Vec<String> {
        listed["members"][i]["jumps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["host"].as_str().unwrap().to_string())
            .collect()
    };
    let (j1, j2) = (f.jump1.addr().to_string(), f.jump2.addr().to_string());
    assert_eq!(chain(0), std::slice::from_ref(&j1), "{listed}");
    assert_eq!(
        chain(2),
        std::slice::from_ref(&j1),
        "the alias's ProxyJump: {listed}"
    );
    assert_eq!(chain(3), [j1.clone(), j2.clone()], "nested: {listed}");
    assert_eq!(
        chain(4),
        [j1.clone(), j2.clone()],
        "explicit chain: {listed}"
    );

    let sweep = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    for (name, state) in [
        ("b1", "ready"),
        ("b2", "needs_auth"),
        ("b3", "needs_auth"),
        ("c1", "needs_auth"),
        ("c2", "ready"),
    ] {
        assert_eq!(sweep.row(name, "gemini")["state"], state, "{name}\n{sweep}");
    }
    // One connection to each bastion carried every member behind it (jump1 also carried the
    // connection to jump2).
    assert_eq!(
        accepted_logins(&f.jump1) - j1_before,
        1,
        "{}",
        f.jump1.sshd_log()
    );
    assert_eq!(
        accepted_logins(&f.jump2) - j2_before,
        1,
        "{}",
        f.jump2.sshd_log()
    );

    // Provision the members that need a key, through the same bastions.
    let key = fake::gemini_key();
    let out = lab
        .run(&["provision", "-i", inv, "--format", "json", "--no-input"])
        .env("GEMINI_API_KEY", &key)
        .output();
    out.assert_exit(0).assert_no_secret(&key);
    for m in [&f.behind1[1], &f.behind1[2], &f.behind2[0]] {
        let row = out.row(m.name(), "gemini");
        assert_eq!(
            (row["state"].as_str(), row["action"].as_str()),
            (Some("ready"), Some("pushed")),
            "{}: {row}",
            m.name()
        );
        assert!(m.env_file_contents().contains(&key), "{}", m.name());
    }
    for m in [&f.behind1[0], &f.behind2[1]] {
        assert_eq!(out.row(m.name(), "gemini")["action"], "none");
        assert!(!m.env_file_contents().contains(&key));
    }
}

#[test]
fn a_failing_bastion_makes_its_members_unreachable_naming_the_hop() {
    // jump1 refuses forwarding: its members are unreachable (reason jump), named by the hop.
    let f = fleet(&["AllowTcpForwarding no"]);
    let inv = f.inventory.to_str().unwrap();
    let sweep = f.lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    sweep.assert_exit(1);
    for name in ["b1", "b2", "b3", "c1", "c2"] {
        let row = sweep.row(name, "gemini");
        assert_eq!(row["state"], "unreachable", "{row}");
        assert_eq!(row["reason"], "jump", "{row}");
        let detail = row["detail"].as_str().unwrap();
        assert!(
            detail.contains("jump host jump1") && detail.contains("refuses to forward"),
            "{detail}"
        );
    }

    // The bastion refuses the key: a separate inventory pointing jump1 at a key it does not
    // accept (ssh_config's first IdentityFile).
    let config = f.lab.dir().join("ssh_config_badkey");
    write_config(
        &f.lab,
        &f.nets,
        &f.behind1[2],
        &config,
        &f.lab.unauthorized_identity(),
    );
    let inv_text = std::fs::read_to_string(&f.inventory).unwrap().replace(
        &f.config.display().to_string(),
        &config.display().to_string(),
    );
    let bad_key_inv = f.lab.dir().join("badkey.toml");
    std::fs::write(&bad_key_inv, inv_text).unwrap();
    let sweep = f.lab.fleetauth(&[
        "sweep",
        "-i",
        bad_key_inv.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let row = sweep.row("b1", "gemini");
    assert_eq!(row["reason"], "jump", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.contains("jump host jump1") && detail.contains("authentication failed"),
        "{detail}"
    );

    // The bastion is down: every member behind it fails, naming it.
    f.jump1.stop();
    let sweep = f.lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    for name in ["b1", "b2", "b3", "c1", "c2"] {
        let row = sweep.row(name, "gemini");
        assert_eq!(row["reason"], "jump", "{row}");
        assert!(
            row["detail"].as_str().unwrap().contains("jump host jump1"),
            "{row}"
        );
    }
}

/// The fleet's members as transport targets, resolved with its ssh_config.
fn targets(f: &Fleet) -> Vec<fleetauth::ssh::Target> {
    let text = std::fs::read_to_string(&f.inventory).unwrap();
    let inv = fleetauth::inventory::parse(&text, &f.inventory, &["gemini"]).unwrap();
    let mut members = inv.members.clone();
    fleetauth::openssh_config::apply(
        members.iter_mut().map(|m| &mut m.ssh),
        &inv.ssh_config,
        None,
        &f.inventory,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    members.iter().map(|m| m.target()).collect()
}

/// With room for two members per bastion connection, the four channels jump1 carries at once
/// (b1, b2, b3 and the tunnel to jump2) take two connections; jump2's two members take one.
#[tokio::test(flavor = "multi_thread")]
async fn a_bastion_connection_carries_at_most_jump_channels_members() {
    use fleetauth::ssh::{Input, RusshTransport, Transport, TransportOptions};
    let f = fleet(&[]);
    let targets = targets(&f);
    let transport = RusshTransport::new(
        &targets,
        TransportOptions {
            agent_socket: None,
            global_known_hosts: None,
            jump_channels: 2,
            ..TransportOptions::default()
        },
    )
    .unwrap();
    let (j1_before, j2_before) = (accepted_logins(&f.jump1), accepted_logins(&f.jump2));
    let sessions = futures::future::join_all(targets.iter().map(|t| transport.connect(t))).await;
    let mut open = Vec::new();
    for (t, session) in targets.iter().zip(sessions) {
        let session = session.unwrap_or_else(|e| panic!("{}: {e}", t.name));
        let out = session
            .exec("echo here", Input::None, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "here",
            "{}",
            t.name
        );
        open.push(session);
    }
    assert_eq!(
        accepted_logins(&f.jump1) - j1_before,
        2,
        "{}",
        f.jump1.sshd_log()
    );
    assert_eq!(
        accepted_logins(&f.jump2) - j2_before,
        1,
        "{}",
        f.jump2.sshd_log()
    );
}

/// Each hop's host key is checked on its own: jump2's key missing from known_hosts makes the
/// members behind it unreachable (reason jump, host key named), while jump1's members are fine.
#[test]
fn each_hop_has_its_own_host_key_check() {
    let f = fleet(&[]);
    let known = std::fs::read_to_string(f.lab.known_hosts()).unwrap();
    let without_jump2: String = known
        .lines()
        .filter(|l| !l.starts_with(&format!("{} ", f.jump2.addr())))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(known, without_jump2, "jump2 had a known_hosts line");
    std::fs::write(f.lab.known_hosts(), without_jump2).unwrap();
    let sweep = f.lab.fleetauth(&[
        "sweep",
        "-i",
        f.inventory.to_str().unwrap(),
        "--format",
        "json",
    ]);
    for name in ["c1", "c2"] {
        let row = sweep.row(name, "gemini");
        assert_eq!(row["reason"], "jump", "{row}");
        let detail = row["detail"].as_str().unwrap();
        assert!(
            detail.contains("jump host jump2") && detail.contains("not in known_hosts"),
            "{detail}"
        );
    }
    assert_eq!(sweep.row("b2", "gemini")["state"], "needs_auth", "{sweep}");
}

/// The same fleet as an Ansible YAML inventory (ProxyJump in `ansible_ssh_common_args`, the
/// two-hop chain in one host's `ansible_ssh_extra_args`) gives the same rows as the TOML one.
#[test]
fn an_ansible_inventory_reaches_the_same_members_through_the_same_bastions() {
    let f = fleet(&[]);
    let (lab, user) = (&f.lab, f.lab.user());
    let yaml = lab.dir().join("bastion.yml");
    std::fs::write(
        &yaml,
        format!(
            "all:\n  vars:\n    ansible_user: {user}\n    ansible_ssh_private_key_file: {id}\n\
             \x20   fleetauth_known_hosts: {kh}\n    fleetauth_providers: gemini\n\
             \x20   fleetauth_probe_timeout: 10s\n\
             \x20 children:\n    outer:\n      vars:\n        ansible_ssh_common_args: -o ProxyJump=jump1\n\
             \x20     hosts:\n        b1: {{ansible_host: \"{b1}\"}}\n        b2: {{ansible_host: \"{b2}\"}}\n\
             \x20       alias-b3:\n    inner:\n      hosts:\n\
             \x20       c1: {{ansible_host: \"{c1}\", ansible_ssh_common_args: -J jump2}}\n\
             \x20       c2: {{ansible_host: \"{c2}\", ansible_ssh_extra_args: \"-J jump1,jump2\"}}\n",
            id = lab.identity().display(),
            kh = lab.known_hosts().display(),
            b1 = f.behind1[0].addr(),
            b2 = f.behind1[1].addr(),
            c1 = f.behind2[0].addr(),
            c2 = f.behind2[1].addr(),
        ),
    )
    .unwrap();
    let (yaml, cfg) = (yaml.to_str().unwrap(), f.config.to_str().unwrap());
    let toml = f.inventory.to_str().unwrap();
    let states = |out: &support::Output, names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| out.row(n, "gemini")["state"].as_str().unwrap().to_string())
            .collect()
    };
    let from_yaml = lab.fleetauth(&["sweep", "-i", yaml, "-F", cfg, "--format", "json"]);
    let from_toml = lab.fleetauth(&["sweep", "-i", toml, "--format", "json"]);
    assert_eq!(
        states(&from_yaml, &["b1", "b2", "alias-b3", "c1", "c2"]),
        states(&from_toml, &["b1", "b2", "b3", "c1", "c2"]),
        "{from_yaml}"
    );
    assert_eq!(
        states(&from_yaml, &["b1", "b2", "alias-b3", "c1", "c2"]),
        ["ready", "needs_auth", "needs_auth", "needs_auth", "ready"],
        "{from_yaml}"
    );
}
