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
    assert_eq!(names, ["claude", "codex", "copilot", "gemini", "gemini2"]);

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
