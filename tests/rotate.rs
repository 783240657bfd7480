//! Issue 12, items 2 and 3 against real sshd members: `provision --rotate` (a working key in the
//! env file replaced by the one collected now, verified, restored on failure, audited with both
//! fingerprints), the `--provider` filter, and `--valid-for` (a login or token that lapses within
//! the window is not ready).

mod support;

use std::fs;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{Lab, Member, State, fake};

/// `sha256:` + the first 12 hex digits, computed here independently of fleetauth.
fn fingerprint(secret: &str) -> String {
    let hex: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{}", &hex[..12])
}

fn audit(lab: &Lab) -> Vec<Value> {
    let text = fs::read_to_string(lab.fleetauth_home().join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

fn detail(row: &Value) -> &str {
    row["detail"].as_str().unwrap_or_default()
}

#[test]
fn rotate_replaces_a_working_key_on_two_members_and_audits_both_fingerprints() {
    let lab = Lab::new();
    let a = lab
        .member("a")
        .provider("gemini", State::EnvKey)
        .env_line("KEEP='this line'")
        .start();
    let b = lab.member("b").provider("gemini", State::EnvKey).start();
    lab.member("own")
        .provider("gemini", State::OauthValid)
        .start();
    let inv = lab.inventory("");
    let (old_a, old_b) = (
        a.secret("gemini", "GEMINI_API_KEY"),
        b.secret("gemini", "GEMINI_API_KEY"),
    );
    let new = fake::gemini_key();
    lab.store_key("gemini", &new);

    // Without --rotate a working key is left alone.
    let plain = lab.provision_json(&inv, &[], &[]);
    plain.assert_exit(0);
    assert_eq!(plain.row("a", "gemini")["action"], "none");

    // --check --rotate predicts the push and writes nothing.
    let before = (a.env_file_contents(), b.env_file_contents());
    let check = lab.provision_json(&inv, &[], &["--check", "--rotate"]);
    for m in ["a", "b"] {
        assert_eq!(check.row(m, "gemini")["action"], "would_push", "{check}");
    }
    assert_eq!((a.env_file_contents(), b.env_file_contents()), before);
    check.assert_no_secret(&new).assert_no_secret(&old_a);

    let out = lab.provision_json(&inv, &[], &["--rotate"]);
    out.assert_exit(0);
    for (m, member, old) in [("a", &a, &old_a), ("b", &b, &old_b)] {
        let row = out.row(m, "gemini");
        assert_eq!(
            (row["state"].as_str(), row["action"].as_str()),
            (Some("ready"), Some("pushed")),
            "{out}"
        );
        assert!(
            detail(&row).contains(&format!("rotated: replaced the key {}", fingerprint(old))),
            "{row}"
        );
        let env = member.env_file_contents();
        assert!(
            env.contains(&new) && !env.contains(old.as_str()),
            "{m}: {env}"
        );
        out.assert_no_secret(old);
    }
    assert!(a.env_file_contents().contains("KEEP='this line'"));
    out.assert_no_secret(&new);
    // A member whose working credential is its own login is not fleetauth's to rotate.
    let own = out.row("own", "gemini");
    assert_eq!(own["action"], "none");
    assert!(
        detail(&own)
            .contains("--rotate: left alone: the working credential is the member's own login"),
        "{own}"
    );

    // The audit log: one line per member, old and new fingerprints, never a key.
    let lines = audit(&lab);
    for (m, old) in [("a", &old_a), ("b", &old_b)] {
        let line = lines
            .iter()
            .find(|l| l["member"] == m && l["action"] == "pushed")
            .unwrap_or_else(|| panic!("no pushed line for {m}: {lines:?}"));
        assert_eq!(line["fingerprint"], fingerprint(&new));
        assert_eq!(line["previous_fingerprint"], fingerprint(old));
    }
    let raw = fs::read_to_string(lab.fleetauth_home().join("audit.jsonl")).unwrap();
    for secret in [&new, &old_a, &old_b] {
        assert!(!raw.contains(secret.as_str()));
    }

    // Rotating again to the same key: the fingerprints match, nothing is written.
    let again_before = a.env_file_contents();
    let again = lab.provision_json(&inv, &[], &["--rotate"]);
    again.assert_exit(0);
    let row = again.row("a", "gemini");
    assert_eq!(row["action"], "unchanged", "{again}");
    assert!(detail(&row).contains("already the key in use"), "{row}");
    assert_eq!(a.env_file_contents(), again_before);
    let check = lab.provision_json(&inv, &[], &["--check", "--rotate"]);
    assert_eq!(check.row("b", "gemini")["action"], "unchanged");
}

#[test]
fn rotate_to_a_key_the_vendor_rejects_restores_the_old_file_byte_for_byte() {
    let lab = Lab::new();
    let bad = fake::gemini_key();
    let m = lab
        .member("m")
        .provider("gemini", State::EnvKey)
        .env_line("export OTHER='multi\nline'")
        .vendor_rejects(&bad)
        .start();
    let inv = lab.inventory("");
    let old = m.secret("gemini", "GEMINI_API_KEY");
    let before = fs::read(m.env_file()).unwrap();

    let out = lab.provision_json(&inv, &[("GEMINI_API_KEY", &bad)], &["--rotate"]);
    out.assert_exit(1);
    let row = out.row("m", "gemini");
    assert_eq!(row["action"], "failed", "{out}");
    assert_eq!(row["state"], "needs_auth");
    assert!(detail(&row).contains("previous state restored"), "{row}");
    assert_eq!(fs::read(m.env_file()).unwrap(), before, "not restored");
    out.assert_no_secret(&bad).assert_no_secret(&old);
    let lines = audit(&lab);
    let failed = lines
        .iter()
        .find(|l| l["action"] == "failed")
        .expect("a failed line");
    assert_eq!(failed["fingerprint"], fingerprint(&bad));
    assert_eq!(failed["previous_fingerprint"], fingerprint(&old));

    // The old key still works.
    let after = lab.provision_json(&inv, &[], &[]);
    after.assert_exit(0);
    assert_eq!(after.row("m", "gemini")["state"], "ready");
}

#[test]
fn provider_filter_keeps_only_those_rows() {
    let lab = Lab::new();
    lab.member("both")
        .provider("gemini", State::EnvKey)
        .provider("claude", State::NoAuth)
        .start();
    lab.member("gem").provider("gemini", State::EnvKey).start();
    let inv = lab.inventory("");
    let inv = inv.to_str().unwrap();
    let sweep = |extra: &[&str]| {
        let mut args = vec!["sweep", "-i", inv, "--format", "json"];
        args.extend_from_slice(extra);
        lab.fleetauth(&args)
    };
    let providers = |out: &support::Output| -> Vec<(String, String)> {
        out.results()
            .iter()
            .map(|r| {
                (
                    r["member"].as_str().unwrap().to_string(),
                    r["provider"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    let gemini = sweep(&["--provider", "gemini"]);
    gemini.assert_exit(0); // the failing claude row is left out
    assert_eq!(
        providers(&gemini),
        [
            ("both".into(), "gemini".into()),
            ("gem".into(), "gemini".into())
        ]
    );
    let claude = sweep(&["--provider", "claude"]);
    claude.assert_exit(1);
    assert_eq!(providers(&claude), [("both".into(), "claude".into())]);
    assert_eq!(
        claude.summary()["members"],
        1,
        "`gem` has no claude: not contacted"
    );
    for extra in [
        &["--provider", "claude,gemini"][..],
        &["--provider", "claude", "--provider", "gemini"],
    ] {
        assert_eq!(sweep(extra).results().len(), 3);
    }
    let unknown = sweep(&["--provider", "gemnii"]);
    unknown
        .assert_exit(2)
        .assert_stderr_contains("--provider gemnii: unknown provider")
        .assert_stderr_contains("known providers: ");
    assert!(unknown.stderr.contains("claude") && unknown.stderr.contains("gemini"));
    sweep(&["--provider", "codex"])
        .assert_exit(2)
        .assert_stderr_contains("no selected member has this provider");

    let prov = lab.provision_json(std::path::Path::new(inv), &[], &["--provider", "gemini"]);
    prov.assert_exit(0);
    assert_eq!(prov.results().len(), 2);
    assert!(prov.results().iter().all(|r| r["provider"] == "gemini"));
}

/// A claude login that expires in 30 minutes and has no refresh token.
fn short_claude_login(m: &Member) {
    let exp = fake::epoch_s(30 * 60) * 1000;
    let path = m.home().join(".claude/.credentials.json");
    let access = m.secret("claude", "accessToken");
    fs::write(
        &path,
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"{access}","expiresAt":{exp},"scopes":["user:inference"],"subscriptionType":"max"}}}}"#
        ),
    )
    .unwrap();
    m.own(&path);
}

#[test]
fn valid_for_boundaries_on_a_login_that_expires_in_30_minutes() {
    let lab = Lab::new();
    let m = lab
        .member("m")
        .provider("claude", State::OauthValid)
        .start();
    short_claude_login(&m);
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let inv = inv.to_str().unwrap();
    let sweep = |extra: &[&str]| {
        let mut args = vec!["sweep", "-i", inv, "--format", "json"];
        args.extend_from_slice(extra);
        lab.fleetauth(&args)
    };

    let ten = sweep(&["--valid-for", "10m"]);
    ten.assert_exit(0);
    assert_eq!(ten.row("m", "claude")["state"], "ready");
    assert!(
        detail(&ten.row("m", "claude")).contains("valid for 29m"),
        "{ten}"
    );

    for out in [sweep(&["--valid-for", "1h"]), sweep(&[])] {
        out.assert_exit(1);
        let row = out.row("m", "claude");
        assert_eq!(row["state"], "needs_auth", "{out}");
        assert!(
            detail(&row).contains("within --valid-for 1h")
                && detail(&row).contains("expires in 29m"),
            "{row}"
        );
    }
    // The prompt proves the login now, not for the window.
    let deep = sweep(&["--deep", "--valid-for", "1h"]);
    assert_eq!(deep.row("m", "claude")["state"], "needs_auth", "{deep}");
    assert!(detail(&deep.row("m", "claude")).contains("prompt answered, but"));
    let deep_short = sweep(&["--deep", "--valid-for", "10m"]);
    assert_eq!(
        deep_short.row("m", "claude")["state"],
        "ready",
        "{deep_short}"
    );

    // provision: without a key to push it says so; with --valid-for 10m it leaves the login.
    let prov = lab.provision_json(std::path::Path::new(inv), &[], &["--valid-for", "1h"]);
    prov.assert_exit(1);
    let row = prov.row("m", "claude");
    assert_eq!(
        (row["state"].as_str(), row["action"].as_str()),
        (Some("needs_auth"), Some("none"))
    );
    assert!(detail(&row).contains("within --valid-for 1h"), "{row}");
    let prov = lab.provision_json(std::path::Path::new(inv), &[], &["--valid-for", "10m"]);
    prov.assert_exit(0);

    sweep(&["--valid-for", "0s"]).assert_exit(2);
    sweep(&["--valid-for", "25h"]).assert_exit(2);
}

#[test]
fn a_ghu_token_in_the_env_file_is_not_ready_for_a_sprint() {
    let lab = Lab::new();
    let ghu = format!("ghu_FAKE{}", fake::alnum(32));
    let gho = fake::github_oauth_token();
    lab.member("ghu")
        .provider("copilot", State::NoAuth)
        .env_line(&format!("export COPILOT_GITHUB_TOKEN='{ghu}'"))
        .start();
    lab.member("gho")
        .provider("copilot", State::NoAuth)
        .env_line(&format!("export COPILOT_GITHUB_TOKEN='{gho}'"))
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    out.assert_exit(1);
    let row = out.row("ghu", "copilot");
    assert_eq!(row["state"], "needs_auth", "{out}");
    assert!(
        detail(&row).contains("COPILOT_GITHUB_TOKEN (env file) is a ghu_ token")
            && detail(&row).contains("may lapse within --valid-for 1h"),
        "{row}"
    );
    assert_eq!(out.row("gho", "copilot")["state"], "ready");
    out.assert_no_secret(&ghu).assert_no_secret(&gho);
    // Even when the prompt answers.
    let deep = lab.fleetauth(&[
        "sweep",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "json",
        "--deep",
    ]);
    let row = deep.row("ghu", "copilot");
    assert_eq!(row["state"], "needs_auth", "{deep}");
    assert!(detail(&row).contains("prompt answered, but"), "{row}");
    assert_eq!(deep.row("gho", "copilot")["state"], "ready");
}

#[test]
fn a_ghu_token_is_not_pushed() {
    let lab = Lab::new();
    let ghu = format!("ghu_FAKE{}", fake::alnum(32));
    let m = lab
        .member("m")
        .provider("copilot", State::NoAuth)
        .env_line("A=1")
        .start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let before = fs::read(m.env_file()).unwrap();
    for extra in [&["--check"][..], &[]] {
        let out = lab.provision_json(&inv, &[("COPILOT_GITHUB_TOKEN", &ghu)], extra);
        out.assert_exit(1).assert_no_secret(&ghu);
        let row = out.row("m", "copilot");
        assert_eq!(
            (row["state"].as_str(), row["action"].as_str()),
            (Some("needs_auth"), Some("none")),
            "{out}"
        );
        assert!(
            detail(&row).contains("not pushed: COPILOT_GITHUB_TOKEN")
                && detail(&row).contains("is a ghu_ token"),
            "{row}"
        );
        assert_eq!(fs::read(m.env_file()).unwrap(), before);
    }
    // A fine-grained token is pushed as before.
    let pat = fake::github_pat();
    let out = lab.provision_json(&inv, &[("COPILOT_GITHUB_TOKEN", &pat)], &[]);
    out.assert_exit(0);
    assert_eq!(out.row("m", "copilot")["action"], "pushed");
}

#[test]
fn rotate_replaces_a_codex_key_its_login_command_installed() {
    let lab = Lab::new();
    let m = lab.member("m").provider("codex", State::KeyFile).start();
    let inv = lab.inventory("probe_timeout = \"5s\"");
    let old = m.secret("codex", "OPENAI_API_KEY");
    let new = fake::openai_key();
    let auth = m.home().join(".codex/auth.json");

    let out = lab.provision_json(&inv, &[("OPENAI_API_KEY", &new)], &["--rotate"]);
    out.assert_exit(0)
        .assert_no_secret(&new)
        .assert_no_secret(&old);
    let row = out.row("m", "codex");
    assert_eq!(row["action"], "pushed", "{out}");
    assert!(
        detail(&row).contains(&format!("rotated: replaced the key {}", fingerprint(&old))),
        "{row}"
    );
    let text = fs::read_to_string(&auth).unwrap();
    assert!(text.contains(&new) && !text.contains(&old), "{text}");
    let line = audit(&lab)
        .into_iter()
        .find(|l| l["action"] == "pushed")
        .expect("a pushed line");
    assert_eq!(line["previous_fingerprint"], fingerprint(&old));

    // The same key again: its fingerprint matches the file's, nothing is run.
    let again = lab.provision_json(&inv, &[("OPENAI_API_KEY", &new)], &["--rotate"]);
    assert_eq!(again.row("m", "codex")["action"], "unchanged", "{again}");
}
