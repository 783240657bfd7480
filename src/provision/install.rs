//! Phase 3 for one member × provider: install, verify and commit — or restore — as one
//! transaction on one channel ([`crate::remote::transaction`]), then the row and the audit entry
//! that say exactly what the member now holds.

use std::time::{Duration, SystemTime};

use super::payload::Payload;
use super::transaction::{self, Ending, Installed};
use super::{Observed, ProvisionOptions};
use crate::audit::{self, AuditEntry};
use crate::inventory::Member;
use crate::mask;
use crate::probe::{ProbeRequest, parse_output};
use crate::provider::{Install, Provider};
use crate::remote;
use crate::row::{Action, Row, Source, State};
use crate::ssh::{Dialog, Input, Session};
use crate::sweep::judge_one;

fn audit(
    opts: &ProvisionOptions,
    member: &Member,
    provider: &Provider,
    action: &str,
    payload: &Payload<'_>,
) {
    let entry = AuditEntry::new(
        &member.name,
        &provider.name,
        action,
        payload.source(),
        Some(payload.fingerprint()),
    );
    if let Err(e) = audit::append(&opts.audit_dir, &entry) {
        tracing::warn!("could not write the audit log: {e}");
    }
}

/// Install on one member for one provider, verify with the prompt and commit — or restore — in
/// one transaction on one channel ([`crate::remote::transaction`]).
pub(super) async fn install_and_verify(
    session: &dyn Session,
    member: &Member,
    provider: &Provider,
    payload: Payload<'_>,
    observed: &Observed,
    opts: &ProvisionOptions,
) -> Row {
    let base = observed
        .plans
        .iter()
        .find(|(r, _)| r.provider == provider.name)
        .map(|(r, _)| r.clone())
        .expect("row exists");
    let (key, pattern) = match &payload {
        Payload::Key(k) => (Some(&k.value), k.push_key(provider).pattern.as_ref()),
        Payload::Login(_) => (None, provider.key_pattern.as_ref()),
    };
    let scrub = |text: &str| mask::scrub(text, key, pattern);
    let fail = |detail: String, state: State| Row {
        state,
        action: Some(Action::Failed),
        source: None,
        detail: scrub(&detail),
        ..base.clone()
    };
    let binary = observed.binaries.get(&provider.name);
    let install = match &payload {
        Payload::Key(k) => match &k.push_key(provider).install {
            Install::EnvFile { var } => transaction::Install::EnvFile {
                var,
                value: &k.value,
            },
            Install::LoginCommand { args } => match binary {
                Some(bin) => transaction::Install::LoginCommand {
                    args,
                    binary: bin,
                    key: &k.value,
                },
                None => return fail("the CLI's path is unknown".into(), State::Error),
            },
        },
        Payload::Login(l) => transaction::Install::File {
            rel: &l.rel,
            bytes: &l.bytes,
        },
    };
    let mut only = member.clone();
    only.providers = vec![provider.name.clone()];
    let req = ProbeRequest {
        providers: vec![(provider, crate::sweep::prompt_deadline(member, provider))],
        env_file: &member.env_file,
        deep: true,
    };
    // The whole transaction's deadline: the lock, the install and the prompt. The member waits
    // no longer than that for the verdict.
    let deadline =
        member.command_timeout * 2 + Duration::from_secs(remote::LOCK_TIMEOUT_SECS as u64);
    let txn = match transaction::build(&req, &install, opts.keep_backup, deadline) {
        Ok(t) => t,
        Err(e) => {
            audit(opts, member, provider, "failed", &payload);
            return fail(format!("key refused before any push: {e}"), State::Error);
        }
    };
    // The verdict is judged when the member asks for it, from the verification it printed.
    let verified: std::sync::Mutex<Option<Row>> = std::sync::Mutex::new(None);
    let ask = remote::verdict_request(&txn.nonce);
    let dialog = Dialog {
        ask: &ask,
        answer: Box::new(|stdout: &[u8]| {
            let obs = parse_output(stdout, &txn.nonce);
            let row = judge_one(&only, provider, &obs, SystemTime::now()).0;
            let commit = row.state == State::Ready;
            *verified.lock().unwrap_or_else(|e| e.into_inner()) = Some(row);
            transaction::verdict(commit)
        }),
    };
    let result = session
        .exec_dialog(&txn.command, Input::Secret(&txn.stdin), dialog, deadline)
        .await;
    let verified = verified.into_inner().unwrap_or_else(|e| e.into_inner());
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            audit(opts, member, provider, "failed", &payload);
            let detail = match &verified {
                Some(v) if v.state == State::Ready => format!(
                    "{e} after the member verified the key and was told to keep it: it may be in place; run `fleetauth sweep` to see"
                ),
                _ => format!(
                    "{e}; the change is not confirmed: a member that loses the connection puts the previous state back by itself (within {}); one whose shell was killed keeps the unconfirmed change until the next provision on it rolls it back",
                    humantime::format_duration(deadline)
                ),
            };
            return fail(detail, State::Error);
        }
    };
    let report = transaction::report(&out.stdout, &txn.nonce);
    if let Some(why) = transaction::failure(&report, out.exit, &scrub) {
        audit(opts, member, provider, "failed", &payload);
        let restored = if report.ending == Some(Ending::Restored) {
            "; previous state restored"
        } else {
            ""
        };
        return fail(format!("{why}{restored}"), State::Error);
    }
    let label = payload.label(provider);
    let (Some(installed), Some(verified), true) = (report.installed, verified, report.done) else {
        audit(opts, member, provider, "failed", &payload);
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.lines().rev().take(2).collect::<Vec<_>>().join(" / ");
        return fail(
            format!(
                "the provisioning script ended unexpectedly (exit {:?}{}){}",
                out.exit,
                out.signal
                    .map(|s| format!(", signal {s}"))
                    .unwrap_or_default(),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            ),
            State::Error,
        );
    };
    let action = match installed {
        Installed::Pushed => Action::Pushed,
        Installed::Unchanged => Action::Unchanged,
    };
    match report.ending {
        Some(Ending::Committed) => {
            audit(opts, member, provider, action.as_str(), &payload);
            let source = match payload {
                Payload::Key(_) => Source::PushedKey,
                Payload::Login(_) => Source::SharedOauth,
            };
            Row {
                state: State::Ready,
                source: Some(source),
                action: Some(action),
                // The pushed credential carries no expiry fleetauth can read.
                expires_in: None,
                version: verified.version.or(base.version.clone()),
                detail: scrub(&format!(
                    "{label} ({}) verified: {}",
                    payload.source(),
                    verified.detail
                )),
                ..base.clone()
            }
        }
        ending => {
            let mut detail = format!("{label} did not verify: {}", verified.detail);
            match ending {
                Some(Ending::Restored) => {
                    detail.push_str("; previous state restored");
                    audit(opts, member, provider, "restored", &payload);
                }
                Some(Ending::Unchanged) => {}
                _ => detail.push_str("; the member did not confirm the restore"),
            }
            audit(opts, member, provider, "failed", &payload);
            fail(detail, verified.state)
        }
    }
}
