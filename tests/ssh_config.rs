//! ssh_config support: the `ssh -G` oracle over the corpus in tests/fixtures/ssh_config/, and
//! real sshd members reached through `Host` aliases (`-F`) and through a default identity.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fleetauth::inventory::{self, Member};
use fleetauth::openssh_config::{self, Local};
use fleetauth::ssh::{Agent, HostKeyChecking};
use support::{Lab, State};

/// The corpus copied into `dir` with `@DIR@` replaced, and a key file for `web-01`.
fn corpus(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssh_config");
    for name in ["main.cfg", "included.cfg", "proxycommand.cfg"] {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        std::fs::write(
            dir.join(name),
            text.replace("@DIR@", &dir.display().to_string()),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/id_web-01.example.test"), "not read here").unwrap();
    dir.join("main.cfg")
}

/// `ssh -G` for `host`, as key → values (the oracle).
fn ssh_g(config: &Path, host: &str, user: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-G").arg("-F").arg(config);
    if let Some(user) = user {
        cmd.args(["-l", user]);
    }
    let out = cmd
        .arg(host)
        .output()
        .expect("OpenSSH's ssh must be installed");
    assert!(out.status.success(), "{out:?}");
    openssh_config::parse_dump(&String::from_utf8_lossy(&out.stdout))
}

/// Load `inventory` text and resolve it with `config` (as `-F`).
fn resolve(text: &str, config: &Path) -> Vec<Member> {
    let inv = inventory::parse(text, Path::new("inv.toml"), &["claude"]).unwrap();
    let mut members = inv.members.clone();
    let warnings = openssh_config::apply(
        members.iter_mut().map(|m| &mut m.ssh),
        &inv.ssh_config,
        Some(config),
        Path::new("inv.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    members
}

const HOSTS: &[&str] = &[
    "web-01", "web-bad", "alias-m1", "a.lab", "jumped", "first", "inc-x", "plain",
];

#[test]
fn resolution_agrees_with_ssh_g_over_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let config = corpus(dir.path());
    let mut text = String::from("[defaults]\nproviders = [\"claude\"]\n");
    for (i, host) in HOSTS.iter().enumerate() {
        text.push_str(&format!("[members.m{i}]\nhost = \"{host}\"\n"));
    }
    // Inventory `user` is passed to `ssh -G`: `Match host … user special` sees it.
    text.push_str("[members.special]\nhost = \"127.0.0.2\"\nuser = \"special\"\n");
    let members = resolve(&text, &config);
    let local = Local::from_process();

    for m in &members {
        let original = if m.name == "special" {
            "127.0.0.2"
        } else {
            HOSTS[m.name[1..].parse::<usize>().unwrap()]
        };
        let user = (m.name == "special").then_some("special");
        let g = ssh_g(&config, original, user);
        let defaults = ssh_g(Path::new("/dev/null"), original, user);
        let one = |k: &str| g[k][0].clone();
        let t = &m.ssh;
        let ctx = format!("member {} (host {original}): {t:?}", m.name);
        assert_eq!(t.host, one("hostname"), "{ctx}");
        assert_eq!(t.port.to_string(), one("port"), "{ctx}");
        assert_eq!(t.user, one("user"), "{ctx}");
        // Identities: the config's IdentityFiles that exist, tokens expanded; none when the
        // config names none (then fleetauth's own rules apply).
        let want_ids: Vec<PathBuf> = if g["identityfile"] == defaults["identityfile"] {
            Vec::new()
        } else {
            g["identityfile"]
                .iter()
                .map(|f| {
                    openssh_config::expand(f, &local, &t.host, original, &t.user, t.port).unwrap()
                })
                .filter(|p| p.is_file())
                .collect()
        };
        assert_eq!(t.identities, want_ids, "{ctx}");
        assert_eq!(t.identities_only, one("identitiesonly") == "yes", "{ctx}");
        let known: Vec<&str> = g["userknownhostsfile"][0].split_whitespace().collect();
        assert_eq!(t.known_hosts, PathBuf::from(known[0]), "{ctx}");
        let mode = match one("stricthostkeychecking").as_str() {
            "yes" | "true" | "ask" => HostKeyChecking::Strict,
            "accept-new" => HostKeyChecking::AcceptNew,
            _ => HostKeyChecking::Off,
        };
        assert_eq!(t.host_key_checking, mode, "{ctx}");
        let timeout = match one("connecttimeout").as_str() {
            "none" => Duration::from_secs(10),
            s => Duration::from_secs(s.parse().unwrap()),
        };
        assert_eq!(t.connect_timeout, timeout, "{ctx}");
        assert_eq!(
            t.proxy_jump,
            g.get("proxyjump").map(|v| v[0].clone()),
            "{ctx}"
        );
        assert_eq!(
            t.host_key_alias,
            g.get("hostkeyalias").map(|v| v[0].clone()),
            "{ctx}"
        );
        let alive = match one("serveraliveinterval").as_str() {
            "0" => None,
            secs => Some((
                Duration::from_secs(secs.parse().unwrap()),
                one("serveralivecountmax").parse().unwrap(),
            )),
        };
        assert_eq!(t.server_alive, alive, "{ctx}");
        let agent = match g.get("identityagent").map(|v| v[0].as_str()) {
            None => Agent::Default,
            Some("none") => Agent::Disabled,
            Some(path) => Agent::Socket(PathBuf::from(path)),
        };
        assert_eq!(t.agent, agent, "{ctx}");
        // Each jump host is resolved as `ssh -G HOP` resolves it.
        for hop in &t.jumps {
            let h = ssh_g(&config, &hop.name, None);
            assert_eq!(
                (hop.host.clone(), hop.port.to_string(), hop.user.clone()),
                (
                    h["hostname"][0].clone(),
                    h["port"][0].clone(),
                    h["user"][0].clone()
                ),
                "{ctx}: hop {}",
                hop.name
            );
        }
    }

    // Specific values, so the oracle is not only fleetauth agreeing with itself.
    let by = |name: &str| &members.iter().find(|m| m.name == name).unwrap().ssh;
    let web = by("m0");
    assert_eq!(
        (web.host.as_str(), web.user.as_str(), web.port),
        ("web-01.example.test", "webop", 22)
    );
    assert_eq!(
        web.identities,
        [dir.path().join("keys/id_web-01.example.test")],
        "%h expanded; the missing IdentityFile is dropped"
    );
    assert!(web.identities_only, "Match all");
    assert_eq!(
        by("m1").host,
        "10.9.9.9",
        "negation: web-bad is not a web-*"
    );
    assert_eq!((by("m2").host.as_str(), by("m2").port), ("127.0.0.1", 2201));
    let lab = by("m3");
    assert_eq!(lab.port, 2022);
    assert_eq!(lab.host_key_checking, HostKeyChecking::AcceptNew);
    assert_eq!(lab.known_hosts, dir.path().join("kh1"));
    assert_eq!(lab.other_known_hosts[0], dir.path().join("kh2"));
    assert_eq!(lab.connect_timeout, Duration::from_secs(3));
    assert_eq!(
        lab.certificate_files,
        [dir.path().join("keys/root-cert.pub")]
            .map(|p| p.to_string_lossy().replace("root", &lab.user))
            .map(PathBuf::from)
    );
    let jumped = by("m4");
    assert_eq!(jumped.proxy_jump.as_deref(), Some("bastion.lab"));
    assert_eq!(jumped.agent, Agent::Disabled);
    assert_eq!(
        (jumped.jumps[0].host.as_str(), jumped.jumps[0].port),
        ("bastion.lab", 2022),
        "the hop matches `Host *.lab`"
    );
    assert_eq!(lab.server_alive, Some((Duration::from_secs(20), 4)));
    assert_eq!(
        lab.agent,
        Agent::Socket(dir.path().join(format!("agent-{}.sock", lab.user)))
    );
    assert_eq!(jumped.host_key_alias.as_deref(), Some("jumped-key"));
    assert_eq!(jumped.known_hosts_name(), ("jumped-key", 22));
    assert_eq!(jumped.host_key_checking, HostKeyChecking::Off);
    assert_eq!(
        (by("m5").port, by("m5").user.as_str()),
        (1111, "u1"),
        "first value wins"
    );
    let inc = by("m6");
    assert_eq!(
        (inc.host.as_str(), inc.port, inc.user.as_str()),
        ("127.0.0.3", 2203, "incuser"),
        "Include"
    );
    assert!(
        inc.identities.is_empty(),
        "a missing IdentityFile is not used"
    );
    assert_eq!(by("m7").host, "plain");
    assert_eq!(
        by("special").port,
        2299,
        "Match user sees the inventory's user"
    );
}

#[test]
fn inventory_values_override_ssh_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = corpus(dir.path());
    let text = format!(
        "[defaults]\nproviders = [\"claude\"]\nconnect_timeout = \"42s\"\n\
         [members.a]\nhost = \"a.lab\"\nport = 9\nuser = \"inv\"\n\
         known_hosts = \"{d}/inv_kh\"\nhost_key_checking = \"strict\"\n\
         [members.w]\nhost = \"web-01\"\nidentity_file = \"{d}/inv_key\"\n",
        d = dir.path().display()
    );
    let members = resolve(&text, &config);
    let a = &members[0].ssh;
    assert_eq!((a.port, a.user.as_str()), (9, "inv"));
    assert_eq!(a.known_hosts, dir.path().join("inv_kh"));
    assert_eq!(a.host_key_checking, HostKeyChecking::Strict);
    assert_eq!(a.connect_timeout, Duration::from_secs(42));
    let w = &members[1].ssh;
    assert_eq!(w.host, "web-01.example.test", "HostName still applies");
    assert_eq!(w.identities, [dir.path().join("inv_key")]);
    assert_eq!(w.user, "webop");

    // ssh_config = "none" in the inventory: the file is not read (without -F).
    let text = "[members.w]\nhost = \"web-01\"\nproviders = [\"claude\"]\nssh_config = \"none\"\n";
    let inv = inventory::parse(text, Path::new("inv.toml"), &["claude"]).unwrap();
    let mut members = inv.members.clone();
    openssh_config::apply(
        members.iter_mut().map(|m| &mut m.ssh),
        &inv.ssh_config,
        None,
        Path::new("inv.toml"),
    )
    .unwrap();
    assert_eq!(members[0].ssh.host, "web-01");
}

#[test]
fn proxycommand_is_refused_and_a_missing_ssh_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let config = dir.path().join("proxycommand.cfg");
    let text = "[members.p]\nhost = \"pc\"\nproviders = [\"claude\"]\n";
    let inv = inventory::parse(text, Path::new("inv.toml"), &["claude"]).unwrap();
    let mut members = inv.members.clone();
    let e = openssh_config::apply(
        members.iter_mut().map(|m| &mut m.ssh),
        &inv.ssh_config,
        Some(&config),
        Path::new("inv.toml"),
    )
    .unwrap_err();
    assert!(e.message.contains("ProxyCommand is not supported"), "{e}");

    let warnings = openssh_config::apply_with(
        members.iter_mut().map(|m| &mut m.ssh),
        &inv.ssh_config,
        Some(&config),
        Path::new("inv.toml"),
        Path::new("/nonexistent/ssh"),
        &Local::from_process(),
    )
    .unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("ssh_config is ignored"),
        "{warnings:?}"
    );
    assert_eq!(members[0].ssh.host, "pc");
}

/// Members named only by `Host` aliases of a config passed with `-F`: HostName, Port, User,
/// IdentityFile and UserKnownHostsFile all come from it. A ProxyJump member is unreachable
/// with a clear message, without being contacted.
#[test]
fn sweep_reaches_members_named_by_ssh_config_aliases() {
    let lab = Lab::new();
    let one = lab.member("one").provider("claude", State::NoAuth).start();
    let two = lab.member("two").provider("claude", State::NoAuth).start();
    let mut config = String::new();
    for m in [&one, &two] {
        config.push_str(&format!(
            "Host alias-{}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
            m.name(),
            m.addr(),
            m.port(),
            lab.user(),
            lab.identity().display(),
            lab.known_hosts().display()
        ));
    }
    config.push_str("Host behind\n  HostName 127.0.0.1\n  ProxyJump nowhere.invalid\n");
    let config_path = lab.dir().join("ssh_config");
    std::fs::write(&config_path, config).unwrap();
    let inv_path = lab.dir().join("aliases.toml");
    std::fs::write(
        &inv_path,
        "[defaults]\nproviders = [\"claude\"]\n\
         [members.one]\nhost = \"alias-one\"\n\
         [members.two]\nhost = \"alias-two\"\n\
         [members.behind]\nhost = \"behind\"\n",
    )
    .unwrap();
    let (cfg, inv) = (config_path.to_str().unwrap(), inv_path.to_str().unwrap());

    let check = lab.fleetauth(&[
        "inventory",
        "check",
        "-i",
        inv,
        "-F",
        cfg,
        "--format",
        "json",
    ]);
    check.assert_exit(0);
    let listed: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let first = &listed["members"][0];
    assert_eq!(first["host"], one.addr().to_string(), "{listed}");
    assert_eq!(first["port"], one.port());
    assert_eq!(first["identities"][0], lab.identity().display().to_string());
    assert_eq!(listed["members"][2]["proxy_jump"], "nowhere.invalid");
    assert_eq!(
        listed["members"][2]["jumps"][0]["host"], "nowhere.invalid",
        "{listed}"
    );
    let table = lab.fleetauth(&["inventory", "check", "-i", inv, "-F", cfg]);
    table.assert_exit(0);
    assert!(table.stdout.contains("@nowhere.invalid:22"), "{table}");

    let sweep = lab.fleetauth(&["sweep", "-i", inv, "-F", cfg, "--format", "json"]);
    for name in ["one", "two"] {
        let row = sweep.row(name, "claude");
        assert_eq!(row["state"], "needs_auth", "{name}: {row}\n{sweep}");
    }
    let behind = sweep.row("behind", "claude");
    assert_eq!(behind["state"], "unreachable", "{behind}");
    assert_eq!(behind["reason"], "jump", "{behind}");
    assert!(
        behind["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("jump host {}@nowhere.invalid:22", lab.user())),
        "the detail names the hop: {behind}"
    );
}

/// No identity_file anywhere and no agent: `~/.ssh/id_ed25519` of the operator's HOME is used.
#[test]
fn sweep_uses_the_default_identity() {
    let lab = Lab::new();
    let m = lab.member("m").provider("claude", State::NoAuth).start();
    assert_eq!(lab.identity(), lab.operator_home().join(".ssh/id_ed25519"));
    let inv_path = lab.dir().join("noid.toml");
    std::fs::write(
        &inv_path,
        format!(
            "[members.m]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\nknown_hosts = \"{}\"\nproviders = [\"claude\"]\nssh_config = \"none\"\n",
            m.addr(),
            m.port(),
            lab.user(),
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    let inv = inv_path.to_str().unwrap();
    let check = lab.fleetauth(&["inventory", "check", "-i", inv, "--format", "json"]);
    check.assert_exit(0);
    assert!(check.stdout.contains("id_ed25519"), "{check}");
    let sweep = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    assert_eq!(sweep.row("m", "claude")["state"], "needs_auth", "{sweep}");
}

/// ssh_config's `IdentityAgent` picks the agent (here one fleetauth's environment does not
/// name), and `IdentityAgent none` keeps it out: the member accepts only the agent's key.
#[test]
fn identity_agent_from_ssh_config_is_used() {
    let lab = Lab::new();
    let agent_key = lab.extra_identity("agent_only_ed25519", "");
    let only = lab.dir().join("agent_only_authorized_keys");
    let public = std::fs::read_to_string(format!("{}.pub", agent_key.display())).unwrap();
    std::fs::write(&only, public).unwrap();
    let m = lab
        .member("m")
        .provider("claude", State::NoAuth)
        .sshd_option(&format!("AuthorizedKeysFile {}", only.display()))
        .start();
    lab.with_agent_keys(&[&agent_key]);
    let socket = lab.agent_socket().unwrap();
    let config = lab.dir().join("agent_config");
    std::fs::write(
        &config,
        format!(
            "Host agent-on\n  HostName {a}\n  IdentityAgent {s}\n\
             Host agent-off\n  HostName {a}\n  IdentityAgent none\n",
            a = m.addr(),
            s = socket.display()
        ),
    )
    .unwrap();
    let inv = lab.dir().join("agent.toml");
    std::fs::write(
        &inv,
        format!(
            "[defaults]\nuser = \"{}\"\nknown_hosts = \"{}\"\nproviders = [\"claude\"]\n\
             [members.on]\nhost = \"agent-on\"\n[members.off]\nhost = \"agent-off\"\n",
            lab.user(),
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    let (inv, cfg) = (inv.to_str().unwrap(), config.to_str().unwrap());
    let sweep = lab
        .run(&["sweep", "-i", inv, "-F", cfg, "--format", "json"])
        .env("SSH_AUTH_SOCK", "")
        .output();
    assert_eq!(sweep.row("on", "claude")["state"], "needs_auth", "{sweep}");
    let off = sweep.row("off", "claude");
    assert_eq!(
        (off["state"].as_str(), off["reason"].as_str()),
        (Some("unreachable"), Some("auth")),
        "{off}"
    );
}
