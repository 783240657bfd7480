//! Ansible inventories against real sshd members: the same fleet described by fleetauth's TOML,
//! an Ansible INI inventory and an Ansible YAML inventory (host ranges, `:children` /
//! `children:`, members reached through `ansible_host` / `ansible_port` in `host_vars/`, the
//! lab's user, key and known_hosts in `group_vars/`, a vaulted file beside them) must be swept,
//! limited and provisioned identically.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Lab, Member, State, fake};

const PASS: &str = support::STORE_PASSPHRASE;

/// web01, web02 (group `web`) and db01 (group `db`), both groups children of `prod`:
///
/// | member | gemini   | claude     |
/// |--------|----------|------------|
/// | web01  | NoAuth   | OauthValid |
/// | web02  | EnvKey   | NoAuth     |
/// | db01   | NoAuth   | (not used: `group_vars/db` lists gemini only) |
fn fleet(lab: &Lab) -> Vec<Member> {
    vec![
        lab.member("web01")
            .provider("gemini", State::NoAuth)
            .provider("claude", State::OauthValid)
            .env_line("KEEP='web01 line'")
            .inventory_line("tags = [\"prod\", \"web\"]")
            .start(),
        lab.member("web02")
            .provider("gemini", State::EnvKey)
            .provider("claude", State::NoAuth)
            .inventory_line("tags = [\"prod\", \"web\"]")
            .start(),
        lab.member("db01")
            .provider("gemini", State::NoAuth)
            .env_line("KEEP='db01 line'")
            .inventory_line("tags = [\"db\", \"prod\"]")
            .start(),
    ]
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A vaulted file as `ansible-vault encrypt` leaves it (the ciphertext need not decrypt).
const VAULT: &str = "$ANSIBLE_VAULT;1.1;AES256\n\
    3061626364656667686970717273747576777879306162636465666768697071\n";

/// The INI inventory `ansible-ini/hosts`: a range and `:children`; every variable lives in
/// `group_vars/` (a directory for `all`, with a vaulted file) and `host_vars/`.
fn ini_inventory(lab: &Lab, members: &[Member]) -> PathBuf {
    let dir = lab.dir().join("ansible-ini");
    let hosts = dir.join("hosts");
    write(
        &hosts,
        "# the fleet\n[web]\nweb[01:02]\n\n[db]\ndb01\n\n[prod:children]\nweb\ndb\n",
    );
    write(
        &dir.join("group_vars/all/main.yml"),
        &format!(
            "---\nansible_user: {}\nansible_ssh_private_key_file: {}\nfleetauth_known_hosts: {}\nfleetauth_providers: [gemini, claude]\n",
            lab.user(),
            lab.identity().display(),
            lab.known_hosts().display()
        ),
    );
    write(&dir.join("group_vars/all/vault.yml"), VAULT);
    write(
        &dir.join("group_vars/db.yml"),
        "fleetauth_providers: gemini\n",
    );
    write(
        &dir.join("group_vars/web.yaml"),
        "fleetauth_env_file: ~/.config/fleetauth/env\n",
    );
    for m in members {
        write(
            &dir.join(format!("host_vars/{}.yml", m.name())),
            &format!("ansible_host: {}\nansible_port: {}\n", m.addr(), m.port()),
        );
    }
    hosts
}

/// The YAML inventory `ansible-yaml/inventory.yml`: `children:` two deep, a range, db01's
/// address inline, the web members' in `host_vars/` (JSON), the rest in `all: vars:` and
/// `group_vars/`.
fn yaml_inventory(lab: &Lab, members: &[Member]) -> PathBuf {
    let dir = lab.dir().join("ansible-yaml");
    let db = &members[2];
    let inventory = dir.join("inventory.yml");
    write(
        &inventory,
        &format!(
            "---\nall:\n  vars:\n    ansible_user: {}\n  children:\n    prod:\n      children:\n        web:\n          hosts:\n            web[01:02]:\n        db:\n          hosts:\n            db01:\n              ansible_host: {}\n              ansible_port: {}\n",
            lab.user(),
            db.addr(),
            db.port()
        ),
    );
    write(
        &dir.join("group_vars/all.yml"),
        &format!(
            "ansible_ssh_private_key_file: {}\nfleetauth_known_hosts: {}\nfleetauth_providers:\n  - gemini\n  - claude\n",
            lab.identity().display(),
            lab.known_hosts().display()
        ),
    );
    write(
        &dir.join("group_vars/db.json"),
        "{\"fleetauth_providers\": [\"gemini\"]}\n",
    );
    for m in &members[..2] {
        write(
            &dir.join(format!("host_vars/{}.json", m.name())),
            &format!(
                "{{\"ansible_host\": \"{}\", \"ansible_port\": {}}}\n",
                m.addr(),
                m.port()
            ),
        );
    }
    inventory
}

/// The result rows sorted by member and provider, without `host` when `drop_host` (members of
/// different labs have different addresses). `expires_in` counts down between the runs compared
/// (seconds apart on a loaded machine): it becomes `true` when it is a positive number, and the
/// durations in `detail` ("valid for 7h 59m") become `#h #m` (a minute may turn between runs).
fn rows(out: &support::Output, drop_host: bool) -> Vec<Value> {
    let duration = regex::Regex::new(r"\b\d+([dhms])\b").unwrap();
    let mut rows = out.results();
    for r in &mut rows {
        let r = r.as_object_mut().unwrap();
        if drop_host {
            r.remove("host");
        }
        if let Some(secs) = r.get_mut("expires_in") {
            *secs = Value::Bool(secs.as_i64().is_some_and(|s| s > 0));
        }
        if let Some(Value::String(detail)) = r.get_mut("detail") {
            *detail = duration.replace_all(detail, "#$1").into_owned();
        }
    }
    rows.sort_by_key(|r| (r["member"].to_string(), r["provider"].to_string()));
    rows
}

/// `text` with every secret the harness planted on `members` (and its masked form, as details
/// show it) replaced by a placeholder naming the member: each lab plants its own.
fn unplant(text: &str, members: &[Member]) -> String {
    let mut text = text.to_string();
    for m in members {
        for (i, secret) in m.secrets().iter().enumerate() {
            let placeholder = format!("<{} secret {i}>", m.name());
            text = text
                .replace(secret, &placeholder)
                .replace(&fake::masked(secret), &placeholder);
        }
    }
    text
}

fn unplant_rows(rows: Vec<Value>, members: &[Member]) -> Vec<Value> {
    rows.iter()
        .map(|r| serde_json::from_str(&unplant(&r.to_string(), members)).unwrap())
        .collect()
}

fn state(rows: &[Value], member: &str, provider: &str) -> (String, String) {
    let row = rows
        .iter()
        .find(|r| r["member"] == member && r["provider"] == provider)
        .unwrap_or_else(|| panic!("no row {member} × {provider} in {rows:?}"));
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    (text(&row["state"]), text(&row["action"]))
}

fn vault_warning(inventory: &Path) -> String {
    format!(
        "warning: {}: skipped: it is encrypted with Ansible Vault",
        inventory
            .parent()
            .unwrap()
            .join("group_vars/all/vault.yml")
            .display()
    )
}

#[test]
fn ini_and_yaml_inventories_sweep_and_limit_like_the_toml_one() {
    let lab = Lab::new();
    let members = fleet(&lab);
    let toml = lab.inventory("");
    let ini = ini_inventory(&lab, &members);
    let yaml = yaml_inventory(&lab, &members);
    let inventories = [("toml", &toml), ("ini", &ini), ("yaml", &yaml)];

    // inventory check: the same members, addresses, users, keys, tags and env files.
    let checks: Vec<Value> = inventories
        .iter()
        .map(|(_, inv)| {
            let out = lab.fleetauth(&[
                "inventory",
                "check",
                "-i",
                inv.to_str().unwrap(),
                "--format",
                "json",
            ]);
            out.assert_exit(0);
            out.json()["members"].clone()
        })
        .collect();
    assert_eq!(checks[0].as_array().unwrap().len(), 3, "{}", checks[0]);
    assert_eq!(
        checks[1], checks[0],
        "INI inventory check differs from TOML"
    );
    assert_eq!(
        checks[2], checks[0],
        "YAML inventory check differs from TOML"
    );
    assert_eq!(checks[0][2]["providers"], serde_json::json!(["gemini"]));
    assert_eq!(checks[0][0]["tags"], serde_json::json!(["prod", "web"]));

    let sweeps: Vec<support::Output> = inventories
        .iter()
        .map(|(_, inv)| lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]))
        .collect();
    for out in &sweeps {
        out.assert_exit(1);
    }
    let want = rows(&sweeps[0], false);
    assert_eq!(want.len(), 5, "{want:?}");
    assert_eq!(state(&want, "web01", "gemini").0, "needs_auth");
    assert_eq!(state(&want, "web01", "claude").0, "ready");
    assert_eq!(state(&want, "web02", "gemini").0, "ready");
    assert_eq!(state(&want, "web02", "claude").0, "needs_auth");
    assert_eq!(state(&want, "db01", "gemini").0, "needs_auth");
    for (i, (name, _)) in inventories.iter().enumerate().skip(1) {
        assert_eq!(
            rows(&sweeps[i], false),
            want,
            "{name} sweep differs from TOML"
        );
    }
    // The vaulted group_vars file is skipped with a warning; the TOML run has none.
    sweeps[1].assert_stderr_contains(&vault_warning(&ini));
    assert!(!sweeps[0].stderr.contains("warning"), "{}", sweeps[0]);

    // --limit over the groups' tags, with & and !, picks the same real members.
    for (limit, picked) in [
        ("prod,&web,!web02", &["web01"][..]),
        ("db", &["db01"][..]),
        ("prod,!web", &["db01"][..]),
        ("web,&prod", &["web01", "web02"][..]),
        ("web0*,db01,!web01", &["db01", "web02"][..]),
    ] {
        let mut first: Option<Vec<Value>> = None;
        for (name, inv) in inventories {
            let out = lab.fleetauth(&[
                "sweep",
                "-i",
                inv.to_str().unwrap(),
                "--format",
                "json",
                "--limit",
                limit,
            ]);
            let got = rows(&out, false);
            let mut names: Vec<&str> = got.iter().map(|r| r["member"].as_str().unwrap()).collect();
            names.dedup();
            assert_eq!(names, picked, "{name} --limit {limit}\n{out}");
            match &first {
                None => first = Some(got),
                Some(want) => assert_eq!(&got, want, "{name} --limit {limit} differs from TOML"),
            }
        }
    }
}

/// `fleetauth provision` with the key from the store and from the environment, first limited
/// to one web member, then on the whole fleet: the same actions, states and env files whether
/// the fleet is described in TOML, INI or YAML (each on its own identical lab).
#[test]
fn ini_and_yaml_inventories_provision_like_the_toml_one() {
    let gemini = fake::gemini_key();
    let claude = fake::anthropic_api_key();
    let labs: Vec<(&str, Lab)> = ["toml", "ini", "yaml"].map(|n| (n, Lab::new())).into();
    let mut runs = Vec::new();
    for (name, lab) in &labs {
        let members = fleet(lab);
        let inv = match *name {
            "toml" => lab.inventory(""),
            "ini" => ini_inventory(lab, &members),
            _ => yaml_inventory(lab, &members),
        };
        lab.run(&["auth", "set", "gemini"])
            .env("FLEETAUTH_PASSPHRASE", PASS)
            .stdin(gemini.as_bytes())
            .output()
            .assert_exit(0);
        let before: Vec<String> = members.iter().map(Member::env_file_contents).collect();
        let provision = |extra: &[&str]| {
            let mut args = vec![
                "provision",
                "-i",
                inv.to_str().unwrap(),
                "--format",
                "json",
                "--no-input",
            ];
            args.extend_from_slice(extra);
            let out = lab
                .run(&args)
                .env("FLEETAUTH_PASSPHRASE", PASS)
                .env("ANTHROPIC_API_KEY", &claude)
                .output();
            out.assert_no_secret(&gemini).assert_no_secret(&claude);
            out
        };

        let limited = provision(&["--limit", "prod,&web,!web02"]);
        limited.assert_exit(0);
        let limited_rows = unplant_rows(rows(&limited, true), &members);
        assert_eq!(
            limited_rows
                .iter()
                .map(|r| r["member"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["web01", "web01"],
            "{name}\n{limited}"
        );
        assert_eq!(
            state(&limited_rows, "web01", "gemini"),
            ("ready".into(), "pushed".into()),
            "{name}"
        );
        assert_eq!(
            state(&limited_rows, "web01", "claude"),
            ("ready".into(), "none".into()),
            "{name}"
        );
        // Members outside the limit are not touched.
        assert_eq!(
            members[1].env_file_contents(),
            before[1],
            "{name}: web02 changed"
        );
        assert_eq!(
            members[2].env_file_contents(),
            before[2],
            "{name}: db01 changed"
        );

        let all = provision(&[]);
        all.assert_exit(0);
        let all_rows = unplant_rows(rows(&all, true), &members);
        assert_eq!(all_rows.len(), 5, "{name}\n{all}");
        assert_eq!(
            state(&all_rows, "web01", "gemini"),
            ("ready".into(), "none".into()),
            "{name}"
        );
        assert_eq!(
            state(&all_rows, "web02", "gemini"),
            ("ready".into(), "none".into()),
            "{name}"
        );
        assert_eq!(
            state(&all_rows, "web02", "claude"),
            ("ready".into(), "pushed".into()),
            "{name}"
        );
        assert_eq!(
            state(&all_rows, "db01", "gemini"),
            ("ready".into(), "pushed".into()),
            "{name}"
        );

        let env: Vec<String> = members
            .iter()
            .map(|m| unplant(&m.env_file_contents(), &members))
            .collect();
        assert!(
            env[0].starts_with("KEEP='web01 line'\n"),
            "{name}: {}",
            env[0]
        );
        assert!(
            env[0].contains(&format!("export GEMINI_API_KEY='{gemini}'")),
            "{name}: web01 lacks the gemini key"
        );
        assert!(
            env[1].contains(&format!("export ANTHROPIC_API_KEY='{claude}'")),
            "{name}: web02 lacks the claude key"
        );
        assert!(
            env[2].contains(&format!("export GEMINI_API_KEY='{gemini}'")),
            "{name}: db01 lacks the gemini key"
        );
        assert!(
            !env[2].contains("ANTHROPIC_API_KEY"),
            "{name}: db01 got claude, which group_vars/db leaves out"
        );
        if *name == "ini" {
            all.assert_stderr_contains(&vault_warning(&inv));
        }
        runs.push((*name, limited_rows, all_rows, env));
    }
    let (_, want_limited, want_all, want_env) = &runs[0];
    for (name, limited, all, env) in &runs[1..] {
        assert_eq!(
            limited, want_limited,
            "{name} limited provision differs from TOML"
        );
        assert_eq!(all, want_all, "{name} provision differs from TOML");
        assert_eq!(env, want_env, "{name} env files differ from TOML");
    }
}
