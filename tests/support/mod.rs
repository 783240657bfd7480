//! The test fleet: real OpenSSH members on loopback, running the stub agent CLIs.
//!
//! Integration tests say `mod support;` and describe a fleet the way the spec does — members in
//! named states, then a `fleetauth` command, then the rows it must print:
//!
//! ```ignore
//! let lab = Lab::new();
//! let m = lab.member("gem-ok").provider("gemini", State::OauthValid).start();
//! lab.down_member("dead");
//! let inv = lab.inventory(r#"command_timeout = "20s""#);
//! let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
//! out.assert_exit(0);
//! assert_eq!(out.row("gem-ok", "gemini")["state"], "ready");
//! ```
//!
//! Why real `sshd` processes and not an in-process fake server: what fleetauth must get right
//! (host keys, auth, channels, exit statuses, stderr, hangs, the member's `$HOME` and `PATH`) is
//! exactly what a fake would get subtly wrong. Each member is one `sshd -D` on its own
//! `127.x.y.z`, with its own host key, `HOME`, `PATH` (a bin dir holding only the installed
//! stubs) and simulated vendor (`$FLEETAUTH_STUB_VENDOR`, see docs/stubs.md). A `ForceCommand`
//! wrapper logs every command a member runs, so tests can count channels and check that no
//! secret ever travels in a command line.
//!
//! A member can also log in as its own local user whose login shell (bash, dash, zsh, fish,
//! tcsh, busybox sh) parses every command line, and carry start-up files that print
//! (`MemberBuilder::login_shell`, `MemberBuilder::noisy_rc`): fleetauth must behave the same
//! there as on a plain member.
//!
//! Everything a lab starts is killed when the [`Lab`] (or the last handle to a member) is
//! dropped, also when a test panics: the sshd, its connections and any stub still hanging.
//! Set `FLEETAUTH_KEEP_LAB=1` to keep the lab's directory for a post-mortem.
#![allow(dead_code, unused_imports)]

pub mod fake;
mod home;
mod lab;
pub mod netns;
mod procs;
mod run;
mod sshd;
mod users;

pub use home::{ENV_FILE, Planted, RC_NOISE, STUB_KEYCHAIN};
pub use lab::{Endpoint, Lab, Member, MemberBuilder};
pub use run::{Output, Run, STORE_PASSPHRASE, capture};

/// The state one provider is in on one member. Each is laid out as the real CLI would leave a
/// machine in that state (files under the member's `$HOME`, lines in its env file, the vendor's
/// lists); see [`home`] for the exact files per provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The CLI is not on the member's PATH.
    NotInstalled,
    /// Installed, no credential anywhere.
    NoAuth,
    /// An OAuth login valid for hours (copilot: a `gho_` token in its config file).
    OauthValid,
    /// An OAuth login that expires in under an hour (refresh token present).
    OauthExpiring,
    /// An OAuth login past its expiry whose refresh token still works.
    OauthRefreshable,
    /// An OAuth login past its expiry without a refresh token.
    OauthExpired,
    /// The OAuth credential file exists but is not JSON.
    OauthMalformed,
    /// A well-formed key the vendor accepts, in the member's env file.
    EnvKey,
    /// A well-formed key in the member's env file that the vendor rejects.
    RejectedKey,
    /// A higher-precedence credential hides a good one (gemini: settings select an expired
    /// OAuth login, a good `GEMINI_API_KEY` is in the env file; claude: a rejected
    /// `ANTHROPIC_API_KEY` hides a good `CLAUDE_CODE_OAUTH_TOKEN`; codex: a rejected
    /// `CODEX_API_KEY` hides a good ChatGPT login; copilot: a rejected `COPILOT_GITHUB_TOKEN`
    /// hides a good token in its config file).
    Shadowed,
    /// A valid-looking key in the env file, but the vendor cannot be reached: the prompt hangs.
    VendorUnreachable,
    /// codex only: a key stored by `codex login --with-api-key` in `auth.json`.
    KeyFile,
    /// The login lives in the OS keychain (the stub `security` answers for it): claude's
    /// "Claude Code-credentials", copilot's "copilot-cli", codex's "Codex Auth" with
    /// `cli_auth_credentials_store = "keyring"` in config.toml (and no auth.json), gemini's
    /// "gemini-cli-oauth" with `GEMINI_FORCE_ENCRYPTED_FILE_STORAGE=true` in the env file,
    /// settings `oauth-personal` and no oauth_creds.json.
    KeychainLogin,
    /// As [`State::KeychainLogin`], but the keychain is locked (a key-authenticated SSH session).
    KeychainLocked,
    /// copilot only: no login of its own, only the GitHub CLI's (`~/.config/gh/hosts.yml`).
    GhLogin,
    /// claude only: `.credentials.json` blanked by a failed refresh.
    LoginBlanked,
    /// claude only: the access token expired and `refreshTokenExpiresAt` is past too.
    RefreshTokenExpired,
    /// gemini only: a valid oauth-personal login of an individual account, which Google refuses
    /// since 2026-06-18 (`IneligibleTierError`).
    IneligibleAccount,
    /// A key injected by a config file instead of the environment: claude's `settings.json`
    /// `env` block, gemini's `~/.gemini/.env`.
    SettingsKey,
    /// gemini only: the key in `~/.env`, the second `.env` file gemini looks for.
    DotenvHome,
    /// gemini only: a good key in `~/.env`, but `~/.gemini/.env` exists (without the key) and
    /// gemini loads only the first `.env` file it finds.
    DotenvIgnored,
    /// gemini only: `GEMINI_FORCE_ENCRYPTED_FILE_STORAGE=true` (env file) and no keychain: the
    /// `oauth-personal` login in the encrypted `~/.gemini/gemini-credentials.json`, no
    /// `oauth_creds.json`. (With a keychain: [`State::KeychainLogin`].)
    EncryptedFileLogin,
}

/// The four providers the stubs implement.
pub const PROVIDERS: [&str; 4] = ["gemini", "claude", "codex", "copilot"];

/// The stub CLIs (the repository's `docker/stubs`), from a directory every local user can read.
///
/// Members that run as other local users (login-shell tests) execute the stubs through links;
/// a checkout under `/root` (mode 0700, as on a fresh machine where root cloned the repository)
/// is not reachable for them. So the stubs are copied once into `$TMPDIR/fleetauth-stubs-<hash
/// of their contents>` (0755), shared by every test process and reused while the stubs are the
/// same; a new version of the stubs gets a new directory.
pub fn stubs_dir() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        use sha2::{Digest, Sha256};
        use std::os::unix::fs::PermissionsExt;
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/stubs");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&src)
            .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let mut hash = Sha256::new();
        for f in &files {
            hash.update(f.file_name().unwrap().as_encoded_bytes());
            hash.update([0]);
            hash.update(std::fs::read(f).unwrap());
            hash.update([0]);
        }
        let digest = hex::encode(hash.finalize());
        let dir = std::env::temp_dir().join(format!("fleetauth-stubs-{}", &digest[..16]));
        if dir.is_dir() {
            return dir;
        }
        // Copy into a private name, then rename: a concurrent test process either wins the
        // rename or finds the directory complete.
        let tmp = std::env::temp_dir().join(format!(
            "fleetauth-stubs-{}.{}",
            &digest[..16],
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).unwrap();
        for f in &files {
            let to = tmp.join(f.file_name().unwrap());
            std::fs::copy(f, &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            assert!(dir.is_dir(), "{} was not created", dir.display());
        }
        dir
    })
    .clone()
}
