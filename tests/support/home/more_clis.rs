//! Member layouts for the CLIs of providers/{opencode-*,cursor,droid,amp,agy,qwen}.toml, as their
//! stubs (docker/stubs, docs/stubs.md) read them. The states that have no meaning for a CLI panic
//! with the ones that do.

use std::path::Path;

use super::super::State;
use super::{Plan, fake, write, write_private};

/// The providers laid out here, in the order tests list them.
pub const PROVIDERS: [&str; 7] = [
    "opencode-anthropic",
    "opencode-openai",
    "cursor",
    "droid",
    "amp",
    "agy",
    "qwen",
];

type Secrets = Vec<(&'static str, String)>;

/// A fresh key in the env file under `var`; the vendor rejects it (RejectedKey) or cannot be
/// reached by `cli` (VendorUnreachable).
fn key_in_env_file(
    provider: &str,
    cli: &str,
    var: &'static str,
    state: State,
    plan: &mut Plan,
) -> Secrets {
    let key = fake::api_key(provider);
    plan.env(var, &key);
    match state {
        State::RejectedKey => plan.rejected.push(key.clone()),
        State::VendorUnreachable => plan.unreachable.push(cli.to_string()),
        _ => {}
    }
    vec![(var, key)]
}

fn senseless(provider: &str, state: State, valid: &str) -> ! {
    panic!("{state:?} makes no sense for {provider}; its states are {valid}")
}

/// opencode: `~/.local/share/opencode/auth.json`, a map by backend (`anthropic`, `openai`). One
/// opencode provider per member: both would write the same file.
pub(super) fn opencode(provider: &str, state: State, home: &Path, plan: &mut Plan) -> Secrets {
    let (backend, var) = match provider {
        "opencode-anthropic" => ("anthropic", "ANTHROPIC_API_KEY"),
        _ => ("openai", "OPENAI_API_KEY"),
    };
    let auth = home.join(".local/share/opencode/auth.json");
    // opencode writes JSON.stringify(…, null, 2).
    let api_entry = |key: &str| {
        write_private(
            &auth,
            &format!(
                "{{\n  \"{backend}\": {{\n    \"type\": \"api\",\n    \"key\": \"{key}\"\n  }}\n}}"
            ),
        )
    };
    let oauth = |valid_for_s: i64, with_refresh: bool| {
        let access = fake::opaque_token("oc-access-");
        let refresh = fake::opaque_token("oc-refresh-");
        let expires = fake::epoch_s(valid_for_s) * 1000;
        let refresh_value = if with_refresh { refresh.as_str() } else { "" };
        write_private(
            &auth,
            &format!(
                "{{\n  \"{backend}\": {{\n    \"type\": \"oauth\",\n    \"refresh\": \"{refresh_value}\",\n    \"access\": \"{access}\",\n    \"expires\": {expires}\n  }}\n}}"
            ),
        );
        let mut secrets = vec![("access", access)];
        if with_refresh {
            secrets.push(("refresh", refresh));
        }
        secrets
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file(provider, "opencode", var, state, plan)
        }
        State::KeyFile => {
            let key = fake::api_key(provider);
            api_entry(&key);
            vec![("key", key)]
        }
        State::OauthValid => oauth(6 * 3600, true),
        State::OauthExpiring => oauth(30 * 60, true),
        State::OauthRefreshable => oauth(-2 * 3600, true),
        State::OauthExpired => oauth(-2 * 3600, false),
        State::OauthMalformed => {
            write_private(&auth, "not json {");
            vec![]
        }
        // A stale key stored by `opencode auth login` wins over a good one in the env file.
        State::Shadowed => {
            let stale = fake::api_key(provider);
            api_entry(&stale);
            plan.rejected.push(stale.clone());
            let good = fake::api_key(provider);
            plan.env(var, &good);
            vec![("key", stale), (var, good)]
        }
        State::KeychainLogin
        | State::KeychainLocked
        | State::GhLogin
        | State::LoginBlanked
        | State::RefreshTokenExpired
        | State::IneligibleAccount
        | State::SettingsKey
        | State::DotenvHome
        | State::DotenvIgnored
        | State::EncryptedFileLogin => panic!("{provider} has no {state:?} state"),
    }
}

/// Cursor: `CURSOR_API_KEY`, else `~/.config/cursor/auth.json` {accessToken, refreshToken}.
pub(super) fn cursor(state: State, home: &Path, plan: &mut Plan) -> Secrets {
    let auth = home.join(".config/cursor/auth.json");
    let login = || {
        let access = fake::opaque_token("cursor-access-");
        let refresh = fake::opaque_token("cursor-refresh-");
        write_private(
            &auth,
            &format!("{{\n  \"accessToken\": \"{access}\",\n  \"refreshToken\": \"{refresh}\"\n}}"),
        );
        vec![("accessToken", access), ("refreshToken", refresh)]
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("cursor", "cursor-agent", "CURSOR_API_KEY", state, plan)
        }
        State::OauthValid => login(),
        State::OauthMalformed => {
            write_private(&auth, "not json {");
            vec![]
        }
        // A rejected CURSOR_API_KEY hides a good login.
        State::Shadowed => {
            let mut secrets = login();
            let stale = fake::cursor_api_key();
            plan.env("CURSOR_API_KEY", &stale);
            plan.rejected.push(stale.clone());
            secrets.push(("CURSOR_API_KEY", stale));
            secrets
        }
        other => senseless(
            "cursor",
            other,
            "NotInstalled, NoAuth, EnvKey, RejectedKey, VendorUnreachable, OauthValid, OauthMalformed, Shadowed",
        ),
    }
}

/// Factory droid: `FACTORY_API_KEY`, else the encrypted `~/.factory/auth.v2.file` + `.key`.
pub(super) fn droid(state: State, home: &Path, plan: &mut Plan) -> Secrets {
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("droid", "droid", "FACTORY_API_KEY", state, plan)
        }
        State::OauthValid => {
            let sealed = fake::alnum(96);
            let key = fake::alnum(44);
            write_private(&home.join(".factory/auth.v2.file"), &sealed);
            write_private(&home.join(".factory/auth.v2.key"), &key);
            vec![("auth.v2.file", sealed), ("auth.v2.key", key)]
        }
        other => senseless(
            "droid",
            other,
            "NotInstalled, NoAuth, EnvKey, RejectedKey, VendorUnreachable, OauthValid (the encrypted login)",
        ),
    }
}

/// Amp: `AMP_API_KEY` wins, else `~/.local/share/amp/secrets.json`.
pub(super) fn amp(state: State, home: &Path, plan: &mut Plan) -> Secrets {
    let secrets_json = home.join(".local/share/amp/secrets.json");
    let stored = || {
        let key = fake::amp_api_key();
        write_private(
            &secrets_json,
            &format!("{{\n  \"apiKey@https://ampcode.com/\": \"{key}\"\n}}"),
        );
        ("apiKey@https://ampcode.com/", key)
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("amp", "amp", "AMP_API_KEY", state, plan)
        }
        State::KeyFile => vec![stored()],
        State::OauthMalformed => {
            write_private(&secrets_json, "not json {");
            vec![]
        }
        // A rejected AMP_API_KEY wins over a good stored login.
        State::Shadowed => {
            let good = stored();
            let stale = fake::amp_api_key();
            plan.env("AMP_API_KEY", &stale);
            plan.rejected.push(stale.clone());
            vec![good, ("AMP_API_KEY", stale)]
        }
        other => senseless(
            "amp",
            other,
            "NotInstalled, NoAuth, EnvKey, RejectedKey, VendorUnreachable, KeyFile, OauthMalformed, Shadowed",
        ),
    }
}

/// Antigravity: no key at all; the login file `~/.gemini/antigravity-cli/antigravity-oauth-token`
/// (the keyring is not simulated).
pub(super) fn agy(state: State, home: &Path, _plan: &mut Plan) -> Secrets {
    let file = home.join(".gemini/antigravity-cli/antigravity-oauth-token");
    let login = |valid_for_s: i64, with_refresh: bool| {
        let access = fake::google_access_token();
        let refresh = fake::google_refresh_token();
        let refresh_line = if with_refresh {
            format!(",\"refresh_token\":\"{refresh}\"")
        } else {
            String::new()
        };
        // Go's oauth2.Token as encoding/json writes it: compact, RFC 3339 expiry.
        write_private(
            &file,
            &format!(
                "{{\"access_token\":\"{access}\",\"token_type\":\"Bearer\"{refresh_line},\"expiry\":\"{}\"}}",
                fake::rfc3339(valid_for_s)
            ),
        );
        let mut secrets = vec![("access_token", access)];
        if with_refresh {
            secrets.push(("refresh_token", refresh));
        }
        secrets
    };
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::OauthValid => login(6 * 3600, true),
        State::OauthExpiring => login(30 * 60, true),
        State::OauthRefreshable => login(-2 * 3600, true),
        State::OauthExpired => login(-2 * 3600, false),
        State::OauthMalformed => {
            write(&file, "not json {");
            vec![]
        }
        other => senseless(
            "agy",
            other,
            "NotInstalled, NoAuth and the Oauth* states: agy honours no key",
        ),
    }
}

/// Qwen Code: `OPENAI_API_KEY` only. OauthValid is what the ended free tier left behind: a
/// `qwen-oauth` selection and a fresh-looking `~/.qwen/oauth_creds.json`, which no longer work.
pub(super) fn qwen(state: State, home: &Path, plan: &mut Plan) -> Secrets {
    match state {
        State::NotInstalled | State::NoAuth => vec![],
        State::EnvKey | State::RejectedKey | State::VendorUnreachable => {
            key_in_env_file("qwen", "qwen", "OPENAI_API_KEY", state, plan)
        }
        State::OauthValid => {
            let access = fake::opaque_token("qwen-access-");
            let refresh = fake::opaque_token("qwen-refresh-");
            write(
                &home.join(".qwen/settings.json"),
                "{\n  \"security\": {\n    \"auth\": {\n      \"selectedType\": \"qwen-oauth\"\n    }\n  }\n}\n",
            );
            write_private(
                &home.join(".qwen/oauth_creds.json"),
                &format!(
                    "{{\n  \"access_token\": \"{access}\",\n  \"refresh_token\": \"{refresh}\",\n  \"expiry_date\": {}\n}}",
                    fake::epoch_s(6 * 3600) * 1000
                ),
            );
            vec![("access_token", access), ("refresh_token", refresh)]
        }
        other => senseless(
            "qwen",
            other,
            "NotInstalled, NoAuth, EnvKey, RejectedKey, VendorUnreachable, OauthValid (the ended OAuth tier)",
        ),
    }
}
