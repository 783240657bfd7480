//! `fleetauth provision` against real sshd members: every strategy, every key source, the env
//! file's other lines, restore after a rejected key, idempotence, racing provisioners, and no
//! key anywhere it must not be.

mod support;

use std::fs;

use support::{Lab, State, fake};

const PASS: &str = support::STORE_PASSPHRASE;

#[test]
fn each_strategy_in_order() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    lab.member("pre").provider("gemini", State::EnvKey).start();
    lab.member("login")
        .provider("gemini", State::OauthValid)
        .start();
    let push = lab
        .member("push")
        .provider("gemini", State::NoAuth)
        .env_line("FOO='keep me'")
        .start();
    lab.member("absent")
        .provider("gemini", State::NotInstalled)
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");

    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    out.assert_exit(1); // `absent` has no CLI
    let row = |m: &str| out.row(m, "gemini").clone();
    assert_eq!(
        (row("pre")["state"].as_str(), row("pre")["action"].as_str()),
        (Some("ready"), Some("none"))
    );
    assert!(
        row("pre")["detail"]
            .as_str()
            .unwrap()
            .contains("already works")
    );
    assert_eq!(
        (
            row("login")["state"].as_str(),
            row("login")["action"].as_str()
        ),
        (Some("ready"), Some("none"))
    );
    assert!(
        row("login")["detail"]
            .as_str()
            .unwrap()
            .contains("own login")
    );
    assert_eq!(
        (
            row("push")["state"].as_str(),
            row("push")["action"].as_str(),
            row("push")["source"].as_str()
        ),
        (Some("ready"), Some("pushed"), Some("pushed_key"))
    );
    assert_eq!(row("absent")["state"], "not_installed");

    // The operator's line kept, the key added, mode 0600.
    let env = push.env_file_contents();
    assert!(env.starts_with("FOO='keep me'\n"), "{env}");
    assert!(
        env.contains(&format!("export GEMINI_API_KEY='{key}'")),
        "key line missing"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(push.env_file()).unwrap().permissions().mode() & 0o777,
        0o600
    );
    out.assert_no_secret(&key);

    // Second run: nothing pushed anywhere.
    let again = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    for m in ["pre", "login", "push"] {
        assert_eq!(again.row(m, "gemini")["action"], "none", "{m}");
        assert_eq!(again.row(m, "gemini")["state"], "ready", "{m}");
    }
    assert_eq!(push.env_file_contents(), env);
}

#[test]
fn no_key_anywhere_is_needs_auth_with_the_exact_remedy() {
    let lab = Lab::new();
    lab.member("m").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab.provision_json(&inv, &[], &[]);
    out.assert_exit(1);
    let row = out.row("m", "gemini");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("needs_auth"), Some("none"))
    );
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("fleetauth auth set gemini"), "{detail}");
    assert!(detail.contains("export GEMINI_API_KEY="), "{detail}");
}

#[test]
fn key_from_the_store_and_check_writes_nothing() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    lab.store_key("gemini", &key);
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line("A=1")
        .start();
    let inv = lab.inventory("");
    let before = m.env_file_contents();

    let plan = lab.provision_json(&inv, &[], &["--check"]);
    let row = plan.row("m", "gemini");
    assert_eq!(row["action"], "would_push");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains(&fake::masked(&key)), "{detail}");
    assert!(detail.contains("from store"), "{detail}");
    plan.assert_no_secret(&key);
    assert_eq!(m.env_file_contents(), before, "--check wrote the env file");

    let out = lab.provision_json(&inv, &[], &[]);
    out.assert_exit(0);
    assert_eq!(out.row("m", "gemini")["action"], "pushed");
    // The audit log has the push with a fingerprint, never the key.
    let audit = fs::read_to_string(lab.fleetauth_home().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"action\":\"pushed\""), "{audit}");
    assert!(audit.contains("sha256:"), "{audit}");
    assert!(!audit.contains(&key));
}

#[test]
fn rejected_key_is_restored_and_failed_with_the_cli_reason() {
    let lab = Lab::new();
    let bad = fake::gemini_key();
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line("KEEP='this line'")
        .vendor_rejects(&bad)
        .start();
    let inv = lab.inventory("");
    let before = m.env_file_contents();
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &bad)], &[]);
    out.assert_exit(1);
    let row = out.row("m", "gemini");
    assert_eq!(row["action"], "failed");
    assert_eq!(row["state"], "needs_auth");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("API key rejected"), "{detail}");
    assert!(detail.contains("restored"), "{detail}");
    assert_eq!(
        m.env_file_contents(),
        before,
        "previous env file not restored"
    );
    out.assert_no_secret(&bad);
}

/// Settings that select gemini's OAuth login, with other content `--fix-shadowing` must keep.
const OAUTH_SETTINGS: &str = "{\n  \"ui\": { \"theme\": \"GitHub\" },\n  \"security\": {\n    \"auth\": {\n      \"selectedType\": \"oauth-personal\"\n    }\n  },\n  \"mcpServers\": {}\n}\n";

/// A gemini member whose user settings select an expired OAuth login: a pushed GEMINI_API_KEY
/// can never win there.
fn gemini_selecting_oauth(lab: &Lab, rejects: Option<&str>) -> support::Member {
    let mut b = lab
        .member("m")
        .provider("gemini", State::OauthExpired)
        .env_line("KEEP='this line'");
    if let Some(key) = rejects {
        b = b.vendor_rejects(key);
    }
    let m = b.start();
    let settings = m.home().join(".gemini/settings.json");
    fs::write(&settings, OAUTH_SETTINGS).unwrap();
    m.own(&settings);
    m
}

/// Names of fleetauth's leftovers (temp files, transaction backups) under `dir`.
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.contains(".fleetauth-tmp")
                        || n.contains(".fleetauth-txn")
                        || n.contains(".fleetauth-prev")
                        || n.contains(".fleetauth-created")
                })
                .collect()
        })
        .unwrap_or_default()
}

fn audit_log(lab: &Lab) -> String {
    fs::read_to_string(lab.fleetauth_home().join("audit.jsonl")).unwrap_or_default()
}

#[test]
fn a_settings_selection_blocks_the_push_and_nothing_is_written() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let m = gemini_selecting_oauth(&lab, None);
    let inv = lab.inventory("");
    let settings = m.home().join(".gemini/settings.json");
    let env_before = fs::read(m.env_file()).unwrap();

    let plan = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &["--check"]);
    assert_eq!(
        plan.row("m", "gemini")["action"],
        "blocked",
        "--check predicts it"
    );

    for run in 1..=2 {
        let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
        out.assert_exit(1);
        out.assert_no_secret(&key);
        let row = out.row("m", "gemini");
        assert_eq!(
            (row["state"].as_str(), row["action"].as_str()),
            (Some("needs_auth"), Some("blocked")),
            "run {run}: {row}"
        );
        let detail = row["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(
                "blocked: GEMINI_API_KEY would be shadowed by ~/.gemini/settings.json security.auth.selectedType=oauth-personal; \
                 set security.auth.selectedType to \"gemini-api-key\" in ~/.gemini/settings.json"
            ),
            "{detail}"
        );
        assert!(detail.contains("--fix-shadowing"), "{detail}");
        assert_eq!(
            fs::read(m.env_file()).unwrap(),
            env_before,
            "run {run} wrote the env file"
        );
        assert_eq!(fs::read_to_string(&settings).unwrap(), OAUTH_SETTINGS);
        // Nothing was pushed, so no failure (nor anything else) is logged, run after run.
        assert_eq!(audit_log(&lab), "", "run {run}");
    }
}

#[test]
fn fix_shadowing_selects_the_api_key_in_the_user_settings_and_pushes() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let m = gemini_selecting_oauth(&lab, None);
    let inv = lab.inventory("");
    let settings = m.home().join(".gemini/settings.json");

    let plan = lab.provision_json(
        &inv,
        &[("GEMINI_API_KEY", &key)],
        &["--check", "--fix-shadowing"],
    );
    let row = plan.row("m", "gemini");
    assert_eq!(row["action"], "would_push", "{row}");
    assert!(
        row["detail"].as_str().unwrap().contains(
            "set security.auth.selectedType to \"gemini-api-key\" in ~/.gemini/settings.json (--fix-shadowing)"
        ),
        "{row}"
    );
    assert_eq!(
        fs::read_to_string(&settings).unwrap(),
        OAUTH_SETTINGS,
        "--check wrote"
    );

    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &["--fix-shadowing"]);
    out.assert_exit(0);
    out.assert_no_secret(&key);
    let row = out.row("m", "gemini");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("pushed")),
        "{row}"
    );
    // Only the selection changed: every other byte of the settings file is kept.
    assert_eq!(
        fs::read_to_string(&settings).unwrap(),
        OAUTH_SETTINGS.replace("oauth-personal", "gemini-api-key")
    );
    let env = m.env_file_contents();
    assert!(
        env.contains("KEEP='this line'") && env.contains("GEMINI_API_KEY="),
        "{env}"
    );
    assert!(
        leftovers(&m.home().join(".gemini")).is_empty(),
        "{:?}",
        leftovers(&m.home().join(".gemini"))
    );
    assert!(leftovers(m.env_file().parent().unwrap()).is_empty());
    // The next run finds it working and leaves it.
    let again = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &["--fix-shadowing"]);
    assert_eq!(again.row("m", "gemini")["action"], "none");
}

#[test]
fn fix_shadowing_with_a_rejected_key_restores_the_settings_and_the_env_file() {
    let lab = Lab::new();
    let bad = fake::gemini_key();
    let m = gemini_selecting_oauth(&lab, Some(&bad));
    let inv = lab.inventory("");
    let settings = m.home().join(".gemini/settings.json");
    let env_before = fs::read(m.env_file()).unwrap();
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &bad)], &["--fix-shadowing"]);
    out.assert_exit(1);
    out.assert_no_secret(&bad);
    let row = out.row("m", "gemini");
    assert_eq!(row["action"], "failed", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.contains("API key rejected") && detail.contains("restored"),
        "{detail}"
    );
    assert_eq!(fs::read(&settings).unwrap(), OAUTH_SETTINGS.as_bytes());
    assert_eq!(fs::read(m.env_file()).unwrap(), env_before);
    assert!(leftovers(&m.home().join(".gemini")).is_empty());
    assert!(audit_log(&lab).contains("\"action\":\"restored\""));
}

#[test]
fn a_stale_codex_key_in_the_members_own_environment_blocks_even_with_fix_shadowing() {
    let lab = Lab::new();
    let stale = fake::openai_key();
    let key = fake::openai_key();
    let m = lab
        .member("m")
        .provider("codex", State::NoAuth)
        .ambient_env("CODEX_API_KEY", &stale)
        .vendor_rejects(&stale)
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let plan = lab.provision_json(
        &inv,
        &[("OPENAI_API_KEY", &key)],
        &["--check", "--fix-shadowing"],
    );
    assert_eq!(plan.row("m", "codex")["action"], "blocked");
    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &key)], &["--fix-shadowing"]);
    out.assert_exit(1);
    out.assert_no_secret(&key);
    out.assert_no_secret(&stale);
    let row = out.row("m", "codex");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("needs_auth"), Some("blocked")),
        "{row}"
    );
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "blocked: OPENAI_API_KEY would be shadowed by CODEX_API_KEY (environment)"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("sshd SetEnv") && detail.contains("~/.profile"),
        "{detail}"
    );
    assert!(detail.contains("not even with --fix-shadowing"), "{detail}");
    assert!(
        !m.home().join(".codex/auth.json").exists(),
        "codex login ran"
    );
    assert!(
        m.calls_log().iter().all(|c| !c.contains("--with-api-key")),
        "{:?}",
        m.calls_log()
    );
    assert_eq!(audit_log(&lab), "");
}

#[test]
fn auth_modes_narrow_the_strategies() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let oauth = lab
        .member("oauth")
        .provider("gemini", State::NoAuth)
        .inventory_line("auth_mode = { gemini = \"oauth\" }")
        .start();
    let apikey = lab
        .member("apikey")
        .provider("gemini", State::OauthValid)
        .inventory_line("auth_mode = { gemini = \"api_key\" }")
        .start();
    let inv = lab.inventory("");
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    let o = out.row("oauth", "gemini");
    assert_eq!(
        (o["state"].as_str(), o["action"].as_str()),
        (Some("needs_auth"), Some("none"))
    );
    assert!(o["detail"].as_str().unwrap().contains("auth_mode = oauth"));
    assert!(!oauth.env_file_contents().contains("GEMINI_API_KEY"));
    // api_key ignores the member's working login, but gemini's settings select the OAuth login:
    // a pushed key could never win, so nothing is pushed and the row says why.
    let a = out.row("apikey", "gemini");
    assert_eq!(
        (a["state"].as_str(), a["action"].as_str()),
        (Some("ready"), Some("blocked")),
        "{a}"
    );
    assert!(
        a["detail"]
            .as_str()
            .unwrap()
            .contains("blocked: GEMINI_API_KEY would be shadowed by ~/.gemini/settings.json"),
        "{a}"
    );
    assert!(!apikey.env_file_contents().contains("GEMINI_API_KEY"));
}

#[test]
fn codex_key_installed_by_its_login_command() {
    let lab = Lab::new();
    let key = fake::openai_key();
    let m = lab.member("m").provider("codex", State::NoAuth).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &key)], &[]);
    out.assert_exit(0);
    let row = out.row("m", "codex");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("pushed")),
        "{row}"
    );
    assert!(
        !m.env_file_contents().contains(&key),
        "codex keys go through `codex login`, not the env file"
    );
    assert!(m.commands_log().iter().all(|c| !c.contains(&key)));
}

#[test]
fn the_key_never_appears_in_argv_logs_output_or_audit() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let m = lab.member("m").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab
        .run(&["provision", "-i", inv.to_str().unwrap(), "--no-input"])
        .env("GEMINI_API_KEY", &key)
        .env("RUST_LOG", "trace")
        .output();
    out.assert_exit(0);
    out.assert_no_secret(&key);
    assert!(
        out.stderr.contains("TRACE") || out.stderr.contains("DEBUG"),
        "trace logging was not on"
    );
    for cmd in m.commands_log() {
        assert!(!cmd.contains(&key), "key in a member command line");
    }
    let audit = fs::read_to_string(lab.fleetauth_home().join("audit.jsonl")).unwrap();
    assert!(!audit.contains(&key));
}

/// A custom provider (data only) that accepts any key, to push keys made of shell syntax.
fn echo_provider(lab: &Lab) -> String {
    let dir = lab.dir().join("providers");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("echo.toml"),
        r#"name = "echo"
binary = "sh"
key_env = "ECHO_KEY"
[version]
args = ["-c", "echo 1.0.0"]
[probe]
args = ["-c", "test -n \"$ECHO_KEY\" && echo OK"]
timeout = "5s"
[[probe.rules]]
exit = [0]
outcome = "ready"
reason = "ok"
[[probe.rules]]
outcome = "needs_auth"
reason = "no key"
[config_home]
default = "~"
[[credentials]]
type = "env"
id = "echo_key"
var = "ECHO_KEY"
kind = "api_key"
[install]
method = "env_file"
"#,
    )
    .unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn keys_made_of_shell_syntax_source_back_exactly() {
    let lab = Lab::new();
    let dir = echo_provider(&lab);
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line("OTHER='x'")
        .start();
    let inv = lab.inventory("");
    let text = fs::read_to_string(&inv)
        .unwrap()
        .replace("\"gemini\"", "\"echo\"");
    fs::write(&inv, text).unwrap();
    let key = r#"a'b"c $(touch /tmp/pwned) `id` \back\slash  two  spaces;|&"#;
    let out = lab
        .run(&[
            "provision",
            "-i",
            inv.to_str().unwrap(),
            "--no-input",
            "--format",
            "json",
            "--providers-dir",
            &dir,
        ])
        .env("ECHO_KEY", key)
        .output();
    out.assert_exit(0);
    assert_eq!(out.row("m", "echo")["action"], "pushed");
    let back = lab.ssh(
        &m,
        "set -a; . ~/.config/fleetauth/env; printf %s \"$ECHO_KEY\"",
    );
    assert_eq!(back.stdout, key);
    assert!(m.env_file_contents().starts_with("OTHER='x'\n"));
}

#[test]
fn two_provisioners_racing_on_one_member_lose_nothing() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .provider("copilot", State::NoAuth)
        .env_line("KEEP=1")
        .start();
    let inv_g = lab.inventory_named("g.toml", "");
    let text = fs::read_to_string(&inv_g).unwrap().replace(
        "providers = [\"gemini\", \"copilot\"]",
        "providers = [\"gemini\"]",
    );
    fs::write(&inv_g, &text).unwrap();
    let inv_c = lab.dir().join("c.toml");
    fs::write(
        &inv_c,
        text.replace("providers = [\"gemini\"]", "providers = [\"copilot\"]"),
    )
    .unwrap();
    let (gk, ck) = (fake::gemini_key(), fake::github_oauth_token());
    std::thread::scope(|s| {
        let a = s.spawn(|| lab.provision_json(&inv_g, &[("GEMINI_API_KEY", &gk)], &[]));
        let b = s.spawn(|| lab.provision_json(&inv_c, &[("COPILOT_GITHUB_TOKEN", &ck)], &[]));
        a.join().unwrap().assert_exit(0);
        b.join().unwrap().assert_exit(0);
    });
    let env = m.env_file_contents();
    assert!(env.contains("KEEP=1"), "{env}");
    assert!(env.contains(&gk), "gemini line lost");
    assert!(env.contains(&ck), "copilot line lost");
}

#[test]
fn orchestrator_with_a_claude_login_and_a_gemini_key_provisions_a_mixed_fleet() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    lab.store_key("gemini", &key);
    operator_claude_login(&lab);
    let g = lab
        .member("gem")
        .provider("gemini", State::NoAuth)
        .env_line("MINE=1")
        .start();
    lab.member("cla")
        .provider("claude", State::OauthValid)
        .start();
    lab.member("cod").provider("codex", State::KeyFile).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let out = lab.provision_json(&inv, &[], &[]);
    out.assert_exit(0);
    for (m, p) in [("gem", "gemini"), ("cla", "claude"), ("cod", "codex")] {
        assert_eq!(out.row(m, p)["state"], "ready", "{m}");
    }
    assert_eq!(out.row("gem", "gemini")["action"], "pushed");
    assert!(g.env_file_contents().contains("MINE=1"));
    let again = lab.provision_json(&inv, &[], &[]);
    assert!(
        again.results().iter().all(|r| r["action"] == "none"),
        "second run pushed something"
    );

    // The matrix tells the same story.
    let matrix = lab.run(&["matrix", "-i", inv.to_str().unwrap()]).output();
    matrix.assert_exit(0);
    matrix.assert_stdout_contains("gemini (api_key)");
    matrix.assert_stdout_contains("claude (own login)");
    matrix.assert_stdout_contains("cannot authenticate");
    // Which logins can be shared safely: claude's rotates, so even --share-oauth does not copy it.
    let shared = lab
        .run(&[
            "matrix",
            "-i",
            inv.to_str().unwrap(),
            "--share-oauth",
            "--format",
            "json",
        ])
        .output();
    shared.assert_exit(0);
    let cells = shared.json()["matrix"].as_array().unwrap().clone();
    let claude = cells
        .iter()
        .find(|c| c["operator_provider"] == "claude" && c["member_provider"] == "claude")
        .unwrap();
    assert_eq!(
        claude["login_rotation"], "rotates: not safe to share",
        "{claude}"
    );
    let strategy = claude["strategy"].as_str().unwrap();
    assert!(
        strategy.contains("only with --share-rotating-login"),
        "{strategy}"
    );
}

/// Run fleetauth on a pseudo-terminal (tests/fixtures/pty_drive.py), typing `key` whenever it
/// asks for input; returns its exit status and everything it wrote to the terminal.
fn on_a_terminal(lab: &Lab, args: &[&str], key: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pty_drive.py"
        ))
        .arg("input hidden")
        .arg(env!("CARGO_BIN_EXE_fleetauth"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", lab.operator_home())
        .env("FLEETAUTH_HOME", lab.fleetauth_home())
        .env("TEST_KEY", key)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn out_of_band_prompt_on_a_terminal_is_asked_once_per_provider() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    let a = lab.member("a").provider("gemini", State::NoAuth).start();
    let b = lab.member("b").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let (code, screen) = on_a_terminal(
        &lab,
        &["provision", "-i", inv.to_str().unwrap(), "--color", "never"],
        &key,
    );
    assert_eq!(code, Some(0), "{screen}");
    assert_eq!(
        screen.matches("input hidden").count(),
        1,
        "asked more than once: {screen}"
    );
    assert!(!screen.contains(&key), "the key was echoed");
    assert_eq!(screen.matches(" pushed ").count(), 2, "{screen}");
    for m in [&a, &b] {
        assert!(m.env_file_contents().contains(&key));
    }
}

#[test]
fn no_input_never_prompts() {
    let lab = Lab::new();
    lab.member("a").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let (code, screen) = on_a_terminal(
        &lab,
        &[
            "provision",
            "-i",
            inv.to_str().unwrap(),
            "--no-input",
            "--color",
            "never",
        ],
        "unused",
    );
    assert_eq!(code, Some(1), "{screen}");
    assert!(!screen.contains("input hidden"), "{screen}");
    assert!(screen.contains("needs_auth"), "{screen}");
}

#[test]
fn auth_set_from_stdin_env_and_status() {
    let lab = Lab::new();
    let key = fake::gemini_key();
    lab.store_key("gemini", &key);
    // The identical key again: said so, exit 0.
    let again = lab
        .run(&["auth", "set", "gemini"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .stdin(key.as_bytes())
        .output();
    again.assert_exit(0).assert_stdout_contains("unchanged");
    // --from-env
    let cop = fake::github_oauth_token();
    lab.run(&["auth", "set", "copilot", "--from-env", "MY_TOKEN"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .env("MY_TOKEN", &cop)
        .output()
        .assert_exit(0)
        .assert_no_secret(&cop);
    // A key that does not look like the provider's is refused.
    lab.run(&["auth", "set", "gemini"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .stdin(b"not-a-gemini-key")
        .output()
        .assert_exit(1);
    // Status without the passphrase: present, no masked value; with it: masked.
    let locked = lab.fleetauth(&["auth", "status", "--format", "json"]);
    locked.assert_exit(0).assert_no_secret(&key);
    let rows = locked.json()["credentials"].as_array().unwrap().clone();
    let gem = rows
        .iter()
        .find(|r| r["provider"] == "gemini" && r["source"] == "store")
        .unwrap();
    assert_eq!(gem["status"], "present");
    assert!(gem["masked"].is_null());
    let unlocked = lab
        .run(&["auth", "status"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .output();
    unlocked
        .assert_exit(0)
        .assert_stdout_contains(&fake::masked(&key));
    unlocked.assert_no_secret(&key);
    // Files are private and hold no plaintext key.
    use std::os::unix::fs::PermissionsExt;
    let home = lab.fleetauth_home();
    assert_eq!(
        fs::metadata(&home).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for entry in fs::read_dir(&home).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                path.display()
            );
            let bytes = fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&key),
                "{} holds the key",
                path.display()
            );
        }
    }
    // unset
    lab.run(&["auth", "unset", "gemini"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .output()
        .assert_exit(0)
        .assert_stdout_contains("removed");
}

fn operator_claude_login(lab: &Lab) -> String {
    let token = fake::claude_oauth_token();
    let dir = lab.operator_home().join(".claude");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(".credentials.json"),
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"{token}","refreshToken":"{}","expiresAt":{},"scopes":["user:inference"]}}}}"#,
            fake::claude_refresh_token(),
            fake::epoch_s(8 * 3600) * 1000
        ),
    )
    .unwrap();
    token
}

#[test]
fn share_oauth_is_opt_in_warns_and_verifies() {
    let lab = Lab::new();
    let token = operator_claude_login(&lab);
    let m = lab.member("m").provider("claude", State::NoAuth).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");

    let without = lab.provision_json(&inv, &[], &[]);
    assert_eq!(without.row("m", "claude")["state"], "needs_auth");
    assert!(!m.home().join(".claude/.credentials.json").exists());

    // claude's refresh token rotates (providers/claude.toml `rotates = true`): --share-oauth
    // alone refuses to copy it and says how to insist.
    let refused = lab.provision_json(&inv, &[], &["--share-oauth"]);
    refused.assert_exit(1).assert_no_secret(&token);
    let row = refused.row("m", "claude");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("needs_auth"), Some("none")),
        "{row}"
    );
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.contains("refresh token rotates")
            && detail.contains("logs the first out")
            && detail.contains("--share-rotating-login"),
        "{detail}"
    );
    assert!(!m.home().join(".claude/.credentials.json").exists());

    // The second flag alone is a usage error: it only qualifies --share-oauth.
    lab.provision_json(&inv, &[], &["--share-rotating-login"])
        .assert_exit(2);

    let out = lab.provision_json(&inv, &[], &["--share-oauth", "--share-rotating-login"]);
    out.assert_exit(0);
    out.assert_stderr_contains("refresh token rotates");
    out.assert_no_secret(&token);
    let row = out.row("m", "claude");
    assert_eq!(
        (row["action"].as_str(), row["source"].as_str()),
        (Some("pushed"), Some("shared_oauth")),
        "{row}"
    );
    let copied = fs::read_to_string(m.home().join(".claude/.credentials.json")).unwrap();
    assert!(copied.contains(&token));
    assert!(m.commands_log().iter().all(|c| !c.contains(&token)));
}

/// docs/compatibility.md: an operator key for a provider makes that provider's members ready,
/// for every shipped provider (env file, or codex's login command).
#[test]
fn an_operator_key_provisions_members_of_every_provider() {
    let lab = Lab::new();
    let keys = [
        ("gemini", "GEMINI_API_KEY", fake::gemini_key()),
        ("claude", "ANTHROPIC_API_KEY", fake::anthropic_api_key()),
        ("codex", "OPENAI_API_KEY", fake::openai_key()),
        (
            "copilot",
            "COPILOT_GITHUB_TOKEN",
            fake::github_oauth_token(),
        ),
    ];
    for (p, _, _) in &keys {
        lab.member(&format!("m-{p}"))
            .provider(p, State::NoAuth)
            .start();
    }
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let env: Vec<(&str, &str)> = keys.iter().map(|(_, var, k)| (*var, k.as_str())).collect();
    let out = lab.provision_json(&inv, &env, &[]);
    out.assert_exit(0);
    for (p, _, k) in &keys {
        let row = out.row(&format!("m-{p}"), p);
        assert_eq!(
            (row["state"].as_str(), row["action"].as_str()),
            (Some("ready"), Some("pushed")),
            "{p}: {row}"
        );
        out.assert_no_secret(k);
    }
}

/// docs/compatibility.md: a key for one provider never reaches another provider's members.
#[test]
fn keys_never_cross_providers() {
    let lab = Lab::new();
    let m = lab.member("m").provider("claude", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &fake::gemini_key())], &[]);
    let row = out.row("m", "claude");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("needs_auth"), Some("none"))
    );
    assert!(!m.env_file_contents().contains("GEMINI_API_KEY"));
}

/// docs/compatibility.md: gemini uses a copied oauth_creds.json only when the member's settings
/// select it; without that the shared copy does not verify and is undone.
#[test]
fn shared_gemini_login_without_member_settings_is_undone() {
    let lab = Lab::new();
    let dir = lab.operator_home().join(".gemini");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("settings.json"),
        r#"{"security":{"auth":{"selectedType":"oauth-personal"}}}"#,
    )
    .unwrap();
    fs::write(
        dir.join("oauth_creds.json"),
        format!(
            r#"{{"access_token":"{}","refresh_token":"{}","expiry_date":{}}}"#,
            fake::google_access_token(),
            fake::google_refresh_token(),
            fake::epoch_s(3600 * 5) * 1000
        ),
    )
    .unwrap();
    let m = lab.member("m").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let out = lab.provision_json(&inv, &[], &["--share-oauth"]);
    let row = out.row("m", "gemini");
    assert_eq!(row["action"], "failed", "{row}");
    assert!(
        row["detail"].as_str().unwrap().contains("restored"),
        "{row}"
    );
    assert!(
        !m.home().join(".gemini/oauth_creds.json").exists(),
        "the copy was not undone"
    );
}

/// A key installed by a login command that does not verify (a stale CODEX_API_KEY in the env
/// file shadows it) is undone: auth.json goes back to what it was.
#[test]
fn failed_login_command_install_is_undone() {
    let lab = Lab::new();
    let bad = fake::openai_key();
    let m = lab
        .member("m")
        .provider("codex", State::NoAuth)
        .vendor_rejects(&bad)
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let auth = m.home().join(".codex/auth.json");
    assert!(!auth.exists());
    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &bad)], &[]);
    let row = out.row("m", "codex");
    assert_eq!(row["action"], "failed", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("previous state restored"), "{detail}");
    assert!(
        !auth.exists(),
        "the auth.json written by `codex login` was not removed"
    );
}

/// A rejected CODEX_API_KEY in the env file wins over any key `codex login` stores: such a push
/// is blocked, and the remedy names the variable and the file.
#[test]
fn a_codex_key_in_the_env_file_blocks_a_login_command_push() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("codex", State::RejectedKey)
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let before = m.env_file_contents();
    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &fake::openai_key())], &[]);
    let row = out.row("m", "codex");
    assert_eq!(row["action"], "blocked", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "blocked: OPENAI_API_KEY would be shadowed by CODEX_API_KEY (env file); remove CODEX_API_KEY from ~/.config/fleetauth/env"
        ),
        "{detail}"
    );
    assert_eq!(m.env_file_contents(), before);
    assert!(!m.home().join(".codex/auth.json").exists());
}

/// With --fix-shadowing the rejected CODEX_API_KEY leaves the env file in the same transaction
/// as `codex login` stores the new key; a new key that does not verify puts both back.
#[test]
fn fix_shadowing_drops_a_codex_key_from_the_env_file_before_the_login_command() {
    let lab = Lab::new();
    let bad = fake::openai_key();
    let good = fake::openai_key();
    let m = lab
        .member("m")
        .provider("codex", State::RejectedKey)
        .env_line("KEEP='this line'")
        .vendor_rejects(&bad)
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let auth = m.home().join(".codex/auth.json");
    let before = fs::read(m.env_file()).unwrap();

    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &bad)], &["--fix-shadowing"]);
    let row = out.row("m", "codex");
    assert_eq!(row["action"], "failed", "{row}");
    assert!(
        row["detail"].as_str().unwrap().contains("restored"),
        "{row}"
    );
    assert_eq!(
        fs::read(m.env_file()).unwrap(),
        before,
        "env file not restored"
    );
    assert!(!auth.exists(), "auth.json left behind");

    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &good)], &["--fix-shadowing"]);
    out.assert_exit(0);
    out.assert_no_secret(&good);
    let row = out.row("m", "codex");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("pushed")),
        "{row}"
    );
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("(--fix-shadowing: remove CODEX_API_KEY from ~/.config/fleetauth/env)"),
        "{row}"
    );
    let env = m.env_file_contents();
    assert!(!env.contains("CODEX_API_KEY"), "{env}");
    assert!(env.contains("KEEP='this line'"), "{env}");
    assert!(auth.exists());
    assert!(leftovers(m.env_file().parent().unwrap()).is_empty());
}

/// A Claude setup-token (`claude setup-token`, `sk-ant-oat01-…`, non-rotating) stored with
/// `auth set claude --kind oauth-token` goes into CLAUDE_CODE_OAUTH_TOKEN — never
/// ANTHROPIC_API_KEY — and the prompt verifies it there.
#[test]
fn claude_setup_token_is_pushed_into_claude_code_oauth_token_and_verified() {
    let lab = Lab::new();
    let token = fake::claude_oauth_token();
    let set = lab
        .run(&["auth", "set", "claude", "--kind", "oauth-token"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .stdin(token.as_bytes())
        .output();
    set.assert_exit(0)
        .assert_no_secret(&token)
        .assert_stdout_contains("pushed into CLAUDE_CODE_OAUTH_TOKEN");
    let status = lab.fleetauth(&["auth", "status", "--format", "json"]);
    let rows = status.json()["credentials"].as_array().unwrap().clone();
    assert!(
        rows.iter().any(|r| r["provider"] == "claude"
            && r["source"] == "store"
            && r["kind"] == "oauth_token"),
        "{rows:?}"
    );
    let m = lab.member("m").provider("claude", State::NoAuth).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let out = lab.provision_json(&inv, &[], &[]);
    out.assert_exit(0).assert_no_secret(&token);
    let row = out.row("m", "claude");
    assert_eq!(
        (
            row["state"].as_str(),
            row["action"].as_str(),
            row["source"].as_str()
        ),
        (Some("ready"), Some("pushed"), Some("pushed_key")),
        "{row}"
    );
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.starts_with("CLAUDE_CODE_OAUTH_TOKEN "), "{detail}");
    let env = m.env_file_contents();
    assert!(
        env.contains(&format!("CLAUDE_CODE_OAUTH_TOKEN='{token}'")),
        "{env}"
    );
    assert!(!env.contains("ANTHROPIC_API_KEY"), "{env}");
    // A second run finds it working and leaves it.
    let again = lab.provision_json(&inv, &[], &[]);
    assert_eq!(again.row("m", "claude")["action"], "none");
}

/// A key of the wrong shape is refused before any push, naming the kind it does look like; a
/// key of a shape no pattern knows goes through only with `--allow-key-shape PROVIDER`, for
/// that run.
#[test]
fn wrong_shape_is_refused_and_allow_key_shape_lets_a_new_shape_through() {
    let lab = Lab::new();
    let m = lab.member("m").provider("claude", State::NoAuth).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let before = m.env_file_contents();

    // A setup-token exported as ANTHROPIC_API_KEY: refused, with the right place for it.
    let setup = fake::claude_oauth_token();
    let out = lab.provision_json(&inv, &[("ANTHROPIC_API_KEY", &setup)], &[]);
    out.assert_exit(1).assert_no_secret(&setup);
    let row = out.row("m", "claude");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("needs_auth"), Some("none"))
    );
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.contains("does not look like a Claude Code API key"),
        "{detail}"
    );
    assert!(
        detail.contains("--kind oauth-token") && detail.contains("CLAUDE_CODE_OAUTH_TOKEN"),
        "{detail}"
    );
    assert_eq!(m.env_file_contents(), before);
    // `auth set` refuses it the same way and stores nothing.
    lab.run(&["auth", "set", "claude", "--kind", "api-key"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .stdin(setup.as_bytes())
        .output()
        .assert_exit(1)
        .assert_no_secret(&setup)
        .assert_stderr_contains("nothing stored");

    // A key of a new shape (shorter than the pattern allows; the vendor accepts it).
    let novel = "sk-ant-api03-n3wSh4pe";
    let refused = lab.provision_json(&inv, &[("ANTHROPIC_API_KEY", novel)], &[]);
    refused.assert_exit(1).assert_no_secret(novel);
    let detail = refused.row("m", "claude")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("--allow-key-shape claude"), "{detail}");
    assert_eq!(m.env_file_contents(), before);

    let allowed = lab.provision_json(
        &inv,
        &[("ANTHROPIC_API_KEY", novel)],
        &["--allow-key-shape", "claude"],
    );
    allowed.assert_exit(0).assert_no_secret(novel);
    allowed.assert_stderr_contains("--allow-key-shape claude (this run only)");
    let row = allowed.row("m", "claude");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("pushed")),
        "{row}"
    );
    assert!(
        m.env_file_contents()
            .contains(&format!("ANTHROPIC_API_KEY='{novel}'"))
    );

    // The override names a provider; an unknown one is a usage error.
    lab.provision_json(&inv, &[], &["--allow-key-shape", "nope"])
        .assert_exit(2);
}

/// A Codex personal access token (`at-…`) goes into CODEX_ACCESS_TOKEN in the env file, from
/// the operator's CODEX_ACCESS_TOKEN or `auth set codex --kind access-token`.
#[test]
fn codex_access_token_is_pushed_into_codex_access_token() {
    let lab = Lab::new();
    let token = format!("at-FAKE{}", fake::alnum(40));
    let m = lab.member("m").provider("codex", State::NoAuth).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let out = lab.provision_json(&inv, &[("CODEX_ACCESS_TOKEN", &token)], &[]);
    out.assert_exit(0).assert_no_secret(&token);
    let row = out.row("m", "codex");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("pushed")),
        "{row}"
    );
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .starts_with("CODEX_ACCESS_TOKEN "),
        "{row}"
    );
    let env = m.env_file_contents();
    assert!(
        env.contains(&format!("CODEX_ACCESS_TOKEN='{token}'")),
        "{env}"
    );
    assert!(
        !m.home().join(".codex/auth.json").exists(),
        "no login command ran"
    );
    assert!(m.commands_log().iter().all(|c| !c.contains(&token)));

    // Stored by kind: the store says access_token.
    lab.run(&["auth", "set", "codex", "--kind", "access-token"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .stdin(token.as_bytes())
        .output()
        .assert_exit(0)
        .assert_stdout_contains("pushed into CODEX_ACCESS_TOKEN");
    // A kind codex does not have is a usage error listing those it has.
    lab.run(&["auth", "set", "codex", "--kind", "oauth-token"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .stdin(token.as_bytes())
        .output()
        .assert_exit(2)
        .assert_stderr_contains("access-token (personal access token, into CODEX_ACCESS_TOKEN)");
}

/// Copilot: a fine-grained PAT is pushed into COPILOT_GITHUB_TOKEN; a classic `ghp_` token is
/// refused with the reason, by `auth set` and by `provision`.
#[test]
fn copilot_fine_grained_pat_pushed_and_classic_pat_refused() {
    let lab = Lab::new();
    let classic = format!("ghp_{}", fake::alnum(36));
    lab.run(&["auth", "set", "copilot"])
        .env("FLEETAUTH_PASSPHRASE", PASS)
        .stdin(classic.as_bytes())
        .output()
        .assert_exit(1)
        .assert_no_secret(&classic)
        .assert_stderr_contains("classic personal access token (ghp_)");
    let m = lab.member("m").provider("copilot", State::NoAuth).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let out = lab.provision_json(
        &inv,
        &[("COPILOT_GITHUB_TOKEN", &classic)],
        &["--allow-key-shape", "copilot"],
    );
    out.assert_exit(1).assert_no_secret(&classic);
    let detail = out.row("m", "copilot")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("fine-grained token"),
        "refused even with the override: {detail}"
    );

    let pat = fake::github_pat();
    lab.store_key("copilot", &pat);
    let status = lab.fleetauth(&["auth", "status", "--format", "json"]);
    let rows = status.json()["credentials"].as_array().unwrap().clone();
    assert!(
        rows.iter()
            .any(|r| r["provider"] == "copilot" && r["kind"] == "fine_grained_pat"),
        "the kind follows the shape: {rows:?}"
    );
    let out = lab.provision_json(&inv, &[], &[]);
    out.assert_exit(0).assert_no_secret(&pat);
    assert_eq!(out.row("m", "copilot")["action"], "pushed");
    assert!(m.env_file_contents().contains("COPILOT_GITHUB_TOKEN="));
}

/// A store that cannot be unlocked in this run (no passphrase, no terminal) yields to a key
/// the operator exported; a wrong passphrase is an error, never skipped, and is called wrong.
#[test]
fn a_locked_store_yields_to_an_exported_key_and_a_wrong_passphrase_is_called_wrong() {
    let lab = Lab::new();
    let stored = fake::gemini_key();
    let exported = fake::gemini_key();
    lab.store_key("gemini", &stored);
    let m = lab.member("m").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let inv = inv.to_str().unwrap();
    let args = ["provision", "-i", inv, "--format", "json", "--no-input"];

    // A wrong passphrase: refused with the reason, nothing pushed.
    let wrong = lab
        .run(&args)
        .env("FLEETAUTH_PASSPHRASE", "not the passphrase")
        .env("GEMINI_API_KEY", &exported)
        .output();
    wrong.assert_exit(1);
    wrong.assert_no_secret(&stored).assert_no_secret(&exported);
    assert!(
        wrong.stdout.contains("wrong passphrase") || wrong.stderr.contains("wrong passphrase"),
        "{wrong}"
    );
    assert!(!m.env_file().exists(), "nothing may be pushed");

    // No passphrase at all: the exported key is pushed, with a warning naming the store.
    let out = lab.run(&args).env("GEMINI_API_KEY", &exported).output();
    out.assert_exit(0);
    out.assert_no_secret(&stored).assert_no_secret(&exported);
    assert_eq!(out.row("m", "gemini")["action"], "pushed", "{out}");
    assert!(out.stderr.contains("local store is locked"), "{out}");
    let env = m.env_file_contents();
    assert!(
        env.contains(&exported) && !env.contains(&stored),
        "wrong key pushed"
    );

    // `auth status` with a wrong passphrase says so instead of asking for one.
    let status = lab
        .run(&["auth", "status", "--format", "json"])
        .env("FLEETAUTH_PASSPHRASE", "not the passphrase")
        .output();
    status.assert_exit(0).assert_no_secret(&stored);
    assert!(status.stderr.contains("wrong passphrase"), "{status}");
    let rows = status.json()["credentials"].as_array().unwrap().clone();
    let gem = rows
        .iter()
        .find(|r| r["provider"] == "gemini" && r["source"] == "store")
        .unwrap();
    assert!(
        gem["detail"]
            .as_str()
            .unwrap()
            .contains("FLEETAUTH_PASSPHRASE is wrong"),
        "{gem}"
    );
}
