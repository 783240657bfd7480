//! Credential sources beyond the env file and the CLIs' own files, against real sshd members:
//! OS keychains (present, locked; the stub `security`), config files that inject a key (claude's
//! settings `env` block, gemini's `.env`), codex's keyring store, copilot's `copilot_tokens` and
//! the GitHub CLI's login, claude's blanked login and dead refresh token, and Google's refusal
//! of individual accounts (2026-06). Each row is checked for state, source and the detail naming
//! where the credential was found, with and without `--deep`.

mod support;

use support::{Lab, State};

struct Case {
    member: &'static str,
    provider: &'static str,
    state: State,
    /// (state, source, detail fragment) without --deep.
    quick: (&'static str, Option<&'static str>, &'static str),
    /// (state, source, detail fragment) with --deep.
    deep: (&'static str, Option<&'static str>, &'static str),
}

const CASES: &[Case] = &[
    Case {
        member: "claude-keychain",
        provider: "claude",
        state: State::KeychainLogin,
        quick: (
            "ready",
            Some("keychain"),
            "keychain service \"Claude Code-credentials\" present in the macOS keychain",
        ),
        deep: (
            "ready",
            Some("probe"),
            "via keychain service \"Claude Code-credentials\"",
        ),
    },
    Case {
        member: "claude-locked",
        provider: "claude",
        state: State::KeychainLocked,
        quick: (
            "needs_auth",
            None,
            "the login keychain is locked (normal over SSH), so claude cannot read its login; push a non-rotating credential",
        ),
        deep: (
            "needs_auth",
            None,
            "the login keychain is locked (SSH session)",
        ),
    },
    Case {
        member: "claude-blanked",
        provider: "claude",
        state: State::LoginBlanked,
        quick: (
            "needs_auth",
            None,
            "login lost (blanked after a failed refresh): .credentials.json",
        ),
        deep: ("needs_auth", None, "not logged in"),
    },
    Case {
        member: "claude-refresh-dead",
        provider: "claude",
        state: State::RefreshTokenExpired,
        quick: (
            "needs_auth",
            None,
            "login expired: the refresh token itself expired 1h ago (.credentials.json)",
        ),
        deep: (
            "needs_auth",
            None,
            "credential rejected (authentication error)",
        ),
    },
    Case {
        member: "claude-settings",
        provider: "claude",
        state: State::SettingsKey,
        quick: (
            "ready",
            Some("key_file"),
            "settings.json env.ANTHROPIC_API_KEY set",
        ),
        deep: (
            "ready",
            Some("probe"),
            "via settings.json env.ANTHROPIC_API_KEY",
        ),
    },
    Case {
        member: "gemini-dotenv",
        provider: "gemini",
        state: State::SettingsKey,
        quick: ("ready", Some("key_file"), ".gemini/.env GEMINI_API_KEY set"),
        deep: ("ready", Some("probe"), "via .gemini/.env GEMINI_API_KEY"),
    },
    Case {
        member: "gemini-individual",
        provider: "gemini",
        state: State::IneligibleAccount,
        quick: (
            "ready",
            Some("oauth_file"),
            "; Google refuses logins of individual accounts since 2026-06-18; --deep tells",
        ),
        deep: (
            "needs_auth",
            None,
            "IneligibleTierError, since 2026-06-18): use an API key (GEMINI_API_KEY from AI Studio) or the Antigravity `agy` CLI",
        ),
    },
    Case {
        member: "codex-keyring",
        provider: "codex",
        state: State::KeychainLogin,
        quick: (
            "ready",
            Some("keychain"),
            "keychain service \"Codex Auth\" present",
        ),
        deep: (
            "ready",
            Some("probe"),
            "via keychain service \"Codex Auth\"",
        ),
    },
    Case {
        member: "codex-keyring-locked",
        provider: "codex",
        state: State::KeychainLocked,
        quick: (
            "needs_auth",
            None,
            "keychain service \"Codex Auth\": the login keychain is locked",
        ),
        // codex waits for a login it cannot read: the hang is reported with the credential.
        deep: ("needs_auth", None, "the login keychain is locked"),
    },
    Case {
        member: "copilot-keychain",
        provider: "copilot",
        state: State::KeychainLogin,
        quick: (
            "ready",
            Some("keychain"),
            "keychain service \"copilot-cli\" present",
        ),
        deep: (
            "ready",
            Some("probe"),
            "via keychain service \"copilot-cli\"",
        ),
    },
    Case {
        member: "copilot-config",
        provider: "copilot",
        state: State::OauthValid,
        quick: (
            "ready",
            Some("key_file"),
            "config.json copilot_tokens.* set",
        ),
        deep: ("ready", Some("probe"), "via config.json copilot_tokens.*"),
    },
    Case {
        member: "copilot-gh",
        provider: "copilot",
        state: State::GhLogin,
        quick: (
            "ready",
            Some("key_file"),
            "~/.config/gh/hosts.yml github.com.oauth_token set",
        ),
        deep: (
            "ready",
            Some("probe"),
            "via ~/.config/gh/hosts.yml github.com.oauth_token",
        ),
    },
];

fn check(
    out: &support::Output,
    case: &Case,
    want: (&str, Option<&str>, &str),
    mode: &str,
    wrong: &mut Vec<String>,
) {
    let row = out.row(case.member, case.provider);
    let detail = row["detail"].as_str().unwrap_or_default();
    let source = row["source"].as_str();
    if row["state"] != want.0 || source != want.1 || !detail.contains(want.2) {
        wrong.push(format!(
            "{} ({mode}): got {} / {:?} / {detail:?}; want {} / {:?} / …{:?}…",
            case.member, row["state"], source, want.0, want.1, want.2
        ));
    }
}

#[test]
fn every_credential_source_with_and_without_deep() {
    let lab = Lab::new();
    let mut secrets = Vec::new();
    for case in CASES {
        let m = lab
            .member(case.member)
            .provider(case.provider, case.state)
            .start();
        secrets.extend(m.secrets());
    }
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    let deep = lab.fleetauth(&["sweep", "-i", inv, "--format", "json", "--deep"]);
    let mut wrong = Vec::new();
    for case in CASES {
        check(&quick, case, case.quick, "sweep", &mut wrong);
        check(&deep, case, case.deep, "sweep --deep", &mut wrong);
    }
    assert!(wrong.is_empty(), "wrong rows:\n{}", wrong.join("\n"));
    // Keychain secrets are tested for presence, never read: none reaches the output.
    for out in [&quick, &deep] {
        for secret in &secrets {
            assert!(
                !out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()),
                "a planted secret leaked into the sweep's output"
            );
        }
    }
}

#[test]
fn claude_keychain_service_follows_claude_config_dir() {
    // With CLAUDE_CONFIG_DIR set (here by sshd, so the quick probe sees it) the service is
    // "Claude Code-credentials-" + the first 8 hex digits of sha256(dir): an entry under the
    // plain name is not the login claude reads, one under the suffixed name is.
    let dir = "/srv/claude-work";
    let lab = Lab::new();
    let plain = lab
        .member("plain")
        .provider("claude", State::KeychainLogin)
        .ambient_env("CLAUDE_CONFIG_DIR", dir)
        .start();
    let hashed = lab
        .member("hashed")
        .provider("claude", State::KeychainLogin)
        .ambient_env("CLAUDE_CONFIG_DIR", dir)
        .start();
    let hash = std::process::Command::new("sh")
        .args(["-c", &format!("printf %s '{dir}' | sha256sum | cut -c1-8")])
        .output()
        .expect("sha256sum");
    let service = format!(
        "Claude Code-credentials-{}",
        String::from_utf8_lossy(&hash.stdout).trim()
    );
    let items = hashed.home().join(support::STUB_KEYCHAIN).join("items");
    std::fs::rename(items.join("Claude Code-credentials"), items.join(&service)).unwrap();
    let _ = &plain;
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv = inv.to_str().unwrap();
    let out = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    let row = out.row("plain", "claude");
    assert_eq!(row["state"], "needs_auth", "{row}");
    let row = out.row("hashed", "claude");
    assert_eq!(row["state"], "ready", "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("keychain service \"{service}\"")),
        "{row}"
    );
    // The stub claude reads the same entries: logged in under the suffixed name only. (Its
    // config dir has no `.claude.json`, so the logged-in prompt ends silently: onboarding.)
    let deep = lab.fleetauth(&["sweep", "-i", inv, "--format", "json", "--deep"]);
    let row = deep.row("hashed", "claude");
    assert!(
        row["detail"].as_str().unwrap().contains("onboarding"),
        "{row}"
    );
    let row = deep.row("plain", "claude");
    assert_eq!(row["state"], "needs_auth", "{row}");
    assert!(
        row["detail"].as_str().unwrap().contains("not logged in"),
        "{row}"
    );
}

#[test]
fn provision_leaves_a_member_whose_own_login_works() {
    // A copilot member logged in only with `gh auth login`, a claude member whose login is in
    // its keychain: both ready on their own, so provision pushes nothing to them.
    let lab = Lab::new();
    let gh = lab.member("gh").provider("copilot", State::GhLogin).start();
    let kc = lab
        .member("kc")
        .provider("claude", State::KeychainLogin)
        .start();
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let out = lab
        .run(&[
            "provision",
            "-i",
            inv.to_str().unwrap(),
            "--format",
            "json",
            "--no-input",
        ])
        .env("COPILOT_GITHUB_TOKEN", &support::fake::github_oauth_token())
        .env("ANTHROPIC_API_KEY", &support::fake::anthropic_api_key())
        .output();
    for (member, provider) in [("gh", "copilot"), ("kc", "claude")] {
        let row = out.row(member, provider);
        assert_eq!(row["state"], "ready", "{row}");
        assert_eq!(row["action"], "none", "{row}");
    }
    assert!(!gh.home().join(support::ENV_FILE).exists());
    assert!(!kc.home().join(support::ENV_FILE).exists());
}

#[test]
fn copilot_classic_token_and_byok_backend() {
    // A classic token's value never leaves the member, so only the prompt can tell; a BYOK base
    // URL selects another backend, which needs no GitHub token.
    let lab = Lab::new();
    let token = format!("ghp_FAKE{}", support::fake::alnum(36));
    lab.member("classic")
        .provider("copilot", State::NoAuth)
        .env_line(&format!("export GH_TOKEN='{token}'"))
        .start();
    lab.member("byok")
        .provider("copilot", State::NoAuth)
        .env_line("export COPILOT_PROVIDER_BASE_URL='http://127.0.0.1:9/v1'")
        .start();
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    let deep = lab.fleetauth(&["sweep", "-i", inv, "--format", "json", "--deep"]);
    let row = quick.row("classic", "copilot");
    assert_eq!(
        (row["state"].as_str(), row["source"].as_str()),
        (Some("ready"), Some("env_file")),
        "{row}"
    );
    let row = deep.row("classic", "copilot");
    assert_eq!(row["state"], "needs_auth", "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .starts_with("classic personal access token (ghp_) rejected"),
        "{row}"
    );
    let row = quick.row("byok", "copilot");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("COPILOT_PROVIDER_BASE_URL (env file) set selects another backend"),
        "{row}"
    );
    assert_eq!(deep.row("byok", "copilot")["state"], "ready");
    for out in [&quick, &deep] {
        assert!(!out.stdout.contains(&token) && !out.stderr.contains(&token));
    }
}
