//! Laying out a member's `$HOME`, bin dir and simulated vendor for a set of provider states.
//!
//! This is the one place that knows which files each CLI reads in each [`State`]; the stubs
//! (docker/stubs) read exactly these. Credential files are written the way the real CLIs write
//! them: gemini's and codex's pretty-printed, claude's on one compact line, so both shapes are
//! exercised. Every secret planted is returned, labelled, so tests can look for leaks.
//!
//! Env file lines are `export NAME='value'`: operator lines (`env_line`) first, in the order
//! given, then the providers' lines in provider order.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::State;
use super::fake;

/// The layouts of the CLIs in providers/{opencode-*,cursor,droid,amp,agy,qwen}.toml.
mod more_clis;

/// The member's env file, relative to its `$HOME` (fleetauth's default `env_file`).
pub const ENV_FILE: &str = ".config/fleetauth/env";

/// What a member should look like; filled by `MemberBuilder`.
#[derive(Debug, Clone)]
pub(crate) struct HomeSpec {
    pub providers: Vec<(String, State)>,
    pub env_lines: Vec<String>,
    pub rejects: Vec<String>,
    pub onboarding: bool,
    pub vendor_unreachable: bool,
    pub versions: Vec<(String, String)>,
    /// Every shell's start-up files print a line to stdout and one to stderr ([`noisy_rc`]).
    pub noisy_rc: bool,
    /// The npm-based CLIs are installed as `npm install -g` lays them out (see [`npm_install`]).
    pub npm_layout: bool,
    /// Every stub CLI start costs what a Node start-up costs (the vendor's `startup` file,
    /// docs/stubs.md "Start-up cost").
    pub node_startup: bool,
}

impl Default for HomeSpec {
    fn default() -> Self {
        HomeSpec {
            providers: Vec::new(),
            env_lines: Vec::new(),
            rejects: Vec::new(),
            onboarding: true,
            vendor_unreachable: false,
            versions: Vec::new(),
            noisy_rc: false,
            npm_layout: false,
            node_startup: false,
        }
    }
}

/// The secrets planted for one provider, labelled by the variable or JSON field they sit in
/// (`GEMINI_API_KEY`, `access_token`, `accessToken`, …).
#[derive(Debug, Clone)]
pub struct Planted {
    pub provider: String,
    pub state: State,
    pub secrets: Vec<(&'static str, String)>,
}

/// Where a member's files live.
pub(crate) struct Dirs<'a> {
    pub home: &'a Path,
    pub bin: &'a Path,
    pub vendor: &'a Path,
}

/// Accumulates what the providers' states put outside their own files.
#[derive(Default)]
struct Plan {
    env: Vec<String>,
    rejected: Vec<String>,
    unreachable: Vec<String>,
    /// Flags in the simulated vendor's directory (`ineligible-gemini`).
    vendor_flags: Vec<String>,
    /// The stub `security` goes on the member's PATH.
    keychain: bool,
}

/// The stub keychain the `security` and `secret-tool` stubs read (docs/stubs.md).
pub const STUB_KEYCHAIN: &str = "Library/Keychains/fleetauth-stub";

/// Put `secret` in the member's stub keychain under `service`; `locked` locks the keychain.
fn keychain_item(home: &Path, plan: &mut Plan, service: &str, secret: &str, locked: bool) {
    plan.keychain = true;
    let dir = home.join(STUB_KEYCHAIN);
    write_private(&dir.join("items").join(service), secret);
    if locked {
        write(&dir.join("locked"), "");
    }
}

impl Plan {
    fn env(&mut self, name: &str, value: &str) {
        self.env.push(format!("export {name}='{value}'"));
    }
}

/// Lay out `spec` under `dirs` (which must exist and be empty). Panics on any I/O error or on
/// a state that makes no sense for a provider (say, an expiring copilot login).
pub(crate) fn lay_out(spec: &HomeSpec, dirs: &Dirs) -> Vec<Planted> {
    let mut plan = Plan::default();
    let mut planted = Vec::new();
    for (provider, state) in &spec.providers {
        if *state != State::NotInstalled {
            let binary = binary_of(provider);
            let stub = super::stubs_dir().join(binary);
            assert!(
                stub.exists(),
                "no stub CLI for provider {provider:?} at {}",
                stub.display()
            );
            // Two providers may share one CLI (opencode-anthropic, opencode-openai).
            let link = dirs.bin.join(binary);
            if link.symlink_metadata().is_err() {
                match npm_package(binary).filter(|_| spec.npm_layout) {
                    Some((package, version)) => {
                        let version = spec
                            .versions
                            .iter()
                            .rfind(|(cli, _)| cli == binary)
                            .map_or(version, |(_, v)| v.as_str());
                        npm_install(dirs, binary, package, version, &stub);
                    }
                    None => std::os::unix::fs::symlink(&stub, link).expect("link stub"),
                }
            }
        }
        let secrets = match provider.as_str() {
            "gemini" => gemini(*state, dirs.home, &mut plan),
            "claude" => claude(*state, spec.onboarding, dirs.home, &mut plan),
            "codex" => codex(*state, dirs.home, &mut plan),
            "copilot" => copilot(*state, dirs.home, &mut plan),
            "opencode-anthropic" | "opencode-openai" => {
                more_clis::opencode(provider, *state, dirs.home, &mut plan)
            }
            "cursor" => more_clis::cursor(*state, dirs.home, &mut plan),
            "droid" => more_clis::droid(*state, dirs.home, &mut plan),
            "amp" => more_clis::amp(*state, dirs.home, &mut plan),
            "agy" => more_clis::agy(*state, dirs.home, &mut plan),
            "qwen" => more_clis::qwen(*state, dirs.home, &mut plan),
            other => {
                panic!(
                    "unknown provider {other:?}; the stubs are gemini, claude, codex, copilot, {}",
                    more_clis::PROVIDERS.join(", ")
                )
            }
        };
        planted.push(Planted {
            provider: provider.clone(),
            state: *state,
            secrets,
        });
    }

    if plan.keychain {
        let security = dirs.bin.join("security");
        if !security.exists() {
            std::os::unix::fs::symlink(super::stubs_dir().join("security"), security)
                .expect("link the security stub");
        }
    }
    for flag in &plan.vendor_flags {
        write(&dirs.vendor.join(flag), "");
    }

    let mut env_lines = spec.env_lines.clone();
    env_lines.extend(plan.env);
    if !env_lines.is_empty() {
        let mut text = env_lines.join("\n");
        text.push('\n');
        write_private(&dirs.home.join(ENV_FILE), &text);
    }

    let mut rejected = spec.rejects.clone();
    rejected.extend(plan.rejected);
    if !rejected.is_empty() {
        write(&dirs.vendor.join("rejected"), &(rejected.join("\n") + "\n"));
    }
    if spec.vendor_unreachable {
        write(&dirs.vendor.join("unreachable"), "");
    }
    for cli in plan.unreachable {
        write(&dirs.vendor.join(format!("unreachable-{cli}")), "");
    }
    for (cli, version) in &spec.versions {
        write(
            &dirs.vendor.join(format!("version-{cli}")),
            &format!("{version}\n"),
        );
    }
    if spec.noisy_rc {
        noisy_rc(dirs.home);
    }
    if spec.node_startup {
        write(&dirs.vendor.join("startup"), "node\n");
    }
    planted
}

/// The npm package and default version (the stub's) of the CLIs published on npm
/// (shared/provider-facts.md; versions from shared/real-cli-observations.md).
pub(crate) fn npm_package(cli: &str) -> Option<(&'static str, &'static str)> {
    match cli {
        "gemini" => Some(("@google/gemini-cli", "0.61.0")),
        "claude" => Some(("@anthropic-ai/claude-code", "2.1.197")),
        "codex" => Some(("@openai/codex", "0.169.0")),
        "copilot" => Some(("@github/copilot", "1.0.102")),
        _ => None,
    }
}

/// `cli` as `npm install -g --prefix ~/.npm-global` installs it:
/// `~/.npm-global/lib/node_modules/PACKAGE/{package.json,cli.js}` and `bin/CLI -> …/cli.js`.
/// `cli.js` runs the stub; the vendor's `version-CLI` file makes the stub print the version
/// the package.json holds, as the real CLIs print their package's version.
fn npm_install(dirs: &Dirs, cli: &str, package: &str, version: &str, stub: &Path) {
    let root = dirs.home.join(".npm-global/lib/node_modules").join(package);
    write(
        &root.join("package.json"),
        &format!(
            "{{\n  \"name\": \"{package}\",\n  \"version\": \"{version}\",\n  \"type\": \"module\",\n  \"bin\": {{\n    \"{cli}\": \"cli.js\"\n  }},\n  \"engines\": {{\n    \"node\": \">=20\"\n  }}\n}}\n"
        ),
    );
    let script = root.join("cli.js");
    write(
        &script,
        &format!("#!/bin/sh\nexec '{}' \"$@\"\n", stub.display()),
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod cli.js");
    std::os::unix::fs::symlink(&script, dirs.bin.join(cli)).expect("link the npm bin");
    write(
        &dirs.vendor.join(format!("version-{cli}")),
        &format!("{version}\n"),
    );
}

/// What every line a noisy start-up file prints begins with (see [`noisy_rc`]).
pub const RC_NOISE: &str = "rc-noise:";

/// Start-up files that print, as real ones do (a greeting, `fortune`, a version manager's
/// notice): for each file, `rc-noise: FILE stdout` on stdout and `rc-noise: FILE stderr` on
/// stderr. Which ones run depends on the shell and how it is started: bash run by sshd reads
/// `.bashrc` (Debian builds it so); zsh always `.zshenv`; fish always `config.fish`; tcsh
/// `.tcshrc` (`.cshrc` without it); sh/dash/busybox read `$ENV` (`.shrc`, set by the harness)
/// only when interactive and `.profile` only as login shells; `.bash_profile`, `.profile` and
/// `.zshrc` only for login or interactive shells.
pub(crate) fn noisy_rc(home: &Path) {
    let posix = |file: &str| {
        format!("echo '{RC_NOISE} {file} stdout'\necho '{RC_NOISE} {file} stderr' >&2\n")
    };
    for file in [
        ".bashrc",
        ".profile",
        ".bash_profile",
        ".zshenv",
        ".zshrc",
        ".shrc",
    ] {
        write(&home.join(file), &posix(file));
    }
    write(
        &home.join(".config/fish/config.fish"),
        &posix("config.fish"),
    );
    // csh cannot send one command's stdout to stderr alone; sh can.
    for file in [".tcshrc", ".cshrc"] {
        write(
            &home.join(file),
            &format!(
                "echo '{RC_NOISE} {file} stdout'\n/bin/sh -c \"echo '{RC_NOISE} {file} stderr' >&2\"\n"
            ),
        );
    }
}

fn gemini(state: State, home: &Path, plan: &mut Plan) -> Vec<(&'static str, String)> {
    let dir = home.join(".gemini");
    let oauth_personal = || {
        write(
            &dir.join("settings.json"),
            "{\n  \"security\": {\n    \"auth\": {\n      \"selectedType\": \"oauth-personal\"\n    }\n  }\n}\n",
        )
    };
    let oauth = |valid_for_s: i64, with_refresh: bool| {
        oauth_personal();
        let access = fake::google_access_token();
        let refresh = fake::google_refresh_token();
        let refresh_line = if with_refresh {
            format!("  \"refresh_token\": \"{refresh}\",\n")
        } else {
            String::new()
        };
        let expiry_ms = fake::epoch_s(valid_for_s) * 1000;
        write_private(
            &dir.join("oauth_creds.json"),
            &format!(
                "{{\n  \"access_token\": \"{access}\",\n{refresh_line}  \"scope\": \"https://www.googleapis.com/auth/cloud-platform\",\n  \"token_type\": \"Bearer\",\n  \"expiry_date\": {expiry_ms}\n}}"
            ),
        );
        write(
            &dir.join("google_accounts.json"),
            "{\n  \"active\": \"fake@example.invalid\",\n  \"old\": []\n}",
        );
        let mut secrets = vec![("access_token", access)];
        if with_refresh {
            secrets.push(("refresh_token", refresh));
        }
        secrets
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::OauthValid => oauth(6 * 3600, true),
        State::OauthExpiring => oauth(30 * 60, true),
        State::OauthRefreshable => oauth(-2 * 3600, true),
        State::OauthExpired => oauth(-2 * 3600, false),
        State::OauthMalformed => {
            oauth_personal();
            write_private(&dir.join("oauth_creds.json"), "not json {");
            vec![]
        }
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("gemini", "GEMINI_API_KEY", state, plan)
        }
        State::Shadowed => {
            let mut secrets = oauth(-2 * 3600, false);
            let key = fake::gemini_key();
            plan.env("GEMINI_API_KEY", &key);
            secrets.push(("GEMINI_API_KEY", key));
            secrets
        }
        State::IneligibleAccount => {
            plan.vendor_flags.push("ineligible-gemini".into());
            oauth(6 * 3600, true)
        }
        State::SettingsKey => {
            let key = fake::gemini_key();
            write_private(&dir.join(".env"), &format!("GEMINI_API_KEY=\"{key}\"\n"));
            vec![("GEMINI_API_KEY", key)]
        }
        State::DotenvHome | State::DotenvIgnored => {
            let key = fake::gemini_key();
            write_private(&home.join(".env"), &format!("GEMINI_API_KEY={key}\n"));
            if state == State::DotenvIgnored {
                write_private(&dir.join(".env"), "GOOGLE_CLOUD_LOCATION=us-central1\n");
            }
            vec![("GEMINI_API_KEY", key)]
        }
        State::KeychainLogin | State::KeychainLocked | State::EncryptedFileLogin => {
            // GEMINI_FORCE_ENCRYPTED_FILE_STORAGE moved the login into gemini's token storage
            // and deleted oauth_creds.json.
            let mut secrets = oauth(6 * 3600, true);
            fs::remove_file(dir.join("oauth_creds.json")).expect("remove oauth_creds.json");
            let (access, refresh) = (secrets[0].1.clone(), secrets[1].1.clone());
            let stored = format!(
                "{{\"serverName\":\"main-account\",\"token\":{{\"accessToken\":\"{access}\",\"refreshToken\":\"{refresh}\",\"tokenType\":\"Bearer\",\"expiresAt\":{}}},\"updatedAt\":{}}}",
                fake::epoch_s(6 * 3600) * 1000,
                fake::epoch_s(0) * 1000
            );
            plan.env("GEMINI_FORCE_ENCRYPTED_FILE_STORAGE", "true");
            if state == State::EncryptedFileLogin {
                write_private(&dir.join("gemini-credentials.json"), &stored);
            } else {
                let locked = state == State::KeychainLocked;
                keychain_item(home, plan, "gemini-cli-oauth", &stored, locked);
            }
            secrets.truncate(2);
            secrets
        }
        other => panic!("{other:?} is not a gemini state"),
    }
}

fn claude(
    state: State,
    onboarding: bool,
    home: &Path,
    plan: &mut Plan,
) -> Vec<(&'static str, String)> {
    if state != State::NotInstalled {
        let config = if onboarding {
            "{\n  \"numStartups\": 1,\n  \"hasCompletedOnboarding\": true\n}\n"
        } else {
            "{\n  \"numStartups\": 1\n}\n"
        };
        write(&home.join(".claude.json"), config);
    }
    let creds = home.join(".claude/.credentials.json");
    let login = |valid_for_s: i64, with_refresh: bool, extra: &str| {
        let access = fake::claude_oauth_token();
        let refresh = fake::claude_refresh_token();
        let refresh_field = if with_refresh {
            format!(",\"refreshToken\":\"{refresh}\"")
        } else {
            String::new()
        };
        let expires_ms = fake::epoch_s(valid_for_s) * 1000;
        let text = format!(
            "{{\"claudeAiOauth\":{{\"accessToken\":\"{access}\"{refresh_field},\"expiresAt\":{expires_ms}{extra},\"scopes\":[\"user:inference\",\"user:profile\"],\"subscriptionType\":\"max\"}}}}"
        );
        let mut secrets = vec![("accessToken", access)];
        if with_refresh {
            secrets.push(("refreshToken", refresh));
        }
        (text, secrets)
    };
    let oauth = |valid_for_s: i64, with_refresh: bool| {
        let (text, secrets) = login(valid_for_s, with_refresh, "");
        write_private(&creds, &text);
        secrets
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::OauthValid => oauth(8 * 3600, true),
        State::OauthExpiring => oauth(30 * 60, true),
        State::OauthRefreshable => oauth(-2 * 3600, true),
        State::OauthExpired => oauth(-2 * 3600, false),
        State::OauthMalformed => {
            write_private(&creds, "not json {");
            vec![]
        }
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("claude", "ANTHROPIC_API_KEY", state, plan)
        }
        State::Shadowed => {
            let stale = fake::anthropic_api_key();
            let good = fake::claude_oauth_token();
            plan.env("ANTHROPIC_API_KEY", &stale);
            plan.env("CLAUDE_CODE_OAUTH_TOKEN", &good);
            plan.rejected.push(stale.clone());
            vec![
                ("ANTHROPIC_API_KEY", stale),
                ("CLAUDE_CODE_OAUTH_TOKEN", good),
            ]
        }
        State::KeychainLogin | State::KeychainLocked => {
            let (text, secrets) = login(8 * 3600, true, "");
            let locked = state == State::KeychainLocked;
            keychain_item(home, plan, "Claude Code-credentials", &text, locked);
            secrets
        }
        State::LoginBlanked => {
            write_private(
                &creds,
                "{\"claudeAiOauth\":{\"accessToken\":\"\",\"refreshToken\":\"\",\"expiresAt\":0,\"scopes\":[],\"subscriptionType\":\"max\"}}",
            );
            vec![]
        }
        State::RefreshTokenExpired => {
            let dead_ms = fake::epoch_s(-3600) * 1000;
            let (text, secrets) = login(
                -2 * 3600,
                true,
                &format!(",\"refreshTokenExpiresAt\":{dead_ms}"),
            );
            write_private(&creds, &text);
            secrets
        }
        State::SettingsKey => {
            let key = fake::anthropic_api_key();
            write_private(
                &home.join(".claude/settings.json"),
                &format!("{{\n  \"env\": {{\n    \"ANTHROPIC_API_KEY\": \"{key}\"\n  }}\n}}\n"),
            );
            vec![("ANTHROPIC_API_KEY", key)]
        }
        other => panic!("{other:?} is not a claude state"),
    }
}

fn codex(state: State, home: &Path, plan: &mut Plan) -> Vec<(&'static str, String)> {
    let auth = home.join(".codex/auth.json");
    let chatgpt = |valid_for_s: i64, with_refresh: bool| {
        let id = fake::chatgpt_access_token(fake::epoch_s(valid_for_s));
        let access = fake::chatgpt_access_token(fake::epoch_s(valid_for_s));
        let refresh = fake::chatgpt_refresh_token();
        let refresh_line = if with_refresh {
            format!("    \"refresh_token\": \"{refresh}\",\n")
        } else {
            String::new()
        };
        write_private(
            &auth,
            &format!(
                "{{\n  \"auth_mode\": \"chatgpt\",\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {{\n    \"id_token\": \"{id}\",\n    \"access_token\": \"{access}\",\n{refresh_line}    \"account_id\": \"FAKE-{}\"\n  }},\n  \"last_refresh\": \"{}\"\n}}",
                fake::alnum(12),
                fake::rfc3339(-3600)
            ),
        );
        let mut secrets = vec![("id_token", id), ("access_token", access)];
        if with_refresh {
            secrets.push(("refresh_token", refresh));
        }
        secrets
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::OauthValid => chatgpt(6 * 3600, true),
        State::OauthExpiring => chatgpt(30 * 60, true),
        State::OauthRefreshable => chatgpt(-2 * 3600, true),
        State::OauthExpired => chatgpt(-2 * 3600, false),
        State::OauthMalformed => {
            write_private(&auth, "not json {");
            vec![]
        }
        State::KeyFile => {
            let key = fake::openai_key();
            write_private(
                &auth,
                &format!("{{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"{key}\"\n}}"),
            );
            vec![("OPENAI_API_KEY", key)]
        }
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("codex", "CODEX_API_KEY", state, plan)
        }
        State::Shadowed => {
            let mut secrets = chatgpt(6 * 3600, true);
            let stale = fake::openai_key();
            plan.env("CODEX_API_KEY", &stale);
            plan.rejected.push(stale.clone());
            secrets.push(("CODEX_API_KEY", stale));
            secrets
        }
        State::KeychainLogin | State::KeychainLocked => {
            // The keyring store: the login the CLI would have written to auth.json.
            let secrets = chatgpt(6 * 3600, true);
            let text = fs::read_to_string(&auth).expect("auth.json just written");
            fs::remove_file(&auth).expect("remove auth.json");
            write(
                &home.join(".codex/config.toml"),
                "cli_auth_credentials_store = \"keyring\"\n",
            );
            keychain_item(
                home,
                plan,
                "Codex Auth",
                &text,
                state == State::KeychainLocked,
            );
            secrets
        }
        other => panic!("{other:?} is not a codex state"),
    }
}

fn copilot(state: State, home: &Path, plan: &mut Plan) -> Vec<(&'static str, String)> {
    let config = home.join(".copilot/config.json");
    // The plaintext store as the real CLI writes it: tokens keyed by host and login.
    let token_in_config = || {
        let token = fake::github_oauth_token();
        write_private(
            &config,
            &format!(
                "{{\n  \"copilot_tokens\": {{\"https://github.com:fake-user\": \"{token}\"}},\n  \"logged_in_users\": [\n    {{\n      \"host\": \"https://github.com\",\n      \"login\": \"fake-user\"\n    }}\n  ],\n  \"last_logged_in_user\": {{\n    \"host\": \"https://github.com\",\n    \"login\": \"fake-user\"\n  }}\n}}\n"
            ),
        );
        ("copilot_tokens", token)
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::OauthValid => vec![token_in_config()],
        State::OauthExpiring | State::OauthRefreshable | State::OauthExpired => panic!(
            "{state:?} makes no sense for copilot: its tokens carry no expiry on disk (use OauthValid, RejectedKey or OauthMalformed)"
        ),
        State::OauthMalformed => {
            write_private(&config, "not json {");
            vec![]
        }
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("copilot", "COPILOT_GITHUB_TOKEN", state, plan)
        }
        State::Shadowed => {
            let good = token_in_config();
            let stale = fake::github_pat();
            plan.env("COPILOT_GITHUB_TOKEN", &stale);
            plan.rejected.push(stale.clone());
            vec![good, ("COPILOT_GITHUB_TOKEN", stale)]
        }
        State::KeychainLogin | State::KeychainLocked => {
            let token = fake::github_oauth_token();
            keychain_item(
                home,
                plan,
                "copilot-cli",
                &token,
                state == State::KeychainLocked,
            );
            vec![("copilot-cli", token)]
        }
        State::GhLogin => {
            let token = fake::github_oauth_token();
            write_private(
                &home.join(".config/gh/hosts.yml"),
                &format!(
                    "github.com:\n    users:\n        fake-user:\n            oauth_token: {token}\n    git_protocol: https\n    oauth_token: {token}\n    user: fake-user\n"
                ),
            );
            vec![("oauth_token", token)]
        }
        other => panic!("{other:?} is not a copilot state"),
    }
}

/// The CLI (stub file name) a provider runs: its name, except for the providers of
/// providers/{opencode-*,cursor}.toml.
pub(crate) fn binary_of(provider: &str) -> &str {
    match provider {
        "opencode-anthropic" | "opencode-openai" => "opencode",
        "cursor" => "cursor-agent",
        other => other,
    }
}

/// EnvKey, RejectedKey and VendorUnreachable: a fresh key in the env file, rejected by the
/// vendor or behind an unreachable vendor as the state says.
fn key_in_env_file(
    provider: &str,
    var: &'static str,
    state: State,
    plan: &mut Plan,
) -> Vec<(&'static str, String)> {
    let key = fake::api_key(provider);
    plan.env(var, &key);
    match state {
        State::RejectedKey => plan.rejected.push(key.clone()),
        State::VendorUnreachable => plan.unreachable.push(provider.to_string()),
        _ => {}
    }
    vec![(var, key)]
}

/// Write `contents` to `path`, creating parent directories.
pub(crate) fn write(path: &Path, contents: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Like [`write`], mode 0600 (credential files are private on real machines too).
pub(crate) fn write_private(path: &Path, contents: &str) {
    write(path, contents);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// The lines of a text file, or none when it does not exist.
pub(crate) fn lines(path: &Path) -> Vec<String> {
    match fs::read_to_string(path) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}
