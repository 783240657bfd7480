use super::*;
use crate::inventory::Member;

use crate::inventory::tests::{KNOWN, env};

fn ok(text: &str) -> Inventory {
    parse_with(text, Path::new("hosts"), KNOWN, &env()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ConfigError {
    match parse_with(text, Path::new("hosts"), KNOWN, &env()) {
        Ok(inv) => panic!("expected an error, got {inv:?}"),
        Err(e) => e,
    }
}

fn member<'a>(inv: &'a Inventory, name: &str) -> &'a Member {
    inv.members
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name}"))
}

const INI: &str = r#"# fleet
bastion.lan

[web]
web[01:03] ansible_user=deploy
web-[a:b] ansible_host=10.0.0.9 ansible_port=2222

[db]
db1 ansible_host="ops@[::1]:2200" fleetauth_providers=codex

[prod:children]
web
db

[eu:children]
prod

[all:vars]
fleetauth_providers=claude,gemini
fleetauth_env_file=/srv/all.env
ansible_ssh_private_key_file=~/.ssh/fleet

[eu:vars]
fleetauth_env_file=/srv/eu.env

[prod:vars]
fleetauth_env_file=/srv/prod.env
fleetauth_auth_mode=gemini=api_key,claude=oauth
ansible_ssh_common_args='-o ProxyJump=jump@bastion.lan:22'

[web:vars]
fleetauth_env_file=/srv/web.env
"#;

#[test]
fn ini_ranges_children_and_vars_precedence() {
    let inv = ok(INI);
    let names: Vec<&str> = inv.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bastion.lan",
            "web01",
            "web02",
            "web03",
            "web-a",
            "web-b",
            "db1"
        ]
    );
    let b = member(&inv, "bastion.lan");
    assert!(b.tags.is_empty(), "ungrouped is not a tag");
    assert_eq!(b.env_file, "/srv/all.env");
    assert_eq!(b.ssh.proxy_jump, None);
    assert_eq!(b.providers, ["claude", "gemini"]);

    let w = member(&inv, "web02");
    assert_eq!(w.ssh.host, "web02");
    assert_eq!(w.ssh.user, "deploy");
    assert_eq!(
        w.tags,
        ["eu", "prod", "web"],
        "children are tags, transitively"
    );
    // web (child, deepest) > prod > eu > all.
    assert_eq!(w.env_file, "/srv/web.env");
    assert_eq!(w.ssh.identities, vec![PathBuf::from("/home/op/.ssh/fleet")]);
    assert_eq!(w.ssh.proxy_jump.as_deref(), Some("jump@bastion.lan:22"));
    assert_eq!(w.auth_mode("gemini"), AuthMode::ApiKey);
    assert_eq!(w.auth_mode("claude"), AuthMode::Oauth);

    let a = member(&inv, "web-a");
    assert_eq!((a.ssh.host.as_str(), a.ssh.port), ("10.0.0.9", 2222));
    assert_eq!(a.ssh.user, "op");

    let d = member(&inv, "db1");
    assert_eq!(
        (d.ssh.host.as_str(), d.ssh.port, d.ssh.user.as_str()),
        ("::1", 2200, "ops")
    );
    assert_eq!(d.providers, ["codex"], "host vars beat every group");
    assert_eq!(
        d.env_file, "/srv/prod.env",
        "prod (depth 2) beats eu (depth 1)"
    );
}

#[test]
fn name_colon_port_patterns_set_the_port() {
    let inv = ok(
        "[web]\nw[1:2]:2222 fleetauth_providers=claude\nw3:2200 ansible_port=2201 fleetauth_providers=claude\n",
    );
    let ports: Vec<(&str, u16)> = inv
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.ssh.port))
        .collect();
    assert_eq!(ports, [("w1", 2222), ("w2", 2222), ("w3", 2201)]);
    let inv = ok("all:\n  vars:\n    fleetauth_providers: claude\n  hosts:\n    y1:2022:\n");
    assert_eq!(
        (inv.members[0].name.as_str(), inv.members[0].ssh.port),
        ("y1", 2022)
    );
}

#[test]
fn ranges_keep_padding_and_steps() {
    assert_eq!(
        expand_range("web[01:03]").unwrap(),
        ["web01", "web02", "web03"]
    );
    assert_eq!(expand_range("w[8:10]").unwrap(), ["w8", "w9", "w10"]);
    assert_eq!(expand_range("w[1:9:4]").unwrap(), ["w1", "w5", "w9"]);
    assert_eq!(expand_range("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
    assert_eq!(
        expand_range("r[1:2]-[a:b]").unwrap(),
        ["r1-a", "r1-b", "r2-a", "r2-b"]
    );
    for bad in ["w[3:1]", "w[1:", "w[a:3]", "w[1:2:0]", "w]"] {
        assert!(expand_range(bad).is_err(), "{bad}");
    }
}

#[test]
fn proxy_jump_from_ssh_args() {
    assert_eq!(proxy_jump("-J b").unwrap().as_deref(), Some("b"));
    assert_eq!(proxy_jump("-Jb,c").unwrap().as_deref(), Some("b,c"));
    assert_eq!(
        proxy_jump("-o StrictHostKeyChecking=no -o ProxyJump=u@b:22")
            .unwrap()
            .as_deref(),
        Some("u@b:22")
    );
    assert_eq!(
        proxy_jump("-o 'ProxyJump b'").unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(proxy_jump("-oProxyJump=b").unwrap().as_deref(), Some("b"));
    assert_eq!(proxy_jump("-o ProxyJump=none").unwrap(), None);
    assert_eq!(proxy_jump("-C").unwrap(), None);
    assert!(proxy_jump("-J").is_err());
}

#[test]
fn ini_errors_point_at_the_line() {
    let e = err("[web]\nweb[01:x] fleetauth_providers=claude\n");
    crate::config_error::assert_error_at(
        &e,
        "hosts",
        2,
        1,
        "invalid host pattern `web[01:x]`",
        "ranges are",
    );
    let e = err("[web]\nw1 fleetauth_providers=claude\n[web:vars]\nfleetauth_provider=claude\n");
    crate::config_error::assert_error_at(
        &e,
        "hosts",
        4,
        1,
        "unknown variable `fleetauth_provider`",
        "fleetauth_providers",
    );
    let e = err("[web]\nw1\n\n[all:vars]\nfleetauth_providers=claude,gpt\n");
    crate::config_error::assert_error_at(
        &e,
        "hosts",
        5,
        1,
        "unknown provider `gpt`",
        "known providers",
    );
    let e = err("[web]\nw1 ansible_port=22 ansible_host=h:2222 fleetauth_providers=claude\n");
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("says port 2222"), "{e}");
    let e = err("[web]\nw1\n");
    crate::config_error::assert_error_at(
        &e,
        "hosts",
        2,
        1,
        "member `w1` has no providers",
        "fleetauth_providers",
    );
    let e = err("[web:stuff]\n");
    crate::config_error::assert_error_at(&e, "hosts", 1, 1, "unknown section kind", "");
    let e = err("[web]\nw1 ansible_host\n");
    assert_eq!(e.line, Some(2));
}

const YAML: &str = r#"---
all:
  vars:
    fleetauth_providers: [claude, gemini]
    fleetauth_env_file: /srv/all.env
  hosts:
    bastion.lan:
  children:
    eu:
      vars:
        fleetauth_env_file: /srv/eu.env
      children:
        prod:
          vars:
            fleetauth_env_file: /srv/prod.env
            fleetauth_auth_mode:
              gemini: api_key
            ansible_ssh_extra_args: -J jump.lan
          children:
            web:
              hosts:
                web[08:10]:
                  ansible_port: 2200
              vars:
                fleetauth_env_file: /srv/web.env
            db:
              hosts:
                db-[a:b]:
                db-c:
                  ansible_host: 10.1.1.3
                  fleetauth_providers: codex
"#;

#[test]
fn yaml_ranges_children_and_vars_precedence() {
    let inv = ok(YAML);
    let names: Vec<&str> = inv.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bastion.lan",
            "web08",
            "web09",
            "web10",
            "db-a",
            "db-b",
            "db-c"
        ]
    );
    let w = member(&inv, "web10");
    assert_eq!(w.ssh.port, 2200);
    assert_eq!(w.tags, ["eu", "prod", "web"]);
    assert_eq!(w.env_file, "/srv/web.env");
    assert_eq!(w.providers, ["claude", "gemini"]);
    assert_eq!(w.ssh.proxy_jump.as_deref(), Some("jump.lan"));
    assert_eq!(w.auth_mode("gemini"), AuthMode::ApiKey);
    let d = member(&inv, "db-b");
    assert_eq!(d.env_file, "/srv/prod.env");
    assert_eq!(d.tags, ["db", "eu", "prod"]);
    let c = member(&inv, "db-c");
    assert_eq!(
        (c.ssh.host.as_str(), c.providers.as_slice()),
        ("10.1.1.3", &["codex".to_string()][..])
    );
    assert_eq!(member(&inv, "bastion.lan").env_file, "/srv/all.env");
}

#[test]
fn yaml_errors_point_at_the_line() {
    let e = err(
        "all:\n  hosts:\n    w1:\n      ansible_port: nope\n  vars:\n    fleetauth_providers: claude\n",
    );
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("ansible_port"), "{e}");
    let e = err("all:\n  hosts:\n    w1:\n  hostz:\n");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("unknown key `hostz`"), "{e}");
    let e = err("all:\n  hosts: [a\n");
    assert!(e.message.starts_with("invalid YAML"), "{e}");
    assert!(e.line.is_some());
}

#[test]
fn detection_by_content() {
    assert!(looks_like_ansible(INI));
    assert!(looks_like_ansible(YAML));
    assert!(looks_like_ansible("# c\nall:\n  hosts:\n"));
    assert!(looks_like_ansible("host1\n[web]\n"));
    assert!(!looks_like_ansible("[defaults]\nuser = \"x\"\n"));
    assert!(!looks_like_ansible("# c\n[members.a]\nhost = \"h\"\n"));
    assert!(!looks_like_ansible("[members]\n"));
}

// ---------------------------------------------------------------- group_vars/, host_vars/

/// Writes `files` (path relative to a fresh directory → content) and reads `hosts` there.
fn with_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Inventory, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let inventory = dir.path().join("hosts");
    let text = std::fs::read_to_string(&inventory).unwrap();
    let result = parse_with(&text, &inventory, KNOWN, &env());
    (dir, result)
}

const DIRS_INI: &str = "\
[web]
web01 fleetauth_env_file=/srv/inv-host.env
web02

[prod:children]
web

[all:vars]
fleetauth_providers=claude
ansible_user=inv-all

[web:vars]
fleetauth_env_file=/srv/inv-web.env
ansible_user=inv-web
fleetauth_connect_timeout=5s
";

#[test]
fn group_vars_and_host_vars_rank_as_ansible_does() {
    let (_dir, inv) = with_files(&[
        ("hosts", DIRS_INI),
        ("group_vars/all.yml", "---\nansible_user: gv-all\n"),
        // A directory: every file, sorted; later files win; other extensions, hidden and
        // backup files are not read.
        ("group_vars/prod/10-base.yml", "ansible_port: 2200\n"),
        ("group_vars/prod/20-over.yaml", "ansible_port: 2201\n"),
        ("group_vars/prod/30-notes.txt", "ansible_port: 9\n"),
        ("group_vars/prod/.hidden.yml", "fleetauth_nonsense: 1\n"),
        ("group_vars/prod/40-old~", "fleetauth_nonsense: 1\n"),
        (
            "group_vars/prod/sub/50-deeper",
            "fleetauth_probe_timeout: 7s\n",
        ),
        // The bare name is found first: web.json is not read.
        ("group_vars/web", "fleetauth_env_file: /srv/gv-web.env\n"),
        (
            "group_vars/web.json",
            "{\"fleetauth_env_file\": \"/srv/json.env\"}\n",
        ),
        (
            "host_vars/web02.json",
            "{\"ansible_host\": \"10.0.0.2\",\n \"fleetauth_env_file\": \"/srv/hv.env\"}\n",
        ),
        // Names nothing in the inventory uses are not read (this one would be an error).
        ("host_vars/web99.yml", "fleetauth_nonsense: 1\n"),
    ]);
    let inv = inv.unwrap_or_else(|e| panic!("{e}"));
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
    let w1 = member(&inv, "web01");
    // The inventory's host vars beat group_vars/ files; group_vars/all beats every group's
    // vars in the inventory file (Ansible's order), a deeper group_vars/ file beats it.
    assert_eq!(w1.env_file, "/srv/inv-host.env");
    assert_eq!(w1.ssh.user, "gv-all");
    assert_eq!(w1.ssh.port, 2201);
    assert_eq!(w1.ssh.connect_timeout, std::time::Duration::from_secs(5));
    assert_eq!(w1.probe_timeout, Some(std::time::Duration::from_secs(7)));
    assert_eq!(w1.ssh.host, "web01");
    let w2 = member(&inv, "web02");
    assert_eq!(
        (w2.ssh.host.as_str(), w2.env_file.as_str()),
        ("10.0.0.2", "/srv/hv.env")
    );
    assert_eq!(w2.tags, ["prod", "web"]);
}

#[test]
fn group_vars_ungrouped_reaches_hosts_in_no_group() {
    let (_dir, inv) = with_files(&[
        (
            "hosts",
            "all:\n  vars:\n    fleetauth_providers: claude\n  hosts:\n    lone:\n  children:\n    web:\n      hosts:\n        w1:\n",
        ),
        (
            "group_vars/ungrouped.yml",
            "fleetauth_env_file: /srv/ungrouped.env\n",
        ),
    ]);
    let inv = inv.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(member(&inv, "lone").env_file, "/srv/ungrouped.env");
    assert_ne!(member(&inv, "w1").env_file, "/srv/ungrouped.env");
    assert!(member(&inv, "lone").tags.is_empty());
}

const VAULT: &str = "$ANSIBLE_VAULT;1.1;AES256\n61626364656667686970\n";

#[test]
fn a_vaulted_file_is_skipped_with_a_warning() {
    let (dir, inv) = with_files(&[
        ("hosts", "[web]\nweb01\n"),
        ("group_vars/all/vars.yml", "fleetauth_providers: [claude]\n"),
        ("group_vars/all/vault.yml", VAULT),
    ]);
    let inv = inv.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(member(&inv, "web01").providers, ["claude"]);
    let vault = dir.path().join("group_vars/all/vault.yml");
    assert_eq!(
        inv.warnings,
        [format!(
            "warning: {}: skipped: it is encrypted with Ansible Vault, which fleetauth cannot \
             decrypt; keep the variables fleetauth reads in a plain file beside it",
            vault.display()
        )]
    );
}

#[test]
fn an_inline_vault_value_fleetauth_reads_is_an_error() {
    let inline = "fleetauth_providers: claude\nansible_become_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\nansible_user: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n";
    let (dir, inv) = with_files(&[("hosts", "[web]\nweb01\n"), ("host_vars/web01.yml", inline)]);
    let e = inv.expect_err("an error");
    assert_eq!(e.file, dir.path().join("host_vars/web01.yml"));
    assert_eq!(e.line, Some(5), "{e}");
    assert!(
        e.message
            .contains("`ansible_user` is encrypted with Ansible Vault"),
        "{e}"
    );
    // A vaulted variable fleetauth does not read is fine.
    let ok_inline = "fleetauth_providers: claude\nansible_become_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n";
    let (_dir, inv) = with_files(&[
        ("hosts", "[web]\nweb01\n"),
        ("host_vars/web01.yml", ok_inline),
    ]);
    inv.unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn errors_in_vars_files_name_the_file_and_line() {
    let (dir, inv) = with_files(&[
        (
            "hosts",
            "[web]\nweb01\n[all:vars]\nfleetauth_providers=claude\n",
        ),
        ("group_vars/web/a.yml", "# web\nansible_user: deploy\n"),
        ("group_vars/web/b.yml", "---\n# ports\nansible_port: nope\n"),
    ]);
    let e = inv.expect_err("an error");
    assert_eq!(e.file, dir.path().join("group_vars/web/b.yml"));
    assert_eq!((e.line, e.col), (Some(3), Some(1)), "{e}");
    assert!(e.message.contains("`ansible_port` must be a port"), "{e}");

    let (dir, inv) = with_files(&[
        ("hosts", "[web]\nweb01\n"),
        ("host_vars/web01", "# list, not a mapping\n- a\n- b\n"),
    ]);
    let e = inv.expect_err("an error");
    assert_eq!(e.file, dir.path().join("host_vars/web01"));
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("must be a mapping"), "{e}");

    let (dir, inv) = with_files(&[
        ("hosts", "[web]\nweb01\n"),
        ("group_vars/all.yaml", "fleetauth_providers: [claude\n"),
    ]);
    let e = inv.expect_err("an error");
    assert_eq!(e.file, dir.path().join("group_vars/all.yaml"));
    assert!(e.message.starts_with("invalid YAML"), "{e}");

    let (dir, inv) = with_files(&[
        ("hosts", "[web]\nweb01\n"),
        (
            "group_vars/all.yml",
            "\nfleetauth_providers: claude\nfleetauth_env: x\n",
        ),
    ]);
    let e = inv.expect_err("an error");
    assert_eq!(
        (e.file.clone(), e.line),
        (dir.path().join("group_vars/all.yml"), Some(3))
    );
    assert!(
        e.message.contains("unknown variable `fleetauth_env`"),
        "{e}"
    );
}
