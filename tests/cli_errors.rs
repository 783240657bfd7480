//! Bad input through the real binary: exit 2, the file, line and column, the bad key and the
//! accepted ones — and nothing contacted.

mod support;

use std::fs;

use support::{Lab, State};

fn write(lab: &Lab, name: &str, text: &str) -> String {
    let path = lab.dir().join(name);
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn unknown_member_key_names_file_line_column_and_accepted_keys() {
    let lab = Lab::new();
    let inv = write(
        &lab,
        "bad.toml",
        "[members.build-01]\nhost = \"10.0.0.1\"\nprot = 22\nproviders = [\"gemini\"]\n",
    );
    let out = lab.fleetauth(&["sweep", "-i", &inv]);
    out.assert_exit(2);
    out.assert_stderr_contains("bad.toml:3:1");
    out.assert_stderr_contains("`prot`");
    out.assert_stderr_contains("accepted keys");
    out.assert_stderr_contains("port");
    assert!(
        out.stdout.is_empty(),
        "no report on bad input: {}",
        out.stdout
    );
}

#[test]
fn bad_duration_wrong_type_missing_host_unknown_provider_empty_fleet() {
    let lab = Lab::new();
    let cases = [
        (
            "dur.toml",
            "[defaults]\nconnect_timeout = \"ten seconds\"\nproviders = [\"gemini\"]\n[members.a]\nhost = \"h\"\n",
            "dur.toml:2:",
        ),
        (
            "type.toml",
            "[members.a]\nhost = \"h\"\nport = \"22\"\nproviders = [\"gemini\"]\n",
            "type.toml:3:",
        ),
        (
            "nohost.toml",
            "[members.a]\nproviders = [\"gemini\"]\n",
            "host",
        ),
        (
            "prov.toml",
            "[members.a]\nhost = \"h\"\nproviders = [\"gemnii\"]\n",
            "gemini",
        ),
        (
            "empty.toml",
            "[defaults]\nproviders = [\"gemini\"]\n",
            "empty.toml",
        ),
        (
            "syntax.toml",
            "[members.a\nhost = \"h\"\n",
            "syntax.toml:1:",
        ),
    ];
    for (name, text, needle) in cases {
        let inv = write(&lab, name, text);
        let out = lab.fleetauth(&["inventory", "check", "-i", &inv]);
        out.assert_exit(2);
        out.assert_stderr_contains(needle);
    }
}

#[test]
fn bad_provider_file_in_providers_dir() {
    let lab = Lab::new();
    let dir = lab.dir().join("providers");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("mine.toml"),
        "name = \"mine\"\nbinary = \"mine\"\nkey_env = \"MINE_KEY\"\nbinnary = \"x\"\n",
    )
    .unwrap();
    let out = lab.fleetauth(&[
        "providers",
        "list",
        "--providers-dir",
        dir.to_str().unwrap(),
    ]);
    out.assert_exit(2);
    out.assert_stderr_contains("mine.toml:4:1");
    out.assert_stderr_contains("`binnary`");
}

#[test]
fn providers_dir_overrides_and_extends() {
    let lab = Lab::new();
    let dir = lab.dir().join("providers");
    fs::create_dir_all(&dir).unwrap();
    let gemini = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/providers/gemini.toml"
    ))
    .unwrap();
    fs::write(
        dir.join("g2.toml"),
        gemini.replace("name = \"gemini\"", "name = \"gemini2\""),
    )
    .unwrap();
    let out = lab.fleetauth(&[
        "providers",
        "list",
        "--format",
        "json",
        "--providers-dir",
        dir.to_str().unwrap(),
    ]);
    out.assert_exit(0);
    let json = out.json();
    let names: Vec<&str> = json["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"gemini2"), "{names:?}");
    for builtin in ["claude", "codex", "copilot", "gemini", "agy", "qwen"] {
        assert!(names.contains(&builtin), "{names:?}");
    }
    assert!(names.is_sorted(), "{names:?}");

    // A member of the new provider is swept with its definition.
    lab.member("m").provider("gemini", State::EnvKey).start();
    let inv = lab.inventory("");
    let text = fs::read_to_string(&inv)
        .unwrap()
        .replace("\"gemini\"", "\"gemini2\"");
    fs::write(&inv, text).unwrap();
    let out = lab.fleetauth(&[
        "sweep",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "json",
        "--providers-dir",
        dir.to_str().unwrap(),
    ]);
    out.assert_exit(0);
    assert_eq!(out.row("m", "gemini2")["state"], "ready");
}

#[test]
fn inventory_check_lists_members() {
    let lab = Lab::new();
    let inv = write(
        &lab,
        "ok.toml",
        "[defaults]\nproviders = [\"gemini\"]\n[members.a]\nhost = \"10.0.0.1\"\ntags = [\"gpu\"]\n[members.b]\nhost = \"10.0.0.2\"\nport = 2222\n",
    );
    let out = lab.fleetauth(&["inventory", "check", "-i", &inv]);
    out.assert_exit(0);
    out.assert_stdout_contains("10.0.0.2:2222");
    out.assert_stdout_contains("2 members OK");
}

/// Runs `args` twice, stdout read and then stdout closed (as `| head -1` leaves it once `head`
/// is gone): the second must end as the first did — same status, no panic, no complaint.
fn ends_quietly_with_stdout_closed(lab: &Lab, args: &[&str]) {
    let open = lab.fleetauth(args);
    let closed = lab.run(args).output_with_stdout_closed();
    assert!(
        closed.code == open.code && closed.code.is_some() && !closed.timed_out,
        "{args:?} with stdout closed ended otherwise than with it open (exit {:?})\n{closed}",
        open.code
    );
    for noise in ["panicked", "Broken pipe", "failed printing"] {
        assert!(
            !closed.stderr.contains(noise),
            "{args:?} complained about the closed stdout\n{closed}"
        );
    }
}

#[test]
fn every_command_ends_quietly_when_stdout_is_closed() {
    let lab = Lab::new();
    lab.member("m").provider("gemini", State::EnvKey).start();
    let inv = lab.inventory("");
    let inv = inv.to_str().unwrap();
    for format in ["table", "json"] {
        ends_quietly_with_stdout_closed(&lab, &["providers", "list", "--format", format]);
        ends_quietly_with_stdout_closed(
            &lab,
            &["inventory", "check", "-i", inv, "--format", format],
        );
        ends_quietly_with_stdout_closed(&lab, &["auth", "status", "--format", format]);
        ends_quietly_with_stdout_closed(&lab, &["matrix", "-i", inv, "--format", format]);
    }
    // sweep and provision take every format; JSON lines are written as members finish.
    for format in [
        "table",
        "plain",
        "tsv",
        "json",
        "jsonl",
        "junit",
        "prometheus",
    ] {
        ends_quietly_with_stdout_closed(&lab, &["sweep", "-i", inv, "--format", format]);
        ends_quietly_with_stdout_closed(
            &lab,
            &[
                "provision",
                "-i",
                inv,
                "--check",
                "--no-input",
                "--format",
                format,
            ],
        );
    }
    for format in ["table", "json", "jsonl", "junit"] {
        ends_quietly_with_stdout_closed(
            &lab,
            &["run", "-i", inv, "--format", format, "--", "echo", "hello"],
        );
    }
    ends_quietly_with_stdout_closed(&lab, &["auth", "unset", "gemini"]);
    ends_quietly_with_stdout_closed(&lab, &["--help"]);
}

#[test]
fn durations_longer_than_a_day_are_refused_where_written() {
    let lab = Lab::new();
    for key in ["connect_timeout", "command_timeout", "probe_timeout"] {
        let inv = write(
            &lab,
            &format!("{key}.toml"),
            &format!(
                "[defaults]\nproviders = [\"gemini\"]\n[members.a]\nhost = \"h\"\n{key} = \"300000000000y\"\n"
            ),
        );
        let out = lab.fleetauth(&["inventory", "check", "-i", &inv]);
        out.assert_exit(2);
        out.assert_stderr_contains(&format!("{key}.toml:5:{}", key.len() + 4));
        out.assert_stderr_contains(&format!("`{key}` in [members.a] must be at most 24h"));
    }
    // 24h is the maximum itself, and accepted.
    let inv = write(
        &lab,
        "day.toml",
        "[defaults]\nproviders = [\"gemini\"]\ncommand_timeout = \"24h\"\n[members.a]\nhost = \"h\"\n",
    );
    lab.fleetauth(&["inventory", "check", "-i", &inv])
        .assert_exit(0);

    let dir = lab.dir().join("providers");
    fs::create_dir_all(&dir).unwrap();
    let gemini = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/providers/gemini.toml"
    ))
    .unwrap();
    assert!(
        gemini.contains("\ntimeout = \"45s\""),
        "gemini.toml changed"
    );
    fs::write(
        dir.join("gemini.toml"),
        gemini.replace("\ntimeout = \"45s\"", "\ntimeout = \"300000000000y\""),
    )
    .unwrap();
    let out = lab.fleetauth(&[
        "providers",
        "list",
        "--providers-dir",
        dir.to_str().unwrap(),
    ]);
    out.assert_exit(2);
    out.assert_stderr_contains("gemini.toml:");
    out.assert_stderr_contains("`timeout` in [probe]");
}

#[test]
fn inventory_check_json_spells_enums_as_the_inventory_does() {
    let lab = Lab::new();
    let inv = write(
        &lab,
        "hkc.toml",
        "[defaults]\nproviders = [\"gemini\"]\n[members.a]\nhost = \"h\"\nhost_key_checking = \"accept-new\"\n[members.b]\nhost = \"i\"\n",
    );
    let out = lab.fleetauth(&["inventory", "check", "-i", &inv, "--format", "json"]);
    out.assert_exit(0);
    let json = out.json();
    assert_eq!(
        json["members"][0]["host_key_checking"], "accept-new",
        "{out}"
    );
    assert_eq!(json["members"][1]["host_key_checking"], "strict", "{out}");

    let inv = write(
        &lab,
        "bad-hkc.toml",
        "[defaults]\nproviders = [\"gemini\"]\n[members.a]\nhost = \"h\"\nhost_key_checking = \"acceptnew\"\n",
    );
    let out = lab.fleetauth(&["inventory", "check", "-i", &inv]);
    out.assert_exit(2);
    out.assert_stderr_contains("accepted values: strict, accept-new, off");
}

#[test]
fn a_relative_xdg_config_home_is_ignored() {
    let lab = Lab::new();
    // Under the relative XDG_CONFIG_HOME (resolved against the working directory, the lab's
    // directory): a broken definition that must not be read.
    let relative = lab.dir().join("rel/fleetauth/providers");
    fs::create_dir_all(&relative).unwrap();
    fs::write(relative.join("broken.toml"), "this is not a provider\n").unwrap();
    // Under ~/.config/fleetauth, where the home falls back to: a new provider.
    let home = lab.operator_home().join(".config/fleetauth/providers");
    fs::create_dir_all(&home).unwrap();
    let gemini = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/providers/gemini.toml"
    ))
    .unwrap();
    fs::write(
        home.join("g3.toml"),
        gemini.replace("name = \"gemini\"", "name = \"gemini3\""),
    )
    .unwrap();
    let out = lab
        .run(&["providers", "list", "--format", "json"])
        .env("FLEETAUTH_HOME", "")
        .env("XDG_CONFIG_HOME", "rel")
        .output();
    out.assert_exit(0);
    let json = out.json();
    let names: Vec<&str> = json["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gemini3"),
        "the provider under ~/.config/fleetauth is read: {names:?}"
    );
}

#[test]
fn ansible_style_limit_and_closest_names_when_nothing_matches() {
    let lab = Lab::new();
    let inv = write(
        &lab,
        "limit.toml",
        "[defaults]\nproviders = [\"gemini\"]\n[members.build-01]\nhost = \"10.0.0.1\"\ntags = [\"gpu\"]\n[members.build-02]\nhost = \"10.0.0.2\"\n[members.web-01]\nhost = \"10.0.0.3\"\ntags = [\"gpu\"]\n[members.zz-other]\nhost = \"10.0.0.4\"\n",
    );
    let out = lab.fleetauth(&[
        "inventory",
        "check",
        "-i",
        &inv,
        "--format",
        "json",
        "--limit",
        "build-*,web-*,&gpu,!web-01",
    ]);
    out.assert_exit(0);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = json["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["build-01"]);

    let out = lab.fleetauth(&["inventory", "check", "-i", &inv, "--limit", "!bulid-01"]);
    out.assert_exit(2);
    out.assert_stderr_contains("`bulid-01` matches no member name or tag");
    out.assert_stderr_contains("closest: build-01 (member)");
    assert!(
        !out.stderr.contains("zz-other"),
        "only the closest names: {}",
        out.stderr
    );
}

#[test]
fn host_forms_are_split_or_refused_and_check_reports_missing_files() {
    let lab = Lab::new();
    let inv = write(
        &lab,
        "hosts.toml",
        "[defaults]\nproviders = [\"gemini\"]\n[members.a]\nhost = \"ssh://ops@[::1]:2222\"\n[members.b]\nhost = \"b.lan:2022\"\nport = 22\n",
    );
    let out = lab.fleetauth(&["inventory", "check", "-i", &inv]);
    out.assert_exit(2);
    out.assert_stderr_contains("hosts.toml:6:8");
    out.assert_stderr_contains("says port 2022 but `port` says 22");

    let missing = lab.dir().join("no-such-key");
    let kh = lab.dir().join("no-such-known-hosts");
    let inv = write(
        &lab,
        "files.toml",
        &format!(
            "[defaults]\nproviders = [\"gemini\"]\nknown_hosts = \"{}\"\n[members.a]\nhost = \"ops@[::1]:2222\"\nidentity_file = \"{}\"\n",
            kh.display(),
            missing.display()
        ),
    );
    let out = lab.fleetauth(&["inventory", "check", "-i", &inv, "--format", "json"]);
    out.assert_exit(2);
    out.assert_stderr_contains("error: member `a`: identity_file");
    if !std::path::Path::new("/etc/ssh/ssh_known_hosts").exists() {
        out.assert_stderr_contains("warning: member `a`: known_hosts");
    }
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let a = &json["members"][0];
    assert_eq!(
        (a["host"].as_str(), a["port"].as_u64(), a["user"].as_str()),
        (Some("::1"), Some(2222), Some("ops"))
    );
}

#[test]
fn ansible_inventory_errors_name_file_and_line_and_the_format_can_be_forced() {
    let lab = Lab::new();
    let ini = write(
        &lab,
        "hosts",
        "[web]\nweb[01:02]\n\n[all:vars]\nfleetauth_providers=gemini,gemnii\n",
    );
    let out = lab.fleetauth(&["inventory", "check", "-i", &ini]);
    out.assert_exit(2);
    out.assert_stderr_contains("hosts:5:1");
    out.assert_stderr_contains("unknown provider `gemnii`");

    let yaml = write(
        &lab,
        "hosts.yml",
        "all:\n  vars:\n    fleetauth_providers: [gemini]\n  hosts:\n    w1:\n      ansible_port: \"x\"\n",
    );
    let out = lab.fleetauth(&["inventory", "check", "-i", &yaml]);
    out.assert_exit(2);
    out.assert_stderr_contains("hosts.yml:6:");
    out.assert_stderr_contains("ansible_port");

    // A TOML inventory read as Ansible (and the reverse) fails where the other reader stops.
    let toml = write(
        &lab,
        "inv.toml",
        "[defaults]\nproviders = [\"gemini\"]\n[members.a]\nhost = \"h\"\n",
    );
    let out = lab.fleetauth(&[
        "inventory",
        "check",
        "-i",
        &toml,
        "--inventory-format",
        "ansible",
    ]);
    out.assert_exit(2);
    out.assert_stderr_contains("inv.toml:2:");
    let out = lab.fleetauth(&[
        "inventory",
        "check",
        "-i",
        &ini,
        "--inventory-format",
        "toml",
    ]);
    out.assert_exit(2);
    out.assert_stderr_contains("invalid TOML");
}
