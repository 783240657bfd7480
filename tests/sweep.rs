//! `fleetauth sweep` against real sshd members: every provider in every state, with and without
//! `--deep`, plus members that are down, silent, or re-keyed.

mod support;

use std::time::Duration;

use support::{Lab, State};

/// The row states a sweep must report: (without --deep, with --deep).
fn expected(provider: &str, state: State) -> (&'static str, &'static str) {
    use State::*;
    match state {
        NotInstalled => ("not_installed", "not_installed"),
        NoAuth | OauthExpired | OauthMalformed => ("needs_auth", "needs_auth"),
        OauthValid | OauthExpiring | OauthRefreshable | EnvKey | KeyFile => ("ready", "ready"),
        // Presence is not validity: only the prompt finds out.
        RejectedKey => ("ready", "needs_auth"),
        // gemini's settings select an expired OAuth login over the good key: nothing usable.
        // The others: the stale, higher credential is present, and rejected by the prompt.
        Shadowed if provider == "gemini" => ("needs_auth", "needs_auth"),
        Shadowed => ("ready", "needs_auth"),
        // A hang is an error with its reason, never ready or needs_auth.
        VendorUnreachable => ("ready", "error"),
        KeychainLogin | KeychainLocked | GhLogin | LoginBlanked | RefreshTokenExpired
        | IneligibleAccount | SettingsKey | DotenvHome | DotenvIgnored | EncryptedFileLogin => {
            panic!("{state:?} is checked by tests/sources.rs")
        }
    }
}

fn states_for(provider: &str) -> Vec<State> {
    use State::*;
    let mut v = vec![
        NotInstalled,
        NoAuth,
        OauthValid,
        OauthMalformed,
        EnvKey,
        RejectedKey,
        Shadowed,
        VendorUnreachable,
    ];
    if provider != "copilot" {
        // Copilot tokens carry no expiry on disk.
        v.extend([OauthExpiring, OauthRefreshable, OauthExpired]);
    }
    if provider == "codex" {
        v.push(KeyFile);
    }
    v
}

fn state_name(s: State) -> String {
    format!("{s:?}").to_lowercase()
}

#[test]
fn every_provider_in_every_state_with_and_without_deep() {
    let lab = Lab::new();
    let mut cases = Vec::new();
    for provider in support::PROVIDERS {
        for state in states_for(provider) {
            let name = format!("{provider}-{}", state_name(state));
            lab.member(&name).provider(provider, state).start();
            cases.push((name, provider, state));
        }
    }
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv = inv.to_str().unwrap();

    let quick = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    quick.assert_exit(1);
    let deep = lab.fleetauth(&["sweep", "-i", inv, "--format", "json", "--deep"]);
    deep.assert_exit(1);

    let mut wrong = Vec::new();
    for (member, provider, state) in &cases {
        let (want_quick, want_deep) = expected(provider, *state);
        let (q, d) = (quick.row(member, provider), deep.row(member, provider));
        if q["state"] != want_quick {
            wrong.push(format!(
                "{member}: sweep gave {} ({}), want {want_quick}",
                q["state"], q["detail"]
            ));
        }
        if d["state"] != want_deep {
            wrong.push(format!(
                "{member}: sweep --deep gave {} ({}), want {want_deep}",
                d["state"], d["detail"]
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong rows:\n{}", wrong.join("\n"));

    // Sources, versions and reasons, spot-checked.
    let row = quick.row("gemini-envkey", "gemini");
    assert_eq!(row["source"], "env_file");
    assert!(
        row["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{row}"
    );
    assert_eq!(
        quick.row("claude-oauthvalid", "claude")["source"],
        "oauth_file"
    );
    assert_eq!(deep.row("claude-oauthvalid", "claude")["source"], "probe");
    assert_eq!(quick.row("codex-keyfile", "codex")["source"], "key_file");
    assert!(
        quick.row("gemini-oauthexpiring", "gemini")["detail"]
            .as_str()
            .unwrap()
            .contains("expiring")
    );
    assert!(
        quick.row("claude-oauthrefreshable", "claude")["detail"]
            .as_str()
            .unwrap()
            .contains("refreshable")
    );
    assert!(
        deep.row("gemini-vendorunreachable", "gemini")["detail"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    for p in ["gemini", "claude"] {
        let detail = deep.row(&format!("{p}-shadowed"), p)["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail.contains("shadows"), "{p}: {detail}");
    }
    let summary = quick.summary();
    assert_eq!(summary["rows"].as_u64().unwrap() as usize, cases.len());
}

#[test]
fn table_output_lists_every_row_and_a_summary() {
    let lab = Lab::new();
    lab.member("ok").provider("gemini", State::EnvKey).start();
    lab.member("none").provider("claude", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap()]);
    out.assert_exit(1);
    for needle in [
        "MEMBER",
        "ok",
        "none",
        "ready",
        "needs_auth",
        "2 members, 2 rows: 1 ready, 1 needs_auth",
    ] {
        out.assert_stdout_contains(needle);
    }
    // No progress bar or colour codes when stdout/stderr are not terminals.
    assert!(
        !out.stdout.contains('\u{1b}'),
        "escape codes in piped output"
    );
}

#[test]
fn all_ready_exits_zero() {
    let lab = Lab::new();
    lab.member("a")
        .provider("gemini", State::EnvKey)
        .provider("claude", State::OauthValid)
        .start();
    let inv = lab.inventory("");
    lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap()])
        .assert_exit(0);
}

#[test]
fn dead_and_silent_members_cost_only_their_deadline() {
    let lab = Lab::new();
    lab.member("ok").provider("gemini", State::EnvKey).start();
    lab.down_member("dead");
    lab.silent_member("mute");
    let inv = lab.inventory("connect_timeout = \"2s\"\nproviders = [\"gemini\", \"claude\"]");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(1);
    assert_eq!(out.row("ok", "gemini")["state"], "ready");
    let dead = out.row("dead", "gemini");
    assert_eq!(
        (dead["state"].as_str(), dead["reason"].as_str()),
        (Some("unreachable"), Some("refused")),
        "{dead}"
    );
    let mute = out.row("mute", "gemini");
    assert_eq!(
        (mute["state"].as_str(), mute["reason"].as_str()),
        (Some("unreachable"), Some("timeout")),
        "{mute}"
    );
    // One connect deadline, not one per member or per provider; generous margin, not a timing test.
    assert!(
        out.elapsed < Duration::from_secs(10),
        "sweep took {:?}",
        out.elapsed
    );
}

#[test]
fn one_row_per_provider_for_an_unreachable_member() {
    let lab = Lab::new();
    lab.down_member("dead")
        .providers(&["gemini", "claude", "codex"]);
    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    let rows = out.rows_for("dead");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["state"] == "unreachable"));
}

#[test]
fn changed_host_key_is_refused_with_both_fingerprints() {
    let lab = Lab::new();
    let m = lab
        .member("rekeyed")
        .provider("gemini", State::EnvKey)
        .start();
    let old = m.host_public_key();
    m.restart_with_new_host_key();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(1);
    let row = out.row("rekeyed", "gemini");
    assert_eq!(row["state"], "unreachable");
    assert_eq!(row["reason"], "host_key");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("changed"), "{detail}");
    assert_eq!(
        detail.matches("SHA256:").count(),
        2,
        "both fingerprints: {detail}"
    );
    assert_ne!(old, m.host_public_key());
    // Nothing ran on the member.
    assert!(m.commands_log().is_empty(), "{:?}", m.commands_log());
}

#[test]
fn one_channel_per_member_and_no_value_leaves_the_member() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("gemini", State::EnvKey)
        .provider("claude", State::OauthValid)
        .provider("codex", State::KeyFile)
        .start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(0);
    let log = m.commands_log();
    assert_eq!(log.len(), 1, "channels: {log:?}");
    for secret in m.secrets() {
        out.assert_no_secret(&secret);
        assert!(
            !log.iter().any(|l| l.contains(&secret)),
            "secret in a command line"
        );
    }
}

#[test]
fn limit_selects_by_name_glob_and_tag() {
    let lab = Lab::new();
    lab.member("build-1")
        .provider("gemini", State::EnvKey)
        .start();
    lab.member("build-2")
        .provider("gemini", State::EnvKey)
        .inventory_line("tags = [\"gpu\"]")
        .start();
    lab.member("web-1")
        .provider("gemini", State::EnvKey)
        .inventory_line("tags = [\"gpu\"]")
        .start();
    let inv = lab.inventory("");
    let inv = inv.to_str().unwrap();
    let members = |sel: &str| -> Vec<String> {
        let out = lab.fleetauth(&["sweep", "-i", inv, "--format", "json", "--limit", sel]);
        out.results()
            .iter()
            .map(|r| r["member"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(members("build-*"), ["build-1", "build-2"]);
    assert_eq!(members("gpu"), ["build-2", "web-1"]);
    assert_eq!(members("web-1,build-1"), ["build-1", "web-1"]);
    let out = lab.fleetauth(&["sweep", "-i", inv, "--limit", "nope"]);
    out.assert_exit(2);
}

#[test]
fn encrypted_identity_file_with_passphrase_from_env() {
    let lab = Lab::new();
    lab.member("m").provider("gemini", State::EnvKey).start();
    let key = lab.extra_identity("locked_ed25519", "correct horse");
    let inv = lab.inventory(&format!("identity_file = \"{}\"", key.display()));
    // `identity_file` in [defaults] twice would be a TOML error: the lab writes its own first,
    // so this inventory is rewritten with the locked key instead.
    let text = std::fs::read_to_string(&inv).unwrap();
    let first = text.find("identity_file").unwrap();
    let line_end = first + text[first..].find('\n').unwrap() + 1;
    std::fs::write(&inv, format!("{}{}", &text[..first], &text[line_end..])).unwrap();
    let inv = inv.to_str().unwrap();

    let without = lab.fleetauth(&["sweep", "-i", inv, "--no-input"]);
    without.assert_exit(2);
    without.assert_stderr_contains("FLEETAUTH_SSH_PASSPHRASE");

    let with = lab
        .run(&["sweep", "-i", inv, "--format", "json"])
        .env("FLEETAUTH_SSH_PASSPHRASE", "correct horse")
        .output();
    with.assert_exit(0);
    with.assert_no_secret("correct horse");
}

#[test]
fn ssh_agent_authentication() {
    let lab = Lab::new();
    lab.with_agent();
    lab.member("m").provider("gemini", State::EnvKey).start();
    let inv = lab.inventory("");
    // Without identity_file, fleetauth uses the agent.
    let text = std::fs::read_to_string(&inv).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("identity_file"))
        .collect();
    std::fs::write(&inv, kept.join("\n") + "\n").unwrap();
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(0);
    assert_eq!(out.row("m", "gemini")["state"], "ready");
}

#[test]
fn refused_client_key_is_unreachable_auth() {
    let lab = Lab::new();
    lab.member("m")
        .provider("gemini", State::EnvKey)
        .deny_client_key()
        .start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(1);
    let row = out.row("m", "gemini");
    assert_eq!(
        (row["state"].as_str(), row["reason"].as_str()),
        (Some("unreachable"), Some("auth")),
        "{row}"
    );
}

/// The same members described by an Ansible INI inventory: a host range, `:children`,
/// `[all:vars]` with the lab's user, key and known_hosts, and per-host `ansible_host` /
/// `ansible_port` are swept like the TOML inventory's, and groups work as `--limit` tags.
#[test]
fn ansible_ini_inventory_is_swept() {
    let lab = Lab::new();
    let members: Vec<_> = ["web01", "web02", "db-a"]
        .iter()
        .map(|name| {
            lab.member(name)
                .provider("gemini", State::EnvKey)
                .provider("claude", State::OauthValid)
                .start()
        })
        .collect();
    let mut text = String::from("# Ansible INI\n");
    for m in &members {
        text.push_str(&format!(
            "{} ansible_host={} ansible_port={}\n",
            m.name(),
            m.addr(),
            m.port()
        ));
    }
    text.push_str(&format!(
        "\n[web]\nweb[01:02]\n\n[db]\ndb-[a:a]\n\n[fleet:children]\nweb\ndb\n\n[all:vars]\nansible_user={}\nansible_ssh_private_key_file={}\nfleetauth_known_hosts={}\nfleetauth_providers=gemini,claude\nansible_ssh_common_args='-o ProxyJump=nobody@bastion.invalid'\n\n[web:vars]\nansible_ssh_common_args=''\n",
        lab.user(),
        lab.identity().display(),
        lab.known_hosts().display()
    ));
    let inv = lab.dir().join("hosts.ini");
    std::fs::write(&inv, text).unwrap();
    let inv = inv.to_str().unwrap();

    let out = lab.fleetauth(&[
        "sweep",
        "-i",
        inv,
        "--format",
        "json",
        "--limit",
        "fleet,&web",
    ]);
    out.assert_exit(0);
    let mut rows: Vec<(String, String)> = out
        .results()
        .iter()
        .map(|r| {
            (
                r["member"].as_str().unwrap().to_string(),
                r["provider"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("web01".to_string(), "claude".to_string()),
            ("web01".into(), "gemini".into()),
            ("web02".into(), "claude".into()),
            ("web02".into(), "gemini".into()),
        ]
    );

    // The whole fleet: db-a's jump host does not resolve: db-a is unreachable (reason `jump`,
    // the hop named), and never contacted directly.
    let out = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    out.assert_exit(1);
    assert_eq!(out.results().len(), 6);
    for r in out.results() {
        let jumped = r["member"] == "db-a";
        assert_eq!(r["state"] == "unreachable", jumped, "{r}");
        if jumped {
            let detail = r["detail"].as_str().unwrap();
            assert_eq!(r["reason"], "jump", "{r}");
            assert!(
                detail.contains("jump host nobody@bastion.invalid"),
                "the detail names the hop: {detail}"
            );
        }
    }
    let check = lab.fleetauth(&["inventory", "check", "-i", inv, "--format", "json"]);
    check.assert_exit(0);
    let json: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    let db = &json["members"][2];
    assert_eq!(db["name"], "db-a");
    assert_eq!(db["proxy_jump"], "nobody@bastion.invalid");
    assert_eq!(db["tags"], serde_json::json!(["db", "fleet"]));
    assert_eq!(json["members"][0]["proxy_jump"], serde_json::Value::Null);
}

/// Node CLIs cost the member a runtime start per run: a sweep of npm-installed CLIs reads their
/// versions from their package.json and skips status commands a credential already answers,
/// so it starts none of them — with the same rows as a member whose CLIs it has to run.
#[test]
fn an_npm_install_is_swept_without_starting_its_clis() {
    let lab = Lab::new();
    let states = [
        ("gemini", State::OauthValid),
        ("claude", State::OauthValid),
        ("codex", State::EnvKey),
        ("copilot", State::EnvKey),
    ];
    let mut npm = lab.member("npm").npm_layout().version("claude", "2.1.300");
    let mut plain = lab.member("plain").version("claude", "2.1.300");
    for (provider, state) in states {
        npm = npm.provider(provider, state);
        plain = plain.provider(provider, state);
    }
    let npm = npm.start();
    let plain = plain.start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(0);
    for (provider, _) in states {
        let (n, p) = (out.row("npm", provider), out.row("plain", provider));
        for field in ["state", "source", "version", "detail"] {
            assert_eq!(n[field], p[field], "{provider} {field}: {n} vs {p}");
        }
    }
    assert_eq!(out.row("npm", "claude")["version"], "2.1.300");
    assert_eq!(out.row("npm", "copilot")["version"], "1.0.102");
    assert_eq!(npm.calls_log(), Vec::<String>::new(), "no CLI started");
    // The plain member's stubs are scripts: asked, and never cached.
    let asked = plain.calls_log();
    assert_eq!(
        asked.iter().filter(|c| c.ends_with(" --version")).count(),
        4,
        "{asked:?}"
    );

    // A status command still runs when nothing decides: claude logged out.
    let out_lab = Lab::new();
    let bare = out_lab
        .member("bare")
        .npm_layout()
        .provider("claude", State::NoAuth)
        .start();
    let inv = out_lab.inventory("");
    let out = out_lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(1);
    assert_eq!(out.row("bare", "claude")["state"], "needs_auth");
    assert_eq!(bare.calls_log(), ["claude auth status"]);
}

/// A native CLI's version is kept in the member's cache (`~/.cache/fleetauth/versions`), keyed
/// by the binary's resolved path, size and mtime: the next sweep answers from it without
/// starting the CLI, and a changed binary is asked again.
#[test]
fn a_native_cli_s_version_comes_from_the_member_s_cache_until_the_binary_changes() {
    let lab = Lab::new();
    let m = lab
        .member("native")
        .provider("gemini", State::EnvKey)
        .start();
    // A native binary that answers `--version`: bash prints its own version for it.
    let gemini = m.bin_dir().join("gemini");
    std::fs::remove_file(&gemini).unwrap();
    std::fs::copy("/bin/bash", &gemini).unwrap();
    let inv = lab.inventory("");
    let inv = inv.to_str().unwrap();
    let version = |out: &support::Output| -> String {
        out.row("native", "gemini")["version"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    let real = version(&first);
    assert!(!real.is_empty() && real != "7.7.7", "{}", first.stdout);
    let cache = m.home().join(".cache/fleetauth/versions");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let text = std::fs::read_to_string(&entries[0]).unwrap();
    let mut lines = text.lines();
    let key = lines.next().unwrap();
    let meta = std::fs::metadata(&gemini).unwrap();
    assert!(key.starts_with(&format!("{} ", meta.len())), "{text}");
    assert_eq!(lines.next(), Some(gemini.to_str().unwrap()), "{text}");
    // The cache answers (a planted version shows it), not the binary.
    let head: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&entries[0], format!("{head}gemini 7.7.7\n")).unwrap();
    let second = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    assert_eq!(version(&second), "7.7.7", "{}", second.stdout);
    // A binary with another size is asked again.
    let mut bytes = std::fs::read(&gemini).unwrap();
    bytes.push(0);
    std::fs::write(&gemini, bytes).unwrap();
    let third = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    assert_eq!(version(&third), real, "{}", third.stdout);
}
