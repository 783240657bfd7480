//! The built-in CLIs beyond the first four — providers/{opencode-anthropic,opencode-openai,cursor,
//! droid,amp,agy,qwen}.toml — against real sshd members running their stubs (docker/stubs):
//! `providers list` shows them, `sweep` and `sweep --deep` judge each in its states, `provision`
//! pushes a key where one can be pushed and never for agy, which honours no key.

mod support;

use support::{Lab, Member, State, fake};

#[test]
fn providers_list_shows_the_new_clis() {
    let lab = Lab::new();
    let out = lab.fleetauth(&["providers", "list"]);
    out.assert_exit(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let line_of = |name: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .unwrap_or_else(|| panic!("no row for {name}\n{out}"))
            .to_string()
    };
    for (name, binary, install) in [
        (
            "opencode-anthropic",
            "opencode",
            "env file: ANTHROPIC_API_KEY",
        ),
        ("opencode-openai", "opencode", "env file: OPENAI_API_KEY"),
        ("cursor", "cursor-agent", "env file: CURSOR_API_KEY"),
        ("droid", "droid", "env file: FACTORY_API_KEY"),
        ("amp", "amp", "env file: AMP_API_KEY"),
        ("agy", "agy", "nothing to push"),
        ("qwen", "qwen", "env file: OPENAI_API_KEY"),
        ("qwen", "qwen", "QWEN_OPENAI_API_KEY"),
    ] {
        let line = line_of(name);
        assert!(line.contains(binary), "{name}: {line}");
        assert!(line.contains(install), "{name}: {line}");
        assert!(line.contains("built-in"), "{name}: {line}");
    }
    // The first four are still there.
    for name in ["claude", "codex", "copilot", "gemini"] {
        line_of(name);
    }
}

/// (provider, state, member's extra env line, quick state, deep state, quick source).
type Case = (
    &'static str,
    State,
    Option<&'static str>,
    &'static str,
    &'static str,
    Option<&'static str>,
);

fn cases() -> Vec<Case> {
    use State::*;
    vec![
        // opencode: auth.json (a map by backend) wins over the backend's variable.
        (
            "opencode-anthropic",
            NotInstalled,
            None,
            "not_installed",
            "not_installed",
            None,
        ),
        (
            "opencode-anthropic",
            NoAuth,
            None,
            "needs_auth",
            "needs_auth",
            None,
        ),
        (
            "opencode-anthropic",
            EnvKey,
            None,
            "ready",
            "ready",
            Some("env_file"),
        ),
        (
            "opencode-anthropic",
            KeyFile,
            None,
            "ready",
            "ready",
            Some("key_file"),
        ),
        (
            "opencode-anthropic",
            OauthValid,
            None,
            "ready",
            "ready",
            Some("oauth_file"),
        ),
        (
            "opencode-anthropic",
            OauthExpired,
            None,
            "needs_auth",
            "needs_auth",
            None,
        ),
        (
            "opencode-anthropic",
            RejectedKey,
            None,
            "ready",
            "needs_auth",
            Some("env_file"),
        ),
        (
            "opencode-anthropic",
            Shadowed,
            None,
            "ready",
            "needs_auth",
            Some("key_file"),
        ),
        (
            "opencode-anthropic",
            VendorUnreachable,
            None,
            "ready",
            "error",
            Some("env_file"),
        ),
        (
            "opencode-openai",
            NoAuth,
            None,
            "needs_auth",
            "needs_auth",
            None,
        ),
        (
            "opencode-openai",
            EnvKey,
            None,
            "ready",
            "ready",
            Some("env_file"),
        ),
        (
            "opencode-openai",
            KeyFile,
            None,
            "ready",
            "ready",
            Some("key_file"),
        ),
        (
            "opencode-openai",
            OauthRefreshable,
            None,
            "ready",
            "ready",
            Some("oauth_file"),
        ),
        // Cursor: CURSOR_API_KEY, else ~/.config/cursor/auth.json.
        (
            "cursor",
            NotInstalled,
            None,
            "not_installed",
            "not_installed",
            None,
        ),
        ("cursor", NoAuth, None, "needs_auth", "needs_auth", None),
        ("cursor", EnvKey, None, "ready", "ready", Some("env_file")),
        (
            "cursor",
            OauthValid,
            None,
            "ready",
            "ready",
            Some("oauth_file"),
        ),
        (
            "cursor",
            OauthMalformed,
            None,
            "needs_auth",
            "needs_auth",
            None,
        ),
        (
            "cursor",
            RejectedKey,
            None,
            "ready",
            "needs_auth",
            Some("env_file"),
        ),
        (
            "cursor",
            Shadowed,
            None,
            "ready",
            "needs_auth",
            Some("env_file"),
        ),
        // droid: the encrypted login counts by its presence; --deep proves it.
        (
            "droid",
            NotInstalled,
            None,
            "not_installed",
            "not_installed",
            None,
        ),
        ("droid", NoAuth, None, "needs_auth", "needs_auth", None),
        ("droid", EnvKey, None, "ready", "ready", Some("env_file")),
        (
            "droid",
            RejectedKey,
            None,
            "ready",
            "needs_auth",
            Some("env_file"),
        ),
        (
            "droid",
            OauthValid,
            None,
            "ready",
            "ready",
            Some("key_file"),
        ),
        (
            "droid",
            VendorUnreachable,
            None,
            "ready",
            "error",
            Some("env_file"),
        ),
        // Amp: AMP_API_KEY wins over secrets.json.
        (
            "amp",
            NotInstalled,
            None,
            "not_installed",
            "not_installed",
            None,
        ),
        ("amp", NoAuth, None, "needs_auth", "needs_auth", None),
        ("amp", EnvKey, None, "ready", "ready", Some("env_file")),
        ("amp", KeyFile, None, "ready", "ready", Some("key_file")),
        (
            "amp",
            RejectedKey,
            None,
            "ready",
            "needs_auth",
            Some("env_file"),
        ),
        (
            "amp",
            Shadowed,
            None,
            "ready",
            "needs_auth",
            Some("env_file"),
        ),
        // agy: the login file only; a GEMINI_API_KEY beside it changes nothing.
        (
            "agy",
            NotInstalled,
            None,
            "not_installed",
            "not_installed",
            None,
        ),
        ("agy", NoAuth, None, "needs_auth", "needs_auth", None),
        (
            "agy",
            NoAuth,
            Some("export GEMINI_API_KEY='AIzaFAKEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"),
            "needs_auth",
            "needs_auth",
            None,
        ),
        (
            "agy",
            OauthValid,
            None,
            "ready",
            "ready",
            Some("oauth_file"),
        ),
        (
            "agy",
            OauthRefreshable,
            None,
            "ready",
            "ready",
            Some("oauth_file"),
        ),
        ("agy", OauthExpired, None, "needs_auth", "needs_auth", None),
        // qwen: keys only; the OAuth login the ended free tier left behind proves nothing.
        (
            "qwen",
            NotInstalled,
            None,
            "not_installed",
            "not_installed",
            None,
        ),
        ("qwen", NoAuth, None, "needs_auth", "needs_auth", None),
        ("qwen", EnvKey, None, "ready", "ready", Some("env_file")),
        (
            "qwen",
            RejectedKey,
            None,
            "ready",
            "needs_auth",
            Some("env_file"),
        ),
        ("qwen", OauthValid, None, "needs_auth", "needs_auth", None),
    ]
}

fn state_name(s: State) -> String {
    format!("{s:?}").to_lowercase()
}

#[test]
fn every_new_cli_in_its_states_with_and_without_deep() {
    let lab = Lab::new();
    let mut members: Vec<(String, Member, Case)> = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let (provider, state, env_line, ..) = case;
        let name = format!("{provider}-{}-{i}", state_name(state));
        let mut b = lab.member(&name).provider(provider, state);
        if let Some(line) = env_line {
            b = b.env_line(line);
        }
        members.push((name, b.start(), case));
    }
    let inv = lab.inventory("probe_timeout = \"3s\"\ncommand_timeout = \"20s\"");
    let inv = inv.to_str().unwrap();
    let quick = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    quick.assert_exit(1);
    let deep = lab.fleetauth(&["sweep", "-i", inv, "--format", "json", "--deep"]);
    deep.assert_exit(1);

    let mut wrong = Vec::new();
    for (name, member, (provider, _, _, want_quick, want_deep, want_source)) in &members {
        let (q, d) = (quick.row(name, provider), deep.row(name, provider));
        if q["state"] != *want_quick {
            wrong.push(format!(
                "{name}: sweep gave {} ({}), want {want_quick}",
                q["state"], q["detail"]
            ));
        }
        if d["state"] != *want_deep {
            wrong.push(format!(
                "{name}: sweep --deep gave {} ({}), want {want_deep}",
                d["state"], d["detail"]
            ));
        }
        if let Some(src) = want_source
            && q["source"] != *src
        {
            wrong.push(format!(
                "{name}: sweep source {} ({}), want {src}",
                q["source"], q["detail"]
            ));
        }
        if *want_deep == "ready" && d["source"] != "probe" {
            wrong.push(format!(
                "{name}: sweep --deep source {}, want probe",
                d["source"]
            ));
        }
        for secret in member.secrets() {
            quick.assert_no_secret(&secret);
            deep.assert_no_secret(&secret);
        }
    }
    assert!(wrong.is_empty(), "wrong rows:\n{}", wrong.join("\n"));

    let detail = |out: &support::Output, member: &str, provider: &str| {
        out.row(member, provider)["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let name_of = |provider: &str, state: State| {
        members
            .iter()
            .find(|(_, _, c)| c.0 == provider && c.1 == state)
            .map(|(n, ..)| n.clone())
            .unwrap()
    };
    // Versions as each CLI prints them: Cursor's is a date.
    for (provider, state, version) in [
        ("cursor", State::EnvKey, "2026.09.02-c22c1a3"),
        ("opencode-anthropic", State::EnvKey, "1.14.2"),
        ("droid", State::EnvKey, "0.22.3"),
        ("amp", State::EnvKey, "0.0.1764000000-g1a2b3c"),
        ("agy", State::OauthValid, "1.0.2"),
        ("qwen", State::EnvKey, "0.2.1"),
    ] {
        let row = quick.row(&name_of(provider, state), provider);
        assert_eq!(row["version"], version, "{provider}: {row}");
    }
    // Hangs end at the probe deadline, with a reason.
    assert!(
        detail(&deep, &name_of("droid", State::VendorUnreachable), "droid").contains("timed out")
    );
    // The shadowing credential is named.
    for p in ["opencode-anthropic", "amp", "cursor"] {
        let d = detail(&quick, &name_of(p, State::Shadowed), p);
        assert!(d.contains("shadows"), "{p}: {d}");
    }
    // An expired login without a refresh token is said so, for opencode and agy alike.
    for p in ["opencode-anthropic", "agy"] {
        let d = detail(&quick, &name_of(p, State::OauthExpired), p);
        assert!(
            d.contains("expired") && d.contains("no refresh token"),
            "{p}: {d}"
        );
    }
    // agy: the remedy is a login on the member, never a key.
    let d = detail(&deep, &name_of("agy", State::NoAuth), "agy");
    assert!(d.contains("not logged in to Antigravity"), "{d}");
    // qwen: the ended OAuth tier is named.
    let d = detail(&deep, &name_of("qwen", State::OauthValid), "qwen");
    assert!(d.contains("2026-04-15"), "{d}");
}

#[test]
fn provision_pushes_a_key_for_each_new_cli_but_never_for_agy() {
    let lab = Lab::new();
    let keys = [
        (
            "opencode-anthropic",
            "ANTHROPIC_API_KEY",
            fake::anthropic_api_key(),
        ),
        ("opencode-openai", "OPENAI_API_KEY", fake::openai_key()),
        ("cursor", "CURSOR_API_KEY", fake::cursor_api_key()),
        ("droid", "FACTORY_API_KEY", fake::factory_api_key()),
        ("amp", "AMP_API_KEY", fake::amp_api_key()),
    ];
    let mut members = Vec::new();
    for (provider, _, _) in &keys {
        members.push(
            lab.member(&format!("push-{provider}"))
                .provider(provider, State::NoAuth)
                .start(),
        );
    }
    // qwen's key is for its own OpenAI-compatible endpoint: it comes from QWEN_OPENAI_API_KEY,
    // never from the operator's OPENAI_API_KEY (OpenAI's key, for opencode-openai and codex).
    let qwen = lab
        .member("push-qwen")
        .provider("qwen", State::NoAuth)
        .start();
    let agy = lab
        .member("no-push-agy")
        .provider("agy", State::NoAuth)
        .env_line("FOO='keep me'")
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");

    let mut env: Vec<(&str, &str)> = keys
        .iter()
        .map(|(_, var, key)| (*var, key.as_str()))
        .collect();
    // agy honours no key (not even GEMINI_API_KEY): with one at hand, nothing is pushed to it.
    let gemini_key = fake::gemini_key();
    env.push(("GEMINI_API_KEY", &gemini_key));
    let qwen_key = fake::openai_key();
    env.push(("QWEN_OPENAI_API_KEY", &qwen_key));
    let out = lab.provision_json(&inv, &env, &[]);
    out.assert_exit(1); // agy stays needs_auth

    for ((provider, var, key), member) in keys.iter().zip(&members) {
        let row = out.row(member.name(), provider);
        assert_eq!(
            (
                row["state"].as_str(),
                row["action"].as_str(),
                row["source"].as_str()
            ),
            (Some("ready"), Some("pushed"), Some("pushed_key")),
            "{provider}: {row}"
        );
        let env_file = member.env_file_contents();
        assert!(
            env_file.contains(&format!("export {var}='{key}'")),
            "{provider}: key line missing"
        );
        out.assert_no_secret(key);
    }
    let row = out.row("push-qwen", "qwen");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("ready"), Some("pushed")),
        "{row}"
    );
    let qwen_env = qwen.env_file_contents();
    assert!(
        qwen_env.contains(&format!("export OPENAI_API_KEY='{qwen_key}'")),
        "qwen's own key is installed as OPENAI_API_KEY"
    );
    assert!(
        !qwen_env.contains(&keys[1].2),
        "the operator's OpenAI key must not reach a qwen member"
    );

    let row = out.row("no-push-agy", "agy");
    assert_eq!(row["state"], "needs_auth", "{row}");
    assert_ne!(row["action"], "pushed", "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("cannot push an agy credential"),
        "{row}"
    );

    // Without any key at hand: nothing pushed either, and the row says what to do.
    let out = lab.provision_json(&inv, &[], &[]);
    let row = out.row("no-push-agy", "agy");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("needs_auth"), Some("none")),
        "{row}"
    );
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("nothing to push for agy: log in with its CLI on the member"),
        "{row}"
    );
    assert_eq!(
        agy.env_file_contents(),
        "FOO='keep me'\n",
        "agy's env file must not change"
    );
    assert!(
        !agy.commands_log()
            .iter()
            .any(|c| c.contains("GEMINI_API_KEY")),
        "a push was attempted on the agy member"
    );
}

#[test]
fn an_unreachable_vendor_makes_every_new_cli_hang_until_the_probe_deadline() {
    let lab = Lab::new();
    lab.member("all")
        .provider("opencode-openai", State::KeyFile)
        .provider("cursor", State::EnvKey)
        .provider("droid", State::EnvKey)
        .provider("amp", State::EnvKey)
        .provider("agy", State::OauthValid)
        .provider("qwen", State::EnvKey)
        .vendor_unreachable()
        .start();
    let inv = lab.inventory("probe_timeout = \"2s\"\ncommand_timeout = \"30s\"");
    let out = lab.fleetauth(&[
        "sweep",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "json",
        "--deep",
    ]);
    out.assert_exit(1);
    for p in ["opencode-openai", "cursor", "droid", "amp", "agy", "qwen"] {
        let row = out.row("all", p);
        assert_eq!(row["state"], "error", "{p}: {row}");
        assert!(
            row["detail"].as_str().unwrap().contains("timed out"),
            "{p}: {row}"
        );
    }
}

#[test]
fn cursor_without_trust_stops_at_workspace_trust_and_the_definition_passes_it() {
    let lab = Lab::new();
    let m = lab
        .member("cur")
        .provider("cursor", State::OauthValid)
        .start();
    let out = lab.ssh(
        &m,
        "cursor-agent -p --output-format json 'Reply with OK' </dev/null",
    );
    assert_eq!(out.code, Some(1), "{out}");
    out.assert_stderr_contains("Workspace Trust Required");
    let out = lab.ssh(
        &m,
        "cursor-agent -p --trust --output-format json 'Reply with OK' </dev/null",
    );
    assert_eq!(out.code, Some(0), "{out}");
    out.assert_stdout_contains("\"is_error\":false");
}
