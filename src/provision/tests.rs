//! The three provisioning phases over the scripted fake transport: what each phase sends, what
//! a member lost between phases reports, and a restore after a failed verification. The same
//! behaviours run against real sshd members in tests/provision.rs and tests/member_safety.rs.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::fake::{FakeMember, FakeTransport};
use crate::provider::Registry;

const GOOD: &str = "AIzaGOODGOODGOODGOODGOODGOODGOODGOODGOO";
const BAD: &str = "AIzaBADBADBADBADBADBADBADBADBADBADBADBA";

/// A registry whose gemini takes its key from `var` (one variable per test: the environment is
/// shared by the tests of this process).
fn registry(var: &str) -> Arc<Registry> {
    let mut reg = Registry::builtin().unwrap();
    let mut gemini = reg.get("gemini").unwrap().clone();
    gemini.key_env = var.to_string();
    gemini.keys[0].env = var.to_string();
    reg.insert(gemini, "test".into());
    Arc::new(reg)
}

fn member() -> Member {
    let inv = crate::inventory::parse(
        "[members.m1]\nhost = \"10.0.0.1\"\nproviders = [\"gemini\"]\ncommand_timeout = \"20s\"\n",
        std::path::Path::new("inv.toml"),
        &["gemini"],
    )
    .unwrap();
    inv.members.into_iter().next().unwrap()
}

async fn run(fake: &Arc<FakeMember>, var: &str, key: &str, check: bool) -> Vec<Row> {
    // SAFETY: each test uses its own variable name; nothing else reads it.
    unsafe { std::env::set_var(var, key) };
    let audit = tempfile::tempdir().unwrap();
    let opts = ProvisionOptions {
        check,
        jobs: 4,
        audit_dir: audit.path().to_path_buf(),
        share_rotating_login: false,
        share_oauth: false,
        keep_backup: false,
        on_member: None,
        fix_shadowing: false,
        rotate: false,
        valid_for: crate::assess::DEFAULT_VALID_FOR,
    };
    // Every run streams too: the rows streamed are the rows returned, each once.
    let streamed: Arc<std::sync::Mutex<Vec<Row>>> = Arc::default();
    let opts = ProvisionOptions {
        on_member: Some({
            let streamed = streamed.clone();
            Arc::new(move |rows: &[Row], _| streamed.lock().unwrap().extend_from_slice(rows))
        }),
        ..opts
    };
    let mut broker = KeyBroker::new(None, false);
    let rows = provision(
        Arc::new(FakeTransport(fake.clone())),
        registry(var),
        vec![member()],
        &mut broker,
        &opts,
    )
    .await;
    assert_eq!(*streamed.lock().unwrap(), rows, "streamed rows differ");
    rows
}

#[tokio::test]
async fn phases_observe_then_push_verify_and_commit_in_one_transaction() {
    let fake = Arc::new(FakeMember {
        installed: true,
        good_keys: vec![GOOD.into()],
        ..Default::default()
    });
    let rows = run(&fake, "FLEETAUTH_TEST_KEY_PHASES", GOOD, false).await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r.state, r.action, r.source),
        (
            State::Ready,
            Some(Action::Pushed),
            Some(crate::row::Source::PushedKey)
        ),
        "{r:?}"
    );
    assert_eq!(fake.env_key().as_deref(), Some(GOOD));
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "phase 1 probe + phase 3 transaction");
    assert!(calls[0].command.starts_with("sh -c 'eval \"$(printf %b "));
    assert!(
        calls[0].stdin.is_empty(),
        "the probe is carried on its command line"
    );
    assert!(calls[1].command.starts_with("sh -c 'eval"));
    for c in &calls {
        assert!(
            !c.command.contains(GOOD),
            "the key is never in a command line"
        );
    }
    assert!(!calls[0].command.contains(GOOD));
    assert!(String::from_utf8_lossy(&calls[1].stdin).contains(GOOD));
    assert!(!r.detail.contains(GOOD));
}

#[tokio::test]
async fn a_member_lost_between_phases_is_unreachable() {
    let fake = Arc::new(FakeMember {
        installed: true,
        good_keys: vec![GOOD.into()],
        fail_from_connect: Some(1),
        ..Default::default()
    });
    let rows = run(&fake, "FLEETAUTH_TEST_KEY_LOST", GOOD, false).await;
    assert_eq!(rows[0].state, State::Unreachable, "{:?}", rows[0]);
    assert_eq!(rows[0].reason, Some(crate::row::Reason::Refused));
    assert_eq!(fake.env_key(), None, "nothing was written");
}

#[tokio::test]
async fn a_key_that_does_not_verify_is_restored_and_the_row_says_so() {
    let fake = Arc::new(FakeMember {
        installed: true,
        good_keys: vec![GOOD.into()],
        env_key: std::sync::Mutex::new(Some("AIzaOLDOLD".into())),
        ..Default::default()
    });
    // A rejected key in the env file: not ready, so a key is pushed — and rejected too.
    let rows = run(&fake, "FLEETAUTH_TEST_KEY_RESTORE", BAD, false).await;
    let r = &rows[0];
    assert_eq!(r.action, Some(Action::Failed), "{r:?}");
    assert!(r.detail.contains("previous state restored"), "{}", r.detail);
    assert!(!r.detail.contains(BAD));
    assert_eq!(fake.env_key().as_deref(), Some("AIzaOLDOLD"));
}

#[tokio::test]
async fn check_writes_nothing_and_opens_no_transaction() {
    let fake = Arc::new(FakeMember {
        installed: true,
        good_keys: vec![GOOD.into()],
        ..Default::default()
    });
    let rows = run(&fake, "FLEETAUTH_TEST_KEY_CHECK", GOOD, true).await;
    assert_eq!(rows[0].action, Some(Action::WouldPush));
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(fake.env_key(), None);
}

#[test]
fn one_deadline_for_the_script_and_the_verdict() {
    let reg = Registry::builtin().unwrap();
    let gemini = reg.get("gemini").unwrap();
    let mut m = member();
    // The provider's own deadline, capped by the member's command deadline less the margin.
    m.command_timeout = Duration::from_secs(20);
    m.probe_timeout = None;
    let d = crate::sweep::prompt_deadline(&m, gemini);
    assert_eq!(d, gemini.probe.timeout.min(Duration::from_secs(15)));
    m.probe_timeout = Some(Duration::from_secs(7));
    assert_eq!(
        crate::sweep::prompt_deadline(&m, gemini),
        Duration::from_secs(7)
    );
    m.command_timeout = Duration::from_secs(3);
    assert_eq!(
        crate::sweep::prompt_deadline(&m, gemini),
        Duration::from_secs(1)
    );
    // The script runs each provider's prompt under exactly that figure.
    m.command_timeout = Duration::from_secs(20);
    let req = crate::sweep::probe_request(&m, &reg, true);
    let script = crate::probe::build_script(&req);
    assert!(script.text().contains("  PTO=7\n"), "the script's deadline");
}
