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
