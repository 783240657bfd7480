//! Credential sources beyond the env file and the CLIs' own files, against real sshd members:
//! OS keychains (present, locked; the stub `security`), config files that inject a key (claude's
//! settings `env` block and `apiKeyHelper`, gemini's `.env` files of which only the first
//! counts, its system settings), codex's keyring store and personal access token, copilot's
//! `copilot_tokens`, `COPILOT_HOME` and the GitHub CLI's login (`GH_CONFIG_DIR`), a Linux Secret
//! Service, gemini's token storage (`GEMINI_FORCE_ENCRYPTED_FILE_STORAGE`), claude's blanked
//! login and dead refresh token, Google's refusal of individual accounts (2026-06) and gemini's
//! other failure exits. Each row is checked for state, source and the detail naming where the
//! credential was found, with and without `--deep` (and `provision` where a push applies).

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
    // gemini loads only the first .env file it finds: ~/.gemini/.env, else ~/.env.
    Case {
        member: "gemini-dotenv-home",
        provider: "gemini",
        state: State::DotenvHome,
        quick: ("ready", Some("key_file"), ".env GEMINI_API_KEY set"),
        deep: ("ready", Some("probe"), "via .env GEMINI_API_KEY"),
    },
    Case {
        member: "gemini-dotenv-ignored",
        provider: "gemini",
        state: State::DotenvIgnored,
        quick: (
            "needs_auth",
            None,
            "no credential found; run `fleetauth auth set gemini` or `export GEMINI_API_KEY=…`, then `fleetauth provision`; .env GEMINI_API_KEY is not read: .gemini/.env exists, and gemini loads only the first of them",
        ),
        deep: (
            "needs_auth",
            None,
            "no auth method configured; .env GEMINI_API_KEY is not read: .gemini/.env exists",
        ),
    },
    // GEMINI_FORCE_ENCRYPTED_FILE_STORAGE=true: the login leaves oauth_creds.json for the
    // keychain, or gemini's encrypted file where no keychain answers.
    Case {
        member: "gemini-keychain",
        provider: "gemini",
        state: State::KeychainLogin,
        quick: (
            "ready",
            Some("keychain"),
            "keychain service \"gemini-cli-oauth\" present in the macOS keychain (presence only; --deep proves it); the login GEMINI_FORCE_ENCRYPTED_FILE_STORAGE moved out of oauth_creds.json",
        ),
        deep: (
            "ready",
            Some("probe"),
            "via keychain service \"gemini-cli-oauth\"",
        ),
    },
    Case {
        member: "gemini-keychain-locked",
        provider: "gemini",
        state: State::KeychainLocked,
        quick: (
            "needs_auth",
            None,
            "keychain service \"gemini-cli-oauth\": the login keychain is locked (normal over SSH), so gemini cannot read its login; push a non-rotating credential (`fleetauth provision`), or log in once inside an SSH session",
        ),
        deep: (
            "needs_auth",
            None,
            "cannot be refreshed non-interactively: log in again or use an API key; via keychain service \"gemini-cli-oauth\"",
        ),
    },
    Case {
        member: "gemini-encrypted-file",
        provider: "gemini",
        state: State::EncryptedFileLogin,
        quick: (
            "ready",
            Some("key_file"),
            ".gemini/gemini-credentials.json present (encrypted: presence only; --deep proves it); gemini's encrypted store",
        ),
        deep: (
            "ready",
            Some("probe"),
            "via .gemini/gemini-credentials.json",
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
        member: "copilot-keychain-locked",
        provider: "copilot",
        state: State::KeychainLocked,
        quick: (
            "needs_auth",
            None,
            "keychain service \"copilot-cli\": the login keychain is locked (normal over SSH), so copilot cannot read its login; push a non-rotating credential",
        ),
        deep: ("needs_auth", None, "not logged in"),
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

#[test]
fn gemini_reads_only_the_first_dotenv_file_and_provision_fixes_an_ignored_one() {
    // Both files hold a key: ~/.gemini/.env wins, the one in ~/.env (rejected by the vendor) is
    // never read, so the member is ready. With ~/.gemini/.env holding no key, the key in ~/.env
    // is not read either: needs_auth, and provision's key in the env file makes it ready.
    let lab = Lab::new();
    let both = lab
        .member("both")
        .provider("gemini", State::SettingsKey)
        .start();
    let stale = support::fake::gemini_key();
    std::fs::write(
        both.home().join(".env"),
        format!("GEMINI_API_KEY={stale}\n"),
    )
    .unwrap();
    std::fs::write(both.vendor_dir().join("rejected"), format!("{stale}\n")).unwrap();
    let ignored = lab
        .member("ignored")
        .provider("gemini", State::DotenvIgnored)
        .start();
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv_s = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json"]);
    let deep = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json", "--deep"]);
    let note = ".env GEMINI_API_KEY is not read: .gemini/.env exists, and gemini loads only the first of them";
    for (out, source) in [(&quick, "key_file"), (&deep, "probe")] {
        let row = out.row("both", "gemini");
        let detail = row["detail"].as_str().unwrap();
        assert_eq!(row["state"], "ready", "{row}");
        assert_eq!(row["source"], source, "{row}");
        assert!(
            detail.contains(".gemini/.env GEMINI_API_KEY") && detail.contains(note),
            "{row}"
        );
        assert!(
            !detail.contains("shadows"),
            "not read is not shadowed: {row}"
        );
    }
    assert_eq!(quick.row("ignored", "gemini")["state"], "needs_auth");

    let key = support::fake::gemini_key();
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    let row = out.row("ignored", "gemini");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("pushed")),
        "{row}"
    );
    assert!(ignored.env_file_contents().contains("GEMINI_API_KEY="));
    let row = out.row("both", "gemini");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("none")),
        "{row}"
    );
    for o in [&quick, &deep, &out] {
        for secret in [&stale, &key] {
            assert!(!o.stdout.contains(secret.as_str()) && !o.stderr.contains(secret.as_str()));
        }
    }
}

#[test]
fn gemini_login_in_encrypted_storage_is_left_alone_by_provision() {
    // GEMINI_FORCE_ENCRYPTED_FILE_STORAGE moved the login out of oauth_creds.json: a member
    // whose keychain or encrypted file holds it is ready, so provision pushes nothing.
    let lab = Lab::new();
    let kc = lab
        .member("kc")
        .provider("gemini", State::KeychainLogin)
        .start();
    let file = lab
        .member("file")
        .provider("gemini", State::EncryptedFileLogin)
        .start();
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let key = support::fake::gemini_key();
    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &key)], &[]);
    for member in [&kc, &file] {
        let row = out.row(member.name(), "gemini");
        assert_eq!(
            (row["state"].as_str(), row["action"].as_str()),
            (Some("ready"), Some("none")),
            "{row}"
        );
        assert!(!member.env_file_contents().contains("GEMINI_API_KEY"));
        assert!(!member.home().join(".gemini/oauth_creds.json").exists());
    }
}

#[test]
fn copilot_follows_copilot_home_and_gh_config_dir() {
    // COPILOT_HOME replaces ~/.copilot; GH_CONFIG_DIR moves the GitHub CLI's hosts.yml. Each is
    // checked both ways: the login in the moved place counts, the one left in the default
    // place does not (the CLI no longer looks there).
    let lab = Lab::new();
    let members = lab.dir().join("members");
    let alt = |member: &str, dir: &str| members.join(member).join("home").join(dir);
    let moved_home = lab
        .member("moved-home")
        .provider("copilot", State::OauthValid)
        .ambient_env(
            "COPILOT_HOME",
            alt("moved-home", "copilot alt").to_str().unwrap(),
        )
        .build();
    std::fs::rename(
        moved_home.home().join(".copilot"),
        alt("moved-home", "copilot alt"),
    )
    .unwrap();
    let stale_home = lab
        .member("stale-home")
        .provider("copilot", State::OauthValid)
        .ambient_env(
            "COPILOT_HOME",
            alt("stale-home", "copilot-empty").to_str().unwrap(),
        )
        .build();
    let moved_gh = lab
        .member("moved-gh")
        .provider("copilot", State::GhLogin)
        .ambient_env("GH_CONFIG_DIR", alt("moved-gh", "gh alt").to_str().unwrap())
        .build();
    std::fs::rename(
        moved_gh.home().join(".config/gh"),
        alt("moved-gh", "gh alt"),
    )
    .unwrap();
    let stale_gh = lab
        .member("stale-gh")
        .provider("copilot", State::GhLogin)
        .ambient_env(
            "GH_CONFIG_DIR",
            alt("stale-gh", "gh-empty").to_str().unwrap(),
        )
        .build();
    for m in [&moved_home, &stale_home, &moved_gh, &stale_gh] {
        m.start();
    }
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv_s = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json"]);
    let deep = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json", "--deep"]);
    let want = [
        ("moved-home", "ready", "config.json copilot_tokens.* set"),
        ("stale-home", "needs_auth", "no credential found"),
        (
            "moved-gh",
            "ready",
            "~/.config/gh/hosts.yml github.com.oauth_token set",
        ),
        ("stale-gh", "needs_auth", "no credential found"),
    ];
    for (member, state, detail) in want {
        let row = quick.row(member, "copilot");
        assert_eq!(row["state"], state, "{row}");
        assert!(row["detail"].as_str().unwrap().contains(detail), "{row}");
        assert_eq!(
            deep.row(member, "copilot")["state"],
            state,
            "--deep {member}"
        );
    }
    let row = deep.row("stale-gh", "copilot");
    assert!(
        row["detail"].as_str().unwrap().contains("not logged in"),
        "{row}"
    );
}

#[test]
fn gemini_system_settings_and_its_own_key_store() {
    // The system settings (moved by GEMINI_CLI_SYSTEM_SETTINGS_PATH, here to a path with a
    // space) override the user's: an administrator's enforcedType forces a login the member
    // does not have, over a good key; a system selectedType picks the key over the user's
    // expired login. Under gemini-api-key without the variable, the key the CLI keeps in its
    // keychain (gemini-cli-api-key) counts.
    let lab = Lab::new();
    let home_of = |m: &str| lab.dir().join("members").join(m).join("home");
    let system = |m: &str| home_of(m).join("admin settings/settings.json");
    let enforced = lab
        .member("enforced")
        .provider("gemini", State::EnvKey)
        .ambient_env(
            "GEMINI_CLI_SYSTEM_SETTINGS_PATH",
            system("enforced").to_str().unwrap(),
        )
        .build();
    let selected = lab
        .member("selected")
        .provider("gemini", State::Shadowed)
        .ambient_env(
            "GEMINI_CLI_SYSTEM_SETTINGS_PATH",
            system("selected").to_str().unwrap(),
        )
        .build();
    let stored = lab
        .member("stored")
        .provider("gemini", State::NoAuth)
        .build();
    for (m, text) in [
        (
            &enforced,
            r#"{"security":{"auth":{"enforcedType":"oauth-personal"}}}"#,
        ),
        (
            &selected,
            r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
        ),
    ] {
        let path = system(m.name());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::create_dir_all(stored.home().join(".gemini")).unwrap();
    std::fs::write(
        stored.home().join(".gemini/settings.json"),
        r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
    )
    .unwrap();
    let key = support::fake::gemini_key();
    let items = stored.home().join(support::STUB_KEYCHAIN).join("items");
    std::fs::create_dir_all(&items).unwrap();
    std::fs::write(items.join("gemini-cli-api-key"), &key).unwrap();
    std::os::unix::fs::symlink(
        support::stubs_dir().join("security"),
        stored.bin_dir().join("security"),
    )
    .unwrap();
    for m in [&enforced, &selected, &stored] {
        m.start();
    }
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv_s = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json"]);
    let deep = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json", "--deep"]);
    let want = [
        (
            "enforced",
            (
                "needs_auth",
                None,
                "/etc/gemini-cli/settings.json security.auth.enforcedType selects oauth-personal but none of",
            ),
            ("needs_auth", None, "cannot be refreshed non-interactively"),
        ),
        (
            "selected",
            ("ready", Some("env_file"), "GEMINI_API_KEY (env file) set"),
            ("ready", Some("probe"), "via GEMINI_API_KEY (env file)"),
        ),
        (
            "stored",
            (
                "ready",
                Some("keychain"),
                "keychain service \"gemini-cli-api-key\" present",
            ),
            (
                "ready",
                Some("probe"),
                "via keychain service \"gemini-cli-api-key\"",
            ),
        ),
    ];
    let mut wrong = Vec::new();
    for (member, q, d) in want {
        for (out, (state, source, detail), mode) in [(&quick, q, "sweep"), (&deep, d, "--deep")] {
            let row = out.row(member, "gemini");
            if row["state"] != state
                || row["source"].as_str() != source
                || !row["detail"].as_str().unwrap_or_default().contains(detail)
            {
                wrong.push(format!("{member} ({mode}): {row}"));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong rows:\n{}", wrong.join("\n"));
    for out in [&quick, &deep] {
        assert!(!out.stdout.contains(&key) && !out.stderr.contains(&key));
    }
}

#[test]
fn codex_personal_access_token_in_auth_json() {
    // auth.json holding a personal access token (auth_mode personalAccessToken) is a login:
    // ready without --deep, proven by the prompt, and left alone by provision.
    let lab = Lab::new();
    let m = lab.member("pat").provider("codex", State::NoAuth).build();
    let token = format!("at-FAKE{}", support::fake::alnum(40));
    let auth = m.home().join(".codex/auth.json");
    std::fs::create_dir_all(auth.parent().unwrap()).unwrap();
    std::fs::write(
        &auth,
        format!("{{\n  \"auth_mode\": \"personalAccessToken\",\n  \"personal_access_token\": \"{token}\"\n}}"),
    )
    .unwrap();
    m.start();
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv_s = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json"]);
    let row = quick.row("pat", "codex");
    assert_eq!(
        (row["state"].as_str(), row["source"].as_str()),
        (Some("ready"), Some("key_file")),
        "{row}"
    );
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .starts_with("auth.json personal_access_token set"),
        "{row}"
    );
    let deep = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json", "--deep"]);
    let row = deep.row("pat", "codex");
    assert_eq!(
        (row["state"].as_str(), row["source"].as_str()),
        (Some("ready"), Some("probe")),
        "{row}"
    );
    let out = lab.provision_json(
        &inv,
        &[("CODEX_API_KEY", &support::fake::openai_key())],
        &[],
    );
    let row = out.row("pat", "codex");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("none")),
        "{row}"
    );
    for o in [&quick, &deep, &out] {
        assert!(!o.stdout.contains(&token) && !o.stderr.contains(&token));
    }
}

#[test]
fn claude_api_key_helper_and_a_linux_secret_service() {
    // claude runs the settings' apiKeyHelper for its key; copilot's login in a Linux Secret
    // Service (libsecret, the stub `secret-tool`; a session bus is announced) counts like the
    // macOS keychain's, and the detail says which store it is.
    let lab = Lab::new();
    let helper = lab
        .member("helper")
        .provider("claude", State::NoAuth)
        .build();
    let key = support::fake::anthropic_api_key();
    let claude_dir = helper.home().join(".claude");
    std::fs::create_dir_all(&claude_dir).unwrap();
    std::fs::write(claude_dir.join("key.txt"), &key).unwrap();
    std::fs::write(
        claude_dir.join("settings.json"),
        r#"{"apiKeyHelper": "cat $HOME/.claude/key.txt"}"#,
    )
    .unwrap();
    let libsecret = lab
        .member("libsecret")
        .provider("copilot", State::KeychainLogin)
        .ambient_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .build();
    let bin = libsecret.bin_dir();
    std::fs::remove_file(bin.join("security")).unwrap();
    std::os::unix::fs::symlink(
        support::stubs_dir().join("secret-tool"),
        bin.join("secret-tool"),
    )
    .unwrap();
    for m in [&helper, &libsecret] {
        m.start();
    }
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv_s = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json"]);
    let deep = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json", "--deep"]);
    let want = [
        (
            "helper",
            "claude",
            ("key_file", "settings.json apiKeyHelper set"),
            "via settings.json apiKeyHelper",
        ),
        (
            "libsecret",
            "copilot",
            (
                "keychain",
                "keychain service \"copilot-cli\" present in the Secret Service (libsecret)",
            ),
            "via keychain service \"copilot-cli\"",
        ),
    ];
    for (member, provider, (source, detail), deep_detail) in want {
        let row = quick.row(member, provider);
        assert_eq!(
            (row["state"].as_str(), row["source"].as_str()),
            (Some("ready"), Some(source)),
            "{row}"
        );
        assert!(row["detail"].as_str().unwrap().contains(detail), "{row}");
        let row = deep.row(member, provider);
        assert_eq!(
            (row["state"].as_str(), row["source"].as_str()),
            (Some("ready"), Some("probe")),
            "{row}"
        );
        assert!(
            row["detail"].as_str().unwrap().contains(deep_detail),
            "{row}"
        );
    }
    let token = libsecret.secret("copilot", "copilot-cli");
    for out in [&quick, &deep] {
        for secret in [&key, &token] {
            assert!(!out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()));
        }
    }
}

#[test]
fn gemini_exit_codes_invalid_grant_and_the_browser_prompt() {
    // What only the prompt can tell (provider-facts 2026-11, gemini): the turn limit (53) and a
    // failed tool (54) come after the model answered, so the credential works; bad input (42)
    // and the sandbox (44) are errors that say nothing about it; a dead refresh token
    // (`invalid_grant`) and the browser prompt of an expired login need a new login. Without
    // --deep every one of them looks ready.
    let lab = Lab::new();
    let cases = [
        (
            // A ready verdict's detail is "prompt answered" whatever rule matched: without
            // the rules for 53 and 54 these would be errors ("unrecognised result").
            "turn-limit",
            State::EnvKey,
            "ready",
            "prompt answered",
        ),
        ("tool-failed", State::EnvKey, "ready", "prompt answered"),
        (
            "bad-input",
            State::EnvKey,
            "error",
            "gemini refused its input (exit 42)",
        ),
        (
            "sandbox",
            State::EnvKey,
            "error",
            "gemini sandbox error (exit 44)",
        ),
        (
            "invalid-grant",
            State::OauthRefreshable,
            "needs_auth",
            "OAuth refresh token is dead (invalid_grant)",
        ),
        (
            "browser",
            State::OauthRefreshable,
            "needs_auth",
            "gemini wants a browser login",
        ),
    ];
    for (answer, state, _, _) in cases {
        let m = lab.member(answer).provider("gemini", state).build();
        std::fs::write(m.vendor_dir().join("gemini-answer"), format!("{answer}\n")).unwrap();
        m.start();
    }
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv_s = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json"]);
    let deep = lab.fleetauth(&["sweep", "-i", inv_s, "--format", "json", "--deep"]);
    let mut wrong = Vec::new();
    for (member, _, state, detail) in cases {
        if quick.row(member, "gemini")["state"] != "ready" {
            wrong.push(format!("{member} (sweep): {}", quick.row(member, "gemini")));
        }
        let row = deep.row(member, "gemini");
        if row["state"] != state || !row["detail"].as_str().unwrap_or_default().contains(detail) {
            wrong.push(format!("{member} (--deep): {row}"));
        }
    }
    assert!(wrong.is_empty(), "wrong rows:\n{}", wrong.join("\n"));
}
