//! The stub agent CLIs (docker/stubs) against their contract (docs/stubs.md) and the real CLIs'
//! offline captures, and the test-fleet harness (tests/support) they run in.
//!
//! Most tests lay a member out with the harness and run the stub locally exactly as the member
//! would over SSH (`Member::sh`: its HOME, PATH, vendor; the env file sourced first, as a probe
//! does). The tests at the end start real sshd members and go through OpenSSH.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Lab, Member, Output, PROVIDERS, State, capture, fake};

const SOURCE_ENV: &str =
    r#"if [ -f "$HOME/.config/fleetauth/env" ]; then . "$HOME/.config/fleetauth/env"; fi; "#;

/// The minimal prompt each provider's definition runs (provider-facts.md).
fn probe_script(provider: &str) -> &'static str {
    match provider {
        "gemini" => {
            "GEMINI_CLI_TRUST_WORKSPACE=true gemini -p 'Reply with OK' --output-format json </dev/null"
        }
        "claude" => "claude -p 'Reply with OK' --output-format json --max-turns 1 </dev/null",
        "codex" => "codex exec --skip-git-repo-check -s read-only 'Reply with OK' </dev/null",
        "copilot" => "copilot -p 'Reply with OK' -s --no-ask-user </dev/null",
        other => panic!("no probe for {other}"),
    }
}

fn member(provider: &str, state: State) -> (Lab, Member) {
    let lab = Lab::new();
    let m = lab.member("m").provider(provider, state).build();
    (lab, m)
}

/// Run `script` on `m` (env file sourced first), expecting it to finish within 10 s.
fn run(m: &Member, script: &str) -> Output {
    capture(
        m.sh(&format!("{SOURCE_ENV}{script}")),
        None,
        Duration::from_secs(10),
    )
}

fn probe(m: &Member, provider: &str) -> Output {
    run(m, probe_script(provider))
}

/// Run `script` on `m`, assert it is still running after about a second (a hang: only a
/// deadline ends it), kill it, and return what it printed by then (stdout, stderr).
fn hangs(m: &Member, script: &str) -> (String, String) {
    let dir = m.home().parent().unwrap().to_path_buf();
    let (out_path, err_path) = (dir.join("hang.out"), dir.join("hang.err"));
    let mut child = m
        .sh(&format!("{SOURCE_ENV}{script}"))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let still_running = child.try_wait().unwrap().is_none();
    let (stdout, stderr) = (
        fs::read_to_string(&out_path).unwrap(),
        fs::read_to_string(&err_path).unwrap(),
    );
    m.kill_strays();
    let _ = child.wait();
    assert!(
        still_running,
        "expected a hang, but it ended\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    (stdout, stderr)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// gemini

#[test]
fn gemini_version_is_bare_semver_and_vendor_can_override_it() {
    let (_lab, m) = member("gemini", State::NoAuth);
    let out = run(&m, "gemini --version");
    out.assert_exit(0);
    assert_eq!(out.stdout, "0.61.0\n");
    assert_eq!(out.stderr, "");

    let lab = Lab::new();
    let old = lab
        .member("old")
        .provider("gemini", State::NoAuth)
        .version("gemini", "0.40.2")
        .build();
    assert_eq!(run(&old, "gemini --version").stdout, "0.40.2\n");
}

#[test]
fn gemini_without_auth_exits_41_with_the_observed_json_on_stderr() {
    let (_lab, m) = member("gemini", State::NoAuth);
    let out = probe(&m, "gemini");
    out.assert_exit(41);
    assert_eq!(out.stdout, "");
    // Pretty-printed like the capture (gemini-noauth.err).
    assert!(out.stderr.starts_with("{\n  \"session_id\": \""), "{out}");
    let doc = json(&out.stderr);
    assert_eq!(doc["error"]["type"], "Error");
    assert_eq!(doc["error"]["code"], 41);
    assert_eq!(
        doc["error"]["message"],
        format!(
            "Please set an Auth method in your {}/.gemini/settings.json or specify one of the following \
             environment variables before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA",
            m.home().display()
        )
    );
}

#[test]
fn gemini_headless_in_an_untrusted_folder_exits_55() {
    let (_lab, m) = member("gemini", State::EnvKey);
    let out = run(
        &m,
        "gemini -p 'Reply with OK' --output-format json </dev/null",
    );
    out.assert_exit(55).assert_stderr_contains("trusted");
    assert_eq!(out.stdout, "");
    run(
        &m,
        "gemini --skip-trust -p 'Reply with OK' --output-format json </dev/null",
    )
    .assert_exit(0);
}

#[test]
fn gemini_accepts_a_good_env_key() {
    let (_lab, m) = member("gemini", State::EnvKey);
    let out = probe(&m, "gemini");
    out.assert_exit(0);
    let doc = json(&out.stdout);
    assert_eq!(doc["response"], "OK");
    assert!(
        doc["session_id"].as_str().is_some_and(|s| s.len() == 36),
        "{out}"
    );
    out.assert_no_secret(&m.secret("gemini", "GEMINI_API_KEY"));
}

#[test]
fn gemini_rejected_key_is_an_api_error_exit_1() {
    let (_lab, m) = member("gemini", State::RejectedKey);
    let out = probe(&m, "gemini");
    out.assert_exit(1);
    let doc = json(&out.stderr);
    assert_eq!(
        doc["error"]["message"],
        "[API Error: API key not valid. Please pass a valid API key.]"
    );
    assert_eq!(doc["error"]["code"], 1);
    out.assert_no_secret(&m.secret("gemini", "GEMINI_API_KEY"));
}

#[test]
fn gemini_malformed_key_is_rejected_like_a_bad_one() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .env_line("export GEMINI_API_KEY='AIzaTOOSHORT'")
        .build();
    let out = probe(&m, "gemini");
    out.assert_exit(1);
    assert_eq!(
        json(&out.stderr)["error"]["message"],
        "[API Error: API key not valid. Please pass a valid API key.]"
    );
}

#[test]
fn gemini_oauth_logins_that_are_valid_or_refreshable_work() {
    for state in [
        State::OauthValid,
        State::OauthExpiring,
        State::OauthRefreshable,
    ] {
        let (_lab, m) = member("gemini", state);
        let out = probe(&m, "gemini");
        out.assert_exit(0);
        assert_eq!(json(&out.stdout)["response"], "OK", "{state:?}");
    }
}

#[test]
fn gemini_expired_oauth_without_refresh_token_needs_manual_authorization() {
    for state in [State::OauthExpired, State::OauthMalformed] {
        let (_lab, m) = member("gemini", state);
        let out = probe(&m, "gemini");
        out.assert_exit(41);
        assert_eq!(out.stdout, "");
        assert!(
            out.stderr.starts_with(
                "Error authenticating: FatalAuthenticationError: Manual authorization is required but the current session is non-interactive."
            ),
            "{state:?}\n{out}"
        );
        assert!(
            out.stderr
                .contains("  exitCode: 41\n}\n\u{1b}[31mManual authorization is required"),
            "{out}"
        );
    }
}

#[test]
fn gemini_settings_oauth_shadows_a_good_env_key() {
    let (_lab, m) = member("gemini", State::Shadowed);
    assert!(m.env_file_contents().contains("GEMINI_API_KEY="));
    probe(&m, "gemini")
        .assert_exit(41)
        .assert_stderr_contains("Manual authorization is required");
    // Without the settings file the very same key works.
    fs::remove_file(m.home().join(".gemini/settings.json")).unwrap();
    probe(&m, "gemini").assert_exit(0);
}

#[test]
fn gemini_reads_its_key_from_a_dotenv_file_but_never_over_the_environment() {
    let lab = Lab::new();
    let m = lab.member("m").provider("gemini", State::NoAuth).build();
    fs::write(
        m.home().join(".env"),
        format!("GEMINI_API_KEY=\"{}\"\n", fake::gemini_key()),
    )
    .unwrap();
    probe(&m, "gemini").assert_exit(0);
    let rejected = fake::gemini_key();
    fs::write(m.vendor_dir().join("rejected"), format!("{rejected}\n")).unwrap();
    run(
        &m,
        &format!("GEMINI_API_KEY={rejected} {}", probe_script("gemini")),
    )
    .assert_exit(1);
}

#[test]
fn gemini_hangs_retrying_when_the_vendor_is_unreachable() {
    let (_lab, m) = member("gemini", State::VendorUnreachable);
    let (stdout, stderr) = hangs(&m, probe_script("gemini"));
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("Attempt 1 failed. Retrying with backoff... Error: exception TypeError: fetch failed sending request"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// claude

#[test]
fn claude_version_names_claude_code() {
    let (_lab, m) = member("claude", State::NoAuth);
    let out = run(&m, "claude --version");
    out.assert_exit(0);
    assert_eq!(out.stdout, "2.1.197 (Claude Code)\n");
}

#[test]
fn claude_not_logged_in_is_is_error_json_on_stdout_exit_1() {
    for state in [State::NoAuth, State::OauthMalformed] {
        let (_lab, m) = member("claude", state);
        let out = probe(&m, "claude");
        out.assert_exit(1);
        assert_eq!(out.stderr, "");
        let doc = json(&out.stdout);
        assert_eq!(out.stdout.lines().count(), 1, "one line, like the capture");
        // Note subtype "success" with is_error true, as observed (claude-noauth.out).
        assert_eq!(
            (doc["type"].as_str(), doc["subtype"].as_str()),
            (Some("result"), Some("success"))
        );
        assert_eq!(doc["is_error"], true);
        assert_eq!(doc["result"], "Not logged in · Please run /login");
    }
}

#[test]
fn claude_auth_status_reports_presence_as_observed() {
    let (_lab, none) = member("claude", State::NoAuth);
    let out = run(&none, "claude auth status");
    out.assert_exit(1);
    assert_eq!(
        out.stdout,
        "{\n  \"loggedIn\": false,\n  \"authMethod\": \"none\",\n  \"apiProvider\": \"firstParty\"\n}\n"
    );

    // Presence, not validity: a rejected key and an expired login both count as logged in …
    for state in [State::RejectedKey, State::OauthExpired, State::OauthValid] {
        let (_lab, m) = member("claude", state);
        let out = run(&m, "claude auth status");
        out.assert_exit(0);
        assert_eq!(json(&out.stdout)["loggedIn"], true, "{state:?}");
    }
    // … except offline, where the expired login's refresh fails (claude-expired-status.out).
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("claude", State::OauthRefreshable)
        .vendor_unreachable()
        .build();
    let out = run(&m, "claude auth status");
    out.assert_exit(1);
    assert_eq!(json(&out.stdout)["loggedIn"], false);
}

#[test]
fn claude_works_with_a_valid_or_refreshable_login_and_a_good_key() {
    for state in [
        State::OauthValid,
        State::OauthExpiring,
        State::OauthRefreshable,
        State::EnvKey,
    ] {
        let (_lab, m) = member("claude", state);
        let out = probe(&m, "claude");
        out.assert_exit(0);
        let doc = json(&out.stdout);
        assert_eq!(
            (doc["is_error"].as_bool(), doc["result"].as_str()),
            (Some(false), Some("OK")),
            "{state:?}"
        );
        for secret in m.secrets() {
            out.assert_no_secret(&secret);
        }
    }
}

#[test]
fn claude_expired_login_without_refresh_token_fails() {
    let (_lab, m) = member("claude", State::OauthExpired);
    let out = probe(&m, "claude");
    out.assert_exit(1);
    let doc = json(&out.stdout);
    assert_eq!(doc["is_error"], true);
    assert!(doc["result"].as_str().unwrap().contains("expired"), "{out}");
}

#[test]
fn claude_rejected_key_is_invalid_api_key() {
    let (_lab, m) = member("claude", State::RejectedKey);
    let out = probe(&m, "claude");
    out.assert_exit(1);
    assert_eq!(
        json(&out.stdout)["result"],
        "Invalid API key · Fix external API key"
    );
}

#[test]
fn claude_stale_api_key_shadows_a_good_oauth_token() {
    let (_lab, m) = member("claude", State::Shadowed);
    probe(&m, "claude")
        .assert_exit(1)
        .assert_stdout_contains("Invalid API key");
    // The token alone works: the key above really was hiding it.
    let token = m.secret("claude", "CLAUDE_CODE_OAUTH_TOKEN");
    let out = run(
        &m,
        &format!("unset ANTHROPIC_API_KEY; {}", probe_script("claude")),
    );
    out.assert_exit(0).assert_no_secret(&token);
}

#[test]
fn claude_without_onboarding_succeeds_silently() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("claude", State::OauthValid)
        .onboarding(false)
        .build();
    let out = probe(&m, "claude");
    out.assert_exit(0);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
}

#[test]
fn claude_hangs_silently_when_the_vendor_is_unreachable() {
    let (_lab, m) = member("claude", State::VendorUnreachable);
    assert_eq!(
        hangs(&m, probe_script("claude")),
        (String::new(), String::new())
    );
}

// ---------------------------------------------------------------------------------------------
// codex

#[test]
fn codex_version_is_codex_cli() {
    let (_lab, m) = member("codex", State::NoAuth);
    let out = run(&m, "codex --version");
    out.assert_exit(0);
    assert_eq!(out.stdout, "codex-cli 0.169.0\n");
}

#[test]
fn codex_login_status_without_login_says_not_logged_in() {
    let (_lab, m) = member("codex", State::NoAuth);
    let out = run(&m, "codex login status");
    out.assert_exit(1);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.ends_with("Not logged in\n"), "{out}");
}

#[test]
fn codex_login_with_api_key_reads_stdin_and_writes_a_private_auth_file() {
    let (_lab, m) = member("codex", State::NoAuth);
    let key = fake::openai_key();
    let out = capture(
        m.sh("codex login --with-api-key"),
        Some(format!("{key}\n").into_bytes()),
        Duration::from_secs(10),
    );
    out.assert_exit(0)
        .assert_stderr_contains("Reading API key from stdin...\n")
        .assert_stderr_contains(
            "API key saved. Authentication is checked when you send a request.\n",
        )
        .assert_no_secret(&key);
    let auth = m.home().join(".codex/auth.json");
    assert_eq!(
        fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let doc = json(&fs::read_to_string(&auth).unwrap());
    assert_eq!(doc["auth_mode"], "apikey");
    assert_eq!(doc["OPENAI_API_KEY"], key.as_str());

    let status = run(&m, "codex login status");
    status.assert_exit(0).assert_no_secret(&key);
    assert!(
        status.stderr.contains(&format!(
            "API key configured - sk-proj-***{}\n",
            &key[key.len() - 5..]
        )),
        "{status}"
    );
    probe(&m, "codex").assert_exit(0);
}

#[test]
fn codex_login_with_an_empty_stdin_fails() {
    let (_lab, m) = member("codex", State::NoAuth);
    let out = capture(
        m.sh("codex login --with-api-key"),
        Some(Vec::new()),
        Duration::from_secs(10),
    );
    out.assert_exit(1)
        .assert_stderr_contains("No API key provided");
    assert!(!m.home().join(".codex/auth.json").exists());
}

#[test]
fn codex_exec_without_a_login_does_not_fail_it_hangs_reconnecting() {
    let (_lab, m) = member("codex", State::NoAuth);
    let (stdout, stderr) = hangs(&m, probe_script("codex"));
    assert_eq!(stdout, "");
    assert!(
        stderr
            .contains("Reading additional input from stdin...\nOpenAI Codex v0.169.0\n--------\n"),
        "{stderr}"
    );
    assert!(stderr.contains("user\nReply with OK\n"), "{stderr}");
    assert!(
        stderr.contains("ERROR codex_api::endpoint::responses_websocket: failed to connect"),
        "{stderr}"
    );
}

#[test]
fn codex_ignores_openai_api_key_in_the_environment() {
    let lab = Lab::new();
    let key = fake::openai_key();
    let m = lab
        .member("m")
        .provider("codex", State::NoAuth)
        .env_line(&format!("export OPENAI_API_KEY='{key}'"))
        .build();
    run(&m, "codex login status").assert_exit(1);
    hangs(&m, probe_script("codex"));
}

#[test]
fn codex_works_with_a_key_or_a_live_chatgpt_login() {
    for state in [
        State::EnvKey,
        State::KeyFile,
        State::OauthValid,
        State::OauthExpiring,
        State::OauthRefreshable,
    ] {
        let (_lab, m) = member("codex", state);
        let out = probe(&m, "codex");
        out.assert_exit(0);
        assert_eq!(out.stdout, "OK\n", "{state:?}");
        assert!(
            out.stderr.contains("OpenAI Codex v0.169.0"),
            "banner on stderr"
        );
        for secret in m.secrets() {
            out.assert_no_secret(&secret);
        }
    }
    let (_lab, m) = member("codex", State::OauthValid);
    run(&m, "codex login status")
        .assert_exit(0)
        .assert_stderr_contains("Logged in using ChatGPT\n");
}

#[test]
fn codex_rejected_or_shadowing_key_is_401() {
    for state in [State::RejectedKey, State::Shadowed] {
        let (_lab, m) = member("codex", state);
        let out = probe(&m, "codex");
        out.assert_exit(1).assert_stderr_contains(
            "ERROR: unexpected status 401 Unauthorized: Incorrect API key provided",
        );
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn codex_expired_chatgpt_login_without_refresh_token_fails() {
    let (_lab, m) = member("codex", State::OauthExpired);
    probe(&m, "codex")
        .assert_exit(1)
        .assert_stderr_contains("refresh token");
}

#[test]
fn codex_exec_outside_a_git_repo_needs_the_skip_flag() {
    let (_lab, m) = member("codex", State::EnvKey);
    run(&m, "codex exec -s read-only 'Reply with OK' </dev/null")
        .assert_exit(1)
        .assert_stderr_contains("--skip-git-repo-check was not specified");
}

// ---------------------------------------------------------------------------------------------
// copilot

#[test]
fn copilot_version_prints_two_lines() {
    let (_lab, m) = member("copilot", State::NoAuth);
    let out = run(&m, "copilot --version");
    out.assert_exit(0);
    assert_eq!(
        out.stdout,
        "GitHub Copilot CLI 1.0.102.\nRun 'copilot update' to check for updates.\n"
    );
}

const COPILOT_NO_AUTH: &str = "Error: No authentication information found.\n\
\n\
Copilot can be authenticated with GitHub using an OAuth Token or a Fine-Grained Personal Access Token.\n\
\n\
To authenticate, you can use any of the following methods:\n  \
• Start 'copilot' and run the '/login' command\n  \
• Set the COPILOT_GITHUB_TOKEN, GH_TOKEN, or GITHUB_TOKEN environment variable\n  \
• Run 'gh auth login' to authenticate with the GitHub CLI\n";

#[test]
fn copilot_without_auth_prints_the_observed_help_exit_1() {
    let (_lab, m) = member("copilot", State::NoAuth);
    let out = probe(&m, "copilot");
    out.assert_exit(1);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("", COPILOT_NO_AUTH)
    );
}

#[test]
fn copilot_rejects_classic_personal_access_tokens() {
    // Current versions reject a classic token with a clear error (provider-facts 2026-11).
    let lab = Lab::new();
    let token = format!("ghp_FAKE{}", fake::alnum(36));
    let m = lab
        .member("m")
        .provider("copilot", State::NoAuth)
        .env_line(&format!("export GH_TOKEN='{token}'"))
        .build();
    let out = probe(&m, "copilot");
    out.assert_exit(1);
    assert!(
        out.stderr.starts_with("Error: Token (classic) rejected."),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&token) && !out.stdout.contains(&token));
}

#[test]
fn copilot_works_with_a_token_in_env_or_config() {
    for state in [State::EnvKey, State::OauthValid] {
        let (_lab, m) = member("copilot", state);
        let out = probe(&m, "copilot");
        out.assert_exit(0);
        assert_eq!(out.stdout, "OK\n", "{state:?}");
    }
}

#[test]
fn copilot_rejected_or_shadowing_token_fails_authentication() {
    for state in [State::RejectedKey, State::Shadowed] {
        let (_lab, m) = member("copilot", state);
        let out = probe(&m, "copilot");
        out.assert_exit(1);
        assert_eq!(
            out.stderr, "Error: Authentication failed. Please check your token.\n",
            "{state:?}"
        );
    }
}

#[test]
fn copilot_hangs_silently_when_the_vendor_is_unreachable() {
    let (_lab, m) = member("copilot", State::VendorUnreachable);
    assert_eq!(
        hangs(&m, probe_script("copilot")),
        (String::new(), String::new())
    );
}

// ---------------------------------------------------------------------------------------------
// every stub

fn states_for(provider: &str) -> Vec<State> {
    let mut states = vec![
        State::NoAuth,
        State::OauthValid,
        State::OauthMalformed,
        State::EnvKey,
        State::RejectedKey,
        State::Shadowed,
    ];
    if provider != "copilot" {
        states.extend([
            State::OauthExpiring,
            State::OauthRefreshable,
            State::OauthExpired,
        ]);
    }
    if provider == "codex" {
        states.push(State::KeyFile);
    }
    states
}

#[test]
fn no_stub_prints_or_logs_a_credential_in_any_state() {
    for provider in PROVIDERS {
        for state in states_for(provider) {
            let (_lab, m) = member(provider, state);
            let secrets = m.secrets();
            let status = match provider {
                "claude" => "claude auth status",
                "codex" => "codex login status",
                _ => "true",
            };
            for script in [probe_script(provider), status] {
                let out = capture(
                    m.sh(&format!("{SOURCE_ENV}{script}")),
                    None,
                    Duration::from_millis(1500),
                );
                m.kill_strays();
                for secret in &secrets {
                    out.assert_no_secret(secret);
                }
            }
            let calls = m.calls_log().join("\n");
            assert!(!calls.is_empty(), "{provider} {state:?}: no calls.log line");
            for secret in &secrets {
                assert!(
                    !calls.contains(secret.as_str()),
                    "{provider} {state:?}: calls.log holds a secret"
                );
            }
        }
    }
}

#[test]
fn calls_log_has_one_line_per_call_with_credentials_redacted() {
    let (_lab, m) = member("gemini", State::EnvKey);
    let key = m.secret("gemini", "GEMINI_API_KEY");
    run(&m, "gemini --version");
    run(
        &m,
        &format!("gemini --api-key={key} --version; gemini {key} --version"),
    );
    assert_eq!(
        m.calls_log(),
        [
            "gemini --version",
            "gemini --api-key=<redacted> --version",
            "gemini <redacted> --version"
        ]
    );
}

#[test]
fn not_installed_means_not_on_path() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("gemini", State::NotInstalled)
        .provider("claude", State::NoAuth)
        .build();
    let missing = run(&m, "command -v gemini");
    assert_ne!(missing.code, Some(0), "{missing}");
    assert_eq!(missing.stdout, "");
    let found = run(&m, "command -v claude");
    found.assert_exit(0);
    assert_eq!(
        found.stdout.trim_end(),
        m.bin_dir().join("claude").display().to_string()
    );
}

#[test]
fn one_vendor_file_makes_every_stub_hang() {
    let lab = Lab::new();
    let mut b = lab.member("m").vendor_unreachable();
    for p in PROVIDERS {
        b = b.provider(p, State::EnvKey);
    }
    let m = b.build();
    for p in PROVIDERS {
        hangs(&m, probe_script(p));
    }
}

// ---------------------------------------------------------------------------------------------
// the harness: real sshd members

#[test]
fn member_runs_stubs_over_ssh_and_logs_every_command() {
    let lab = Lab::new();
    let m = lab
        .member("gem-ok")
        .provider("gemini", State::EnvKey)
        .start();
    let version = lab.ssh(&m, "gemini --version");
    version.assert_exit(0);
    assert_eq!(version.stdout, "0.61.0\n");

    let probe = format!("{SOURCE_ENV}{}", probe_script("gemini"));
    let out = lab.ssh(&m, &probe);
    out.assert_exit(0);
    assert_eq!(json(&out.stdout)["response"], "OK");
    out.assert_no_secret(&m.secret("gemini", "GEMINI_API_KEY"));

    // HOME and the working directory are the member's, not the login user's.
    let where_ = lab.ssh(&m, "echo \"$HOME\"; pwd; echo \"$FLEETAUTH_STUB_VENDOR\"");
    let expected = format!(
        "{0}\n{0}\n{1}\n",
        m.home().display(),
        m.vendor_dir().display()
    );
    assert_eq!(where_.stdout, expected);

    assert_eq!(
        m.commands_log(),
        [
            "gemini --version".to_string(),
            probe,
            "echo \"$HOME\"; pwd; echo \"$FLEETAUTH_STUB_VENDOR\"".to_string()
        ]
    );
    assert_eq!(m.calls_log().len(), 2);
}

#[test]
fn commands_log_keeps_one_line_per_command() {
    let lab = Lab::new();
    let m = lab.member("m").provider("claude", State::NoAuth).start();
    lab.ssh(&m, "true\ntrue").assert_exit(0);
    assert_eq!(m.commands_log(), ["true\\ntrue"]);
}

#[test]
fn members_get_their_own_addresses_host_keys_and_ambient_env() {
    let lab = Lab::new();
    let a = lab
        .member("a")
        .provider("gemini", State::NoAuth)
        .ambient_env("STALE", "yes")
        .start();
    let b = lab
        .member("b")
        .provider("claude", State::NoAuth)
        .port(2222)
        .start();
    assert_ne!(a.addr(), b.addr());
    assert_ne!(a.host_public_key(), b.host_public_key());
    assert_eq!(b.known_hosts_host(), format!("[{}]:2222", b.addr()));
    let known = fs::read_to_string(lab.known_hosts()).unwrap();
    assert!(
        known.contains(&format!("{} {}\n", a.addr(), a.host_public_key())),
        "{known}"
    );
    assert!(
        known.contains(&format!("[{}]:2222 {}\n", b.addr(), b.host_public_key())),
        "{known}"
    );

    assert_eq!(
        lab.ssh(&a, "echo $STALE; command -v claude || echo none")
            .stdout,
        "yes\nnone\n"
    );
    assert_eq!(
        lab.ssh(&b, "echo ${STALE-unset}; command -v gemini || echo none")
            .stdout,
        "unset\nnone\n"
    );
}

#[test]
fn sftp_runs_from_the_members_home() {
    let lab = Lab::new();
    let m = lab.member("m").provider("gemini", State::EnvKey).start();
    let local = lab.dir().join("fetched-env");
    let batch = format!("get .config/fleetauth/env {}\n", local.display());
    let mut cmd = std::process::Command::new("sftp");
    cmd.env_clear()
        .env("HOME", lab.operator_home())
        .env("PATH", "/usr/bin:/bin")
        .args(lab.client_options())
        .args(["-b", "-"])
        .arg(format!("{}@{}", lab.user(), m.addr()));
    capture(cmd, Some(batch.into_bytes()), Duration::from_secs(30)).assert_exit(0);
    assert_eq!(fs::read_to_string(&local).unwrap(), m.env_file_contents());
    assert!(
        m.commands_log()[0].ends_with("sftp-server"),
        "{:?}",
        m.commands_log()
    );
}

#[test]
fn a_hung_stub_ends_when_its_ssh_connection_goes_away() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("claude", State::VendorUnreachable)
        .start();
    let probe = format!("{SOURCE_ENV}{}", probe_script("claude"));
    let ssh = lab.ssh_command(&m, &probe);
    let out = capture(ssh, None, Duration::from_millis(1500));
    assert!(out.timed_out, "the probe should hang\n{out}");
    assert!(
        !m.processes().is_empty(),
        "the stub should still run right after the client is gone"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !m.processes().is_empty() {
        assert!(
            Instant::now() < deadline,
            "stub still running 5 s after its connection closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stopped_down_silent_and_rekeyed_members_fail_the_way_they_should() {
    let lab = Lab::new();
    let m = lab.member("m").provider("gemini", State::NoAuth).start();
    let down = lab.down_member("dead");
    let silent = lab.silent_member("mute");

    let refused = |addr: std::net::Ipv4Addr, port: u16| {
        std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(2))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    };
    assert!(refused(down.addr(), down.port()));

    // The silent member accepts and never sends an SSH banner.
    let mut stream = std::net::TcpStream::connect((silent.addr(), silent.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut stream, &mut buf);
    assert!(read.is_err(), "silent member spoke: {read:?}");

    m.restart_with_new_host_key();
    let out = lab.ssh(&m, "true");
    out.assert_exit(255)
        .assert_stderr_contains("REMOTE HOST IDENTIFICATION HAS CHANGED");

    m.stop();
    assert!(refused(m.addr(), m.port()));
    m.start();
    lab.ssh(&m, "true").assert_exit(255); // still the new key
}

#[test]
fn a_member_that_authorizes_no_key_refuses_the_login() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("gemini", State::NoAuth)
        .deny_client_key()
        .start();
    lab.ssh(&m, "true")
        .assert_exit(255)
        .assert_stderr_contains("Permission denied");
    assert!(m.commands_log().is_empty());
}

#[test]
fn inventory_lists_every_member_with_the_labs_defaults() {
    let lab = Lab::new();
    let a = lab
        .member("gem-ok")
        .provider("gemini", State::OauthValid)
        .provider("claude", State::NotInstalled)
        .inventory_line(r#"tags = ["gpu"]"#)
        .build();
    let b = lab
        .member("b")
        .provider("codex", State::NoAuth)
        .port(2200)
        .build();
    let dead = lab.down_member("dead").providers(&["claude", "codex"]);
    let mute = lab.silent_member("mute").providers(&[]);
    let path = lab.inventory(r#"command_timeout = "20s""#);
    let inv: toml::Table = toml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();

    let defaults = inv["defaults"].as_table().unwrap();
    assert_eq!(defaults["user"].as_str(), Some(lab.user()));
    assert_eq!(
        defaults["identity_file"].as_str().map(Into::into),
        Some(lab.identity())
    );
    assert_eq!(
        defaults["known_hosts"].as_str().map(Into::into),
        Some(lab.known_hosts())
    );
    assert_eq!(defaults["command_timeout"].as_str(), Some("20s"));

    let members = inv["members"].as_table().unwrap();
    assert_eq!(
        members.keys().collect::<Vec<_>>(),
        ["b", "dead", "gem-ok", "mute"]
    );
    let entry = |name: &str| members[name].as_table().unwrap().clone();
    assert_eq!(
        entry("gem-ok")["host"].as_str(),
        Some(a.addr().to_string().as_str())
    );
    assert!(!entry("gem-ok").contains_key("port"));
    assert_eq!(entry("gem-ok")["providers"].as_array().unwrap().len(), 2);
    assert_eq!(entry("gem-ok")["tags"][0].as_str(), Some("gpu"));
    assert_eq!(entry("b")["port"].as_integer(), Some(2200));
    assert_eq!(
        entry("b")["host"].as_str(),
        Some(b.addr().to_string().as_str())
    );
    assert_eq!(entry("dead")["providers"][1].as_str(), Some("codex"));
    assert_eq!(
        entry("dead")["host"].as_str(),
        Some(dead.addr().to_string().as_str())
    );
    assert!(!entry("mute").contains_key("providers"));
    assert_eq!(
        entry("mute")["host"].as_str(),
        Some(mute.addr().to_string().as_str())
    );
}

#[test]
fn the_lab_agent_holds_the_client_key() {
    let lab = Lab::new();
    lab.with_agent();
    let mut cmd = std::process::Command::new("ssh-add");
    cmd.arg("-L")
        .env_clear()
        .env("SSH_AUTH_SOCK", lab.agent_socket().unwrap());
    let out = capture(cmd, None, Duration::from_secs(10));
    out.assert_exit(0);
    let public = fs::read_to_string(lab.operator_home().join(".ssh/id_ed25519.pub")).unwrap();
    let key_body = public.split_whitespace().nth(1).unwrap();
    assert!(out.stdout.contains(key_body), "{out}");
}

#[test]
fn dropping_the_lab_kills_its_members() {
    let lab = Lab::new();
    let m = lab.member("m").provider("gemini", State::NoAuth).start();
    let (addr, port, home) = (m.addr(), m.port(), m.home().to_path_buf());
    drop(m);
    drop(lab);
    assert!(
        std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(1)).is_err()
    );
    assert!(!home.exists(), "the lab dir is removed");
}

#[test]
fn output_finds_result_rows_by_member_and_provider() {
    let out = Output {
        command: "fleetauth sweep".into(),
        code: Some(1),
        signal: None,
        stdout: r#"{"results":[
            {"member":"a","provider":"gemini","state":"ready"},
            {"member":"a","provider":"claude","state":"needs_auth"}],
          "summary":{"members":1,"ready":1,"needs_auth":1}}"#
            .into(),
        stderr: String::new(),
        timed_out: false,
        elapsed: Duration::ZERO,
    };
    out.assert_exit(1);
    assert_eq!(out.row("a", "claude")["state"], "needs_auth");
    assert_eq!(out.rows_for("a").len(), 2);
    assert_eq!(out.summary()["ready"], 1);
    let missing = std::panic::catch_unwind(|| out.row("a", "codex"));
    assert!(missing.is_err());
}

#[test]
fn extra_identities_are_authorized_and_protected_as_asked() {
    let lab = Lab::new();
    let m = lab.member("m").provider("gemini", State::NoAuth).start();
    let protected = lab.extra_identity("id_protected", "correct horse");
    let stranger = lab.unauthorized_identity();
    let public_of = |key: &std::path::Path, passphrase: &str| {
        let mut cmd = std::process::Command::new("ssh-keygen");
        cmd.args(["-y", "-P", passphrase, "-f"]).arg(key);
        capture(cmd, None, Duration::from_secs(10))
    };
    assert_ne!(
        public_of(&protected, "").code,
        Some(0),
        "the key needs its passphrase"
    );
    let public = public_of(&protected, "correct horse");
    public.assert_exit(0);

    let stranger_login = lab.ssh_command_with(&stranger, &m, "true");
    capture(stranger_login, None, Duration::from_secs(20))
        .assert_exit(255)
        .assert_stderr_contains("Permission denied");
    let authorized = fs::read_to_string(lab.dir().join("authorized_keys")).unwrap();
    assert!(authorized.contains(public.stdout.split_whitespace().nth(1).unwrap()));
}
