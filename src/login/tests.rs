//! What the shipped `[login]` data makes of the vendors' texts, and the relay driven by a
//! scripted command.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::def::{Flow, LoginDef};
use super::input::{CodeBroker, InputMode};
use super::relay::{LoginJob, Meaning, Outcome, classify, run_login, strip_ansi};
use super::{EventKind, Sink};
use crate::provider::Registry;
use crate::ssh::{
    Chunk, Dialog, ExecOutput, Input, Interactive, InteractiveOptions, Session, SshError,
};

fn def(name: &str) -> LoginDef {
    let registry = Registry::builtin().unwrap();
    registry.get(name).unwrap().login.clone().unwrap()
}

#[test]
fn shipped_flows_are_the_vendors() {
    for (name, flow, pty) in [
        ("codex", Flow::DeviceCode, false),
        ("copilot", Flow::DeviceCode, false),
        ("droid", Flow::DeviceCode, false),
        ("claude", Flow::PasteBack, true),
        ("gemini", Flow::PasteBack, true),
        ("cursor", Flow::BrowserPoll, false),
    ] {
        let d = def(name);
        assert_eq!((d.flow, d.pty), (flow, pty), "{name}");
    }
    assert_eq!(def("gemini").env["NO_BROWSER"], "true");
    let registry = Registry::builtin().unwrap();
    assert!(registry.get("agy").unwrap().login.is_none());
}

#[test]
fn codex_device_prompt_is_read_through_its_colours() {
    let d = def("codex");
    let url = strip_ansi("   \x1b[94mhttps://auth.openai.com/codex/device\x1b[0m");
    assert_eq!(
        classify(&d, &url, false),
        Meaning::Url("https://auth.openai.com/codex/device".into(), None)
    );
    let code = strip_ansi("   \x1b[94mAB12-CD34\x1b[0m");
    assert_eq!(
        classify(&d, &code, false),
        Meaning::Code("AB12-CD34".into())
    );
    assert_eq!(
        classify(
            &d,
            "2. Enter this one-time code (expires in 15 minutes)",
            false
        ),
        Meaning::Nothing
    );
    assert_eq!(
        classify(&d, "Successfully logged in", false),
        Meaning::Succeeded
    );
    assert_eq!(
        classify(
            &d,
            "Error logging in with device code: device code expired",
            false
        ),
        Meaning::Expired
    );
    let Meaning::Failed(why) = classify(
        &d,
        "Error logging in with device code: device code login is not enabled for this account. Falling back to browser login.",
        false,
    ) else {
        panic!("not a failure")
    };
    assert!(
        why.contains("not enabled") && why.contains("security settings"),
        "{why}"
    );
}

#[test]
fn copilot_url_and_code_share_a_line() {
    assert_eq!(
        classify(
            &def("copilot"),
            "Enter one-time code: CA8D-C2B6 at https://github.com/login/device",
            false
        ),
        Meaning::Url(
            "https://github.com/login/device".into(),
            Some("CA8D-C2B6".into())
        )
    );
    assert_eq!(
        classify(
            &def("droid"),
            "To sign in, visit https://auth.factory.ai/device and enter code QWER-7890",
            false
        ),
        Meaning::Url(
            "https://auth.factory.ai/device".into(),
            Some("QWER-7890".into())
        )
    );
}

#[test]
fn paste_prompts_are_seen_before_their_newline() {
    assert_eq!(
        classify(&def("claude"), "Paste code here if prompted > ", true),
        Meaning::Prompt
    );
    assert_eq!(
        classify(&def("gemini"), "Enter the authorization code: ", true),
        Meaning::Prompt
    );
    // A partial line is never taken for a URL (it may be cut in the middle).
    assert_eq!(
        classify(&def("claude"), "https://claude.ai/oauth/authori", true),
        Meaning::Nothing
    );
}

/// A session whose one interactive command is scripted by the test.
struct Scripted(Mutex<Option<Interactive>>, Arc<Mutex<Vec<String>>>);

#[async_trait]
impl Session for Scripted {
    async fn exec(&self, _: &str, _: Input<'_>, _: Duration) -> Result<ExecOutput, SshError> {
        unreachable!()
    }
    async fn exec_dialog(
        &self,
        _: &str,
        _: Input<'_>,
        _: Dialog<'_>,
        _: Duration,
    ) -> Result<ExecOutput, SshError> {
        unreachable!()
    }
    async fn exec_interactive(
        &self,
        command: &str,
        opts: InteractiveOptions,
    ) -> Result<Interactive, SshError> {
        assert!(command.starts_with("sh -c '") && command.ends_with("fleetauth-login"));
        assert!(opts.pty);
        self.1.lock().unwrap().push(command.to_string());
        Ok(self.0.lock().unwrap().take().expect("one login"))
    }
    async fn close(&self) {}
}

#[tokio::test]
async fn a_paste_back_login_relays_its_url_and_gets_nothing_without_a_code() {
    let (it, out, _writes) = Interactive::scripted();
    let session = Arc::new(Scripted(Mutex::new(Some(it)), Arc::default()));
    let job = LoginJob {
        member: "m1".into(),
        provider: "claude".into(),
        def: def("claude"),
        binary: "/usr/bin/claude".into(),
        env_file: "~/.config/fleetauth/env".into(),
        deadline: Duration::from_secs(30),
        key_pattern: None,
    };
    let (sink, mut events) = Sink::new();
    let broker = CodeBroker::spawn(InputMode::Nothing);
    let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
    for line in [
        "Browser didn't open? Use the url below to sign in:",
        "https://claude.ai/oauth/authorize?code=true&state=abc\x1b]8;;evil\x07",
    ] {
        out.send(Chunk::Line {
            stderr: false,
            text: line.into(),
        })
        .await
        .unwrap();
    }
    out.send(Chunk::Partial {
        stderr: false,
        text: "Paste code here if prompted > ".into(),
    })
    .await
    .unwrap();
    let outcome = run_login(session, job, sink, broker, cancel).await;
    assert_eq!(
        outcome,
        Outcome::Failed("no code was pasted (stdin ended, or --no-input)".into())
    );
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.event == EventKind::Url {
            // The escape sequence the member printed is gone.
            assert_eq!(
                e.url.as_deref(),
                Some("https://claude.ai/oauth/authorize?code=true&state=abc")
            );
        }
        kinds.push(e.event);
    }
    assert_eq!(
        kinds,
        [
            EventKind::Started,
            EventKind::Url,
            EventKind::Waiting,
            EventKind::Failed
        ]
    );
}

/// README's table of login events lists every event kind.
#[test]
fn readme_lists_every_login_event() {
    let readme = include_str!("../../README.md");
    for kind in EventKind::ALL {
        let row = format!("| `{kind}` |");
        assert!(
            readme.lines().any(|l| l.starts_with(&row)),
            "README's login events table has no row for `{kind}`"
        );
    }
}

const MINIMAL: &str = r#"name = "tool"
binary = "tool"
key_env = "TOOL_KEY"

[probe]
args = ["ask", "OK"]

[[probe.rules]]
exit = 0
outcome = "ready"
reason = "answered"

[config_home]
default = "~/.tool"
"#;

fn login_error(section: &str) -> crate::config_error::ConfigError {
    let text = format!("{MINIMAL}\n{section}");
    match crate::provider::parse_provider(&text, std::path::Path::new("p.toml")) {
        Ok(_) => panic!("expected an error for:\n{section}"),
        Err(e) => e,
    }
}

/// Line of `section`'s first line containing `needle`, counted in the whole file.
fn line_in(section: &str, needle: &str) -> usize {
    MINIMAL.lines().count() + 1 + section.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn login_sections_are_checked_like_the_rest_of_a_definition() {
    let at = |e: &crate::config_error::ConfigError, line, col, msg: &str, help: &str| {
        crate::config_error::assert_error_at(e, "p.toml", line, col, msg, help)
    };
    let s = "[login]\nflow = \"device_code\"\nargs = [\"login\"]\nurl = 'https://x'\ncolour = 1\n";
    at(&login_error(s), line_in(s, "colour"), 1, "colour", "flow");
    let s = "[login]\nflow = \"magic\"\nargs = []\nurl = 'x'\n";
    at(&login_error(s), line_in(s, "magic"), 8, "magic", "");
    let s = "[login]\nflow = \"device_code\"\nargs = []\nurl = 'x'\n";
    at(
        &login_error(s),
        line_in(s, "flow"),
        8,
        "needs `code`",
        "code =",
    );
    let s = "[login]\nflow = \"paste_back\"\nargs = []\nurl = 'x'\n";
    at(
        &login_error(s),
        line_in(s, "flow"),
        8,
        "needs `prompt`",
        "prompt =",
    );
    let s = "[login]\nflow = \"browser_poll\"\nargs = []\nurl = '(unclosed'\n";
    at(
        &login_error(s),
        line_in(s, "unclosed"),
        7,
        "invalid regex",
        "regex syntax",
    );
    let s = "[login]\nflow = \"browser_poll\"\nargs = []\nurl = 'x'\nenv = { \"1BAD\" = \"x\" }\n";
    at(
        &login_error(s),
        line_in(s, "1BAD"),
        9,
        "invalid environment variable",
        "",
    );
    let s = "[login]\nflow = \"browser_poll\"\nargs = []\nurl = 'x'\n\n[[login.failures]]\nmatches = 'no'\n";
    at(
        &login_error(s),
        line_in(s, "[[login.failures]]"),
        1,
        "reason",
        "",
    );
}
