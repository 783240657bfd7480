use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::provider::Registry;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn registry() -> Registry {
    Registry::builtin().unwrap()
}

#[derive(Default)]
struct Member {
    obs: ProviderObservation,
    env: Vec<String>,
}

impl Member {
    fn file(mut self, path: &str, text: &str) -> Self {
        self.obs.files.insert(
            path.into(),
            FileObservation::Present(text.as_bytes().to_vec().into()),
        );
        self
    }
    fn ambient(mut self, var: &str) -> Self {
        self.obs.ambient.push(var.into());
        self
    }
    fn env_file(mut self, var: &str) -> Self {
        self.env.push(var.into());
        self
    }
    fn check(&self, reg: &Registry, provider: &str, kind: &str) -> Shadowing {
        let p = reg.get(provider).unwrap();
        let key = p.push_key(kind).unwrap();
        super::check(
            p,
            key,
            &self.obs,
            &EnvFileObservation::Present(self.env.clone()),
            "~/.config/fleetauth/env",
            now(),
        )
    }
}

const OAUTH_PERSONAL: &str = "{\n  \"ui\": {\"theme\": \"dark\"},\n  \"security\": {\"auth\": {\"selectedType\": \"oauth-personal\"}}\n}\n";

#[test]
fn nothing_in_the_way_is_clear() {
    let reg = registry();
    assert_eq!(
        Member::default().check(&reg, "gemini", "api_key"),
        Shadowing::Clear
    );
    // The env file is sourced after the member's own environment: a stale ambient copy of the
    // very variable fleetauth installs does not win.
    let m = Member::default().ambient("GEMINI_API_KEY");
    assert_eq!(m.check(&reg, "gemini", "api_key"), Shadowing::Clear);
    // A selection of the key's own type is no obstacle.
    let m = Member::default().file(
        ".gemini/settings.json",
        r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
    );
    assert_eq!(m.check(&reg, "gemini", "api_key"), Shadowing::Clear);
}

#[test]
fn gemini_user_selection_is_fixable_by_setting_it() {
    let reg = registry();
    let m = Member::default().file(".gemini/settings.json", OAUTH_PERSONAL);
    let s = m.check(&reg, "gemini", "api_key");
    let Shadowing::Fixable(obstacles) = &s else {
        panic!("{s:?}")
    };
    assert_eq!(
        obstacles[0].what,
        "~/.gemini/settings.json security.auth.selectedType=oauth-personal"
    );
    assert_eq!(
        s.fixes(),
        vec![&Fix::SetSetting {
            file: ".gemini/settings.json".into(),
            pointer: "/security/auth/selectedType".into(),
            value: "gemini-api-key".into(),
        }]
    );
    let d = s.blocked_detail("GEMINI_API_KEY", false).unwrap();
    assert!(
        d.starts_with(
            "blocked: GEMINI_API_KEY would be shadowed by ~/.gemini/settings.json security.auth.selectedType=oauth-personal; \
             set security.auth.selectedType to \"gemini-api-key\" in ~/.gemini/settings.json"
        ),
        "{d}"
    );
    assert!(d.contains("--fix-shadowing"), "{d}");
    assert_eq!(s.blocked_detail("GEMINI_API_KEY", true), None);
}

#[test]
fn system_settings_are_never_fixed() {
    let reg = registry();
    let m = Member::default()
        .file(".gemini/settings.json", OAUTH_PERSONAL)
        .file(
            "/etc/gemini-cli/settings.json",
            r#"{"security":{"auth":{"enforcedType":"oauth-personal"}}}"#,
        );
    let s = m.check(&reg, "gemini", "api_key");
    let Shadowing::Blocked { by, fixable } = &s else {
        panic!("{s:?}")
    };
    assert!(
        fixable.is_empty(),
        "the system file comes first: {fixable:?}"
    );
    assert_eq!(
        by.what,
        "/etc/gemini-cli/settings.json security.auth.enforcedType=oauth-personal"
    );
    assert!(by.remedy.contains("administrator"), "{}", by.remedy);
    let d = s.blocked_detail("GEMINI_API_KEY", true).unwrap();
    assert!(d.contains("not even with --fix-shadowing"), "{d}");
}

#[test]
fn a_backend_variable_in_the_members_environment_blocks_unless_a_setting_decides() {
    let reg = registry();
    let m = Member::default().ambient("GOOGLE_GENAI_USE_VERTEXAI");
    let s = m.check(&reg, "gemini", "api_key");
    let Shadowing::Blocked { by, fixable } = &s else {
        panic!("{s:?}")
    };
    assert!(fixable.is_empty());
    assert_eq!(by.what, "GOOGLE_GENAI_USE_VERTEXAI (environment)");
    assert!(by.remedy.contains("own environment"), "{}", by.remedy);
    // A settings selection wins over the environment: set to gemini-api-key, the key wins.
    let m = m.file(".gemini/settings.json", OAUTH_PERSONAL);
    assert_eq!(m.check(&reg, "gemini", "api_key").fixes().len(), 1);
}

#[test]
fn codex_stale_variable_outside_the_env_file_blocks_the_login_command_key() {
    let reg = registry();
    let m = Member::default().ambient("CODEX_API_KEY");
    let s = m.check(&reg, "codex", "api_key");
    let Shadowing::Blocked { by, .. } = &s else {
        panic!("{s:?}")
    };
    assert_eq!(by.what, "CODEX_API_KEY (environment)");
    assert!(by.remedy.contains("~/.profile"), "{}", by.remedy);
    assert!(by.fix.is_none());
    // Where the probe found files assigning it, the remedy names them.
    let mut m = Member::default().ambient("CODEX_API_KEY");
    m.obs.ambient_in.insert(
        "CODEX_API_KEY".into(),
        vec!["/home/ops/.bashrc".into(), "/etc/environment".into()],
    );
    let Shadowing::Blocked { by, .. } = m.check(&reg, "codex", "api_key") else {
        panic!()
    };
    assert!(
        by.remedy.ends_with(
            "outside fleetauth's env file: remove it from /home/ops/.bashrc, /etc/environment"
        ),
        "{}",
        by.remedy
    );
    // A codex key in fleetauth's own env file is removed, whichever way the key is installed.
    let m = Member::default().env_file("CODEX_ACCESS_TOKEN");
    assert_eq!(
        m.check(&reg, "codex", "api_key").fixes(),
        vec![&Fix::DropEnvVar("CODEX_ACCESS_TOKEN".into())]
    );
    let m = Member::default().env_file("CODEX_API_KEY");
    let s = m.check(&reg, "codex", "access_token");
    assert_eq!(s.fixes(), vec![&Fix::DropEnvVar("CODEX_API_KEY".into())]);
    // Dropped from the env file, a copy in the member's own environment still wins.
    let m = m.ambient("CODEX_API_KEY");
    let s = m.check(&reg, "codex", "access_token");
    let Shadowing::Blocked { fixable, by } = &s else {
        panic!("{s:?}")
    };
    assert_eq!(
        (fixable.len(), by.what.as_str()),
        (1, "CODEX_API_KEY (environment)")
    );
}

#[test]
fn codex_keyring_store_blocks_a_key_stored_in_auth_json() {
    let reg = registry();
    let m = Member::default().file("config.toml", "cli_auth_credentials_store = \"keyring\"\n");
    let s = m.check(&reg, "codex", "api_key");
    let Shadowing::Blocked { by, .. } = &s else {
        panic!("{s:?}")
    };
    assert_eq!(
        by.what,
        "~/.codex/config.toml cli_auth_credentials_store=keyring"
    );
    // The personal access token is read from the environment, above the store.
    assert_eq!(m.check(&reg, "codex", "access_token"), Shadowing::Clear);
}

#[test]
fn claude_stale_api_key_in_the_env_file_is_dropped_for_a_setup_token() {
    let reg = registry();
    let m = Member::default().env_file("ANTHROPIC_API_KEY");
    let s = m.check(&reg, "claude", "oauth_token");
    assert_eq!(
        s.fixes(),
        vec![&Fix::DropEnvVar("ANTHROPIC_API_KEY".into())]
    );
    let d = s.blocked_detail("CLAUDE_CODE_OAUTH_TOKEN", false).unwrap();
    assert!(
        d.contains(
            "ANTHROPIC_API_KEY (env file); remove ANTHROPIC_API_KEY from ~/.config/fleetauth/env"
        ),
        "{d}"
    );
    // An API key replaces the stale one instead.
    assert_eq!(m.check(&reg, "claude", "api_key"), Shadowing::Clear);
}

#[test]
fn claude_api_key_helper_blocks_a_setup_token_but_not_an_api_key() {
    let reg = registry();
    let m = Member::default().file(
        "settings.json",
        r#"{"apiKeyHelper": "/usr/local/bin/get-key"}"#,
    );
    let s = m.check(&reg, "claude", "oauth_token");
    let Shadowing::Blocked { by, .. } = &s else {
        panic!("{s:?}")
    };
    assert_eq!(by.what, "~/.claude/settings.json apiKeyHelper");
    assert!(
        by.remedy
            .contains("remove apiKeyHelper from ~/.claude/settings.json"),
        "{}",
        by.remedy
    );
    assert_eq!(m.check(&reg, "claude", "api_key"), Shadowing::Clear);
}

#[test]
fn setting_a_json_string_keeps_every_other_byte() {
    let out = set_json_string(
        OAUTH_PERSONAL.as_bytes(),
        "/security/auth/selectedType",
        "gemini-api-key",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        OAUTH_PERSONAL.replace("oauth-personal", "gemini-api-key")
    );
    // The same text elsewhere is left alone: only the occurrence at the pointer changes.
    let doc =
        r#"{"note": "oauth-personal", "security": {"auth": {"selectedType": "oauth-personal"}}}"#;
    let out = set_json_string(
        doc.as_bytes(),
        "/security/auth/selectedType",
        "gemini-api-key",
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["note"], "oauth-personal");
    assert_eq!(v["security"]["auth"]["selectedType"], "gemini-api-key");
    assert!(set_json_string(b"not json", "/a", "b").is_none());
    assert!(set_json_string(br#"{"a": 1}"#, "/a", "b").is_none());
}
