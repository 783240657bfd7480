//! Provisioning: make every member × provider work before work is dispatched.
//!
//! Three phases, so that an operator is asked for each key at most once and only when some
//! member needs it:
//! 1. **Observe** every member at once with the deep probe (the minimal prompt, env file
//!    sourced), and decide per member × provider with [`crate::plan::decide`].
//! 2. **Collect** the keys the plan needs, one provider at a time, from the local store, the
//!    operator's environment, or a hidden prompt ([`crate::keys`]).
//! 3. **Act** on the members that need a key, at once again: push it (env file merged and
//!    replaced atomically on the member, or the provider's login command fed on stdin), verify
//!    it with the prompt, and restore the previous env file when verification fails.
//!
//! `--check` stops after phase 2 without prompting for keys and writes nothing anywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretSlice};

use crate::assess::State;
use crate::audit::{self, AuditEntry};
use crate::envfile::{self, PushOutcome};
use crate::fleet::{Progress, map_members, rows_for_all, unreachable_rows};
use crate::inventory::Member;
use crate::keys::{CollectedKey, KeyAvailability, KeyBroker};
use crate::plan::{Before, Decision, Strategy, decide};
use crate::probe::MemberObservation;
use crate::provider::{Install, Provider, Registry};
use crate::report::{Action, Row};
use crate::shell::{quote, quote_remote_path};
use crate::ssh::{Input, Session, Transport};
use crate::sweep::{judge_one, observe};

/// Options for one provisioning run.
#[derive(Clone)]
pub struct ProvisionOptions {
    pub check: bool,
    pub jobs: usize,
    /// Where the audit log goes (`$FLEETAUTH_HOME`).
    pub audit_dir: PathBuf,
}

/// Phase 1's result for one member.
struct Observed {
    member: Member,
    /// Per provider: the row as observed and the decision.
    plans: Vec<(Row, Decision)>,
    /// The binary path per provider, for login-command installs.
    binaries: BTreeMap<String, String>,
}

/// Phase 1: observe one member and decide for each of its providers.
async fn observe_member(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    keys: Arc<BTreeMap<String, KeyAvailability>>,
    member: Member,
) -> Result<Observed, Vec<Row>> {
    let session = transport
        .connect(&member)
        .await
        .map_err(|e| unreachable_rows(&member, &e))?;
    let obs = observe(session.as_ref(), &member, &registry, true).await;
    session.close().await;
    let obs: MemberObservation =
        obs.map_err(|why| rows_for_all(&member, State::Error, &why, None))?;
    let now = SystemTime::now();
    let mut plans = Vec::new();
    let mut binaries = BTreeMap::new();
    for provider in member.providers.iter().filter_map(|p| registry.get(p)) {
        let (row, home) = judge_one(&member, provider, &obs, now);
        let available = keys
            .get(&provider.name)
            .is_some_and(KeyAvailability::is_available);
        let decision = decide(
            &provider.name,
            member.auth_mode(&provider.name),
            Before {
                state: row.state,
                home,
            },
            available,
            &provider.key_env,
        );
        if let Some(bin) = obs
            .providers
            .get(&provider.name)
            .and_then(|p| p.binary.clone())
        {
            binaries.insert(provider.name.clone(), bin);
        }
        plans.push((row, decision));
    }
    Ok(Observed {
        member,
        plans,
        binaries,
    })
}

/// The final row for a decision that needs no key.
fn settled_row(mut row: Row, decision: &Decision) -> Row {
    row.action = Some(Action::None);
    match decision {
        Decision::Leave(strategy) => {
            let how = match strategy {
                Strategy::PreAuthenticated => "already works",
                Strategy::MemberLogin => "member's own login works",
                Strategy::PushKey => "key pushed",
            };
            row.detail = format!("{how}: {}", row.detail);
        }
        Decision::NeedsAuth(remedy) => {
            row.state = State::NeedsAuth;
            row.detail = format!("{}; {remedy}", row.detail);
        }
        Decision::Skip(_) | Decision::Push => {}
    }
    row
}

/// Run the whole provisioning of `members`; rows in inventory order.
pub async fn provision(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    members: Vec<Member>,
    broker: &mut KeyBroker,
    opts: &ProvisionOptions,
) -> Vec<Row> {
    // Which keys could be had, without asking for any yet.
    let mut wanted: Vec<&Provider> = members
        .iter()
        .flat_map(|m| m.providers.iter().filter_map(|p| registry.get(p)))
        .collect();
    wanted.sort_by(|a, b| a.name.cmp(&b.name));
    wanted.dedup_by(|a, b| a.name == b.name);
    let availability: Arc<BTreeMap<String, KeyAvailability>> = Arc::new(
        wanted
            .iter()
            .map(|p| (p.name.clone(), broker.availability(p, !opts.check)))
            .collect(),
    );

    // Phase 1: observe and decide, every member at once.
    let progress = Progress::new(members.len(), "probe");
    let fallback = members.clone();
    let observed = {
        let (t, r, a) = (transport.clone(), registry.clone(), availability.clone());
        map_members(members, opts.jobs, &progress, move |m| {
            observe_member(t.clone(), r.clone(), a.clone(), m)
        })
        .await
    };
    let observed: Vec<Result<Observed, Vec<Row>>> = observed
        .into_iter()
        .zip(&fallback)
        .map(|(o, m)| {
            o.unwrap_or_else(|| {
                Err(rows_for_all(
                    m,
                    State::Error,
                    "internal error: this member's task failed",
                    None,
                ))
            })
        })
        .collect();

    // Phase 2: collect each needed key once, one provider at a time.
    let mut needed: Vec<&str> = observed
        .iter()
        .flatten()
        .flat_map(|o| o.plans.iter())
        .filter(|(_, d)| *d == Decision::Push)
        .map(|(row, _)| row.provider.as_str())
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let collected: BTreeMap<String, Result<CollectedKey, String>> = needed
        .iter()
        .filter_map(|name| registry.get(name))
        .map(|p| (p.name.clone(), broker.collect(p, !opts.check)))
        .collect();
    let collected = Arc::new(collected);

    // Phase 3: act where a key is needed, every member at once.
    let acting: Vec<Arc<Observed>> = Vec::new();
    let mut slots: Vec<Result<Vec<Row>, Arc<Observed>>> = Vec::new();
    let mut acting = acting;
    for o in observed {
        match o {
            Err(rows) => slots.push(Ok(rows)),
            Ok(o) if o.plans.iter().any(|(_, d)| *d == Decision::Push) => {
                let o = Arc::new(o);
                acting.push(o.clone());
                slots.push(Err(o));
            }
            Ok(o) => slots.push(Ok(o
                .plans
                .iter()
                .map(|(row, d)| settled_row(row.clone(), d))
                .collect())),
        }
    }
    let progress = Progress::new(acting.len(), if opts.check { "plan" } else { "provision" });
    let by_name: Arc<BTreeMap<String, Arc<Observed>>> = Arc::new(
        acting
            .iter()
            .map(|o| (o.member.name.clone(), o.clone()))
            .collect(),
    );
    let acting_members: Vec<Member> = acting.iter().map(|o| o.member.clone()).collect();
    let acted = {
        let (t, r, c, b, opts) = (transport, registry, collected, by_name, opts.clone());
        map_members(acting_members, opts.jobs, &progress, move |m| {
            let (t, r, c, o, opts) = (
                t.clone(),
                r.clone(),
                c.clone(),
                b[&m.name].clone(),
                opts.clone(),
            );
            async move { act_on_member(t, r, c, &o, &opts).await }
        })
        .await
    };
    let mut acted = acted.into_iter();
    let mut out: Vec<Row> = Vec::new();
    for slot in slots {
        match slot {
            Ok(rows) => out.extend(rows),
            Err(o) => out.extend(acted.next().flatten().unwrap_or_else(|| {
                rows_for_all(
                    &o.member,
                    State::Error,
                    "internal error: this member's task failed",
                    None,
                )
            })),
        }
    }
    // Every provision row says what was done, `none` included.
    for row in &mut out {
        row.action.get_or_insert(Action::None);
    }
    out
}

/// Phase 3 for one member: push and verify each provider that needs a key.
async fn act_on_member(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    keys: Arc<BTreeMap<String, Result<CollectedKey, String>>>,
    observed: &Observed,
    opts: &ProvisionOptions,
) -> Vec<Row> {
    let member = &observed.member;
    let mut rows = Vec::new();
    let session = if opts.check {
        None
    } else {
        match transport.connect(member).await {
            Ok(s) => Some(s),
            Err(e) => {
                // Lost between phases: every provider of this member is unreachable now.
                return unreachable_rows(member, &e);
            }
        }
    };
    for (row, decision) in &observed.plans {
        if *decision != Decision::Push {
            rows.push(settled_row(row.clone(), decision));
            continue;
        }
        let provider = registry
            .get(&row.provider)
            .expect("planned providers exist");
        let key = match keys.get(&provider.name) {
            Some(Ok(k)) => k,
            Some(Err(why)) => {
                let mut r = row.clone();
                r.action = Some(Action::None);
                r.state = if r.state == State::Ready {
                    State::Ready
                } else {
                    State::NeedsAuth
                };
                r.detail = format!("{}; {why}", r.detail);
                rows.push(r);
                continue;
            }
            None => unreachable!("every planned push has a collected key entry"),
        };
        if opts.check {
            let mut r = row.clone();
            r.action = Some(Action::WouldPush);
            r.detail = format!(
                "{}; would install {} and verify it",
                r.detail,
                key.describe(provider, &member.env_file)
            );
            rows.push(r);
            continue;
        }
        let session = session.as_deref().expect("connected when not checking");
        rows.push(push_and_verify(session, member, provider, &registry, key, observed, opts).await);
    }
    if let Some(s) = session {
        s.close().await;
    }
    rows
}

fn audit(
    opts: &ProvisionOptions,
    member: &Member,
    provider: &Provider,
    action: &str,
    key: &CollectedKey,
) {
    let entry = AuditEntry::new(
        &member.name,
        &provider.name,
        action,
        key.source.as_str(),
        Some(key.fingerprint()),
    );
    if let Err(e) = audit::append(&opts.audit_dir, &entry) {
        tracing::warn!("could not write the audit log: {e}");
    }
}

/// Install `key` on one member for one provider, verify it, undo on failure.
async fn push_and_verify(
    session: &dyn Session,
    member: &Member,
    provider: &Provider,
    registry: &Registry,
    key: &CollectedKey,
    observed: &Observed,
    opts: &ProvisionOptions,
) -> Row {
    let base = observed
        .plans
        .iter()
        .find(|(r, _)| r.provider == provider.name)
        .map(|(r, _)| r.clone())
        .expect("row exists");
    let fail = |detail: String, state: State| Row {
        state,
        action: Some(Action::Failed),
        source: None,
        detail,
        ..base.clone()
    };
    // 1. Install.
    let installed = match &provider.install {
        Install::EnvFile { var } => {
            let input = match envfile::push_input(&[(var.as_str(), &key.value)]) {
                Ok(i) => i,
                Err(e) => {
                    return fail(
                        format!("key refused before any push: {e}"),
                        State::NeedsAuth,
                    );
                }
            };
            let cmd = envfile::push_command(&member.env_file, &[var.as_str()]);
            match session
                .exec(&cmd, Input::Secret(&input), member.command_timeout)
                .await
            {
                Ok(out) => match envfile::push_outcome(&out) {
                    Ok(o) => Ok(o),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(format!("push failed: {e}")),
            }
        }
        Install::LoginCommand { args } => {
            let Some(bin) = observed.binaries.get(&provider.name) else {
                return fail("CLI path unknown".into(), State::Error);
            };
            let cmd = format!(
                "f={}; if [ -f \"$f\" ] && [ -r \"$f\" ]; then set -a; . \"$f\"; set +a; fi; cd \"$HOME\" && exec {} {}",
                quote_remote_path(&member.env_file),
                quote(bin),
                crate::shell::join(args)
            );
            let mut bytes = key.value.expose_secret().as_bytes().to_vec();
            bytes.push(b'\n');
            let input: SecretSlice<u8> = bytes.into();
            match session
                .exec(&cmd, Input::Secret(&input), member.command_timeout)
                .await
            {
                Ok(out) if out.exit == Some(0) => Ok(PushOutcome::Pushed),
                Ok(out) => Err(format!(
                    "`{} {}` failed (exit {:?}): {}",
                    provider.binary,
                    args.join(" "),
                    out.exit,
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                )),
                Err(e) => Err(format!("login command failed: {e}")),
            }
        }
    };
    let outcome = match installed {
        Ok(o) => o,
        Err(why) => {
            audit(opts, member, provider, "failed", key);
            return fail(why, State::Error);
        }
    };
    // 2. Verify with the prompt.
    let mut only = member.clone();
    only.providers = vec![provider.name.clone()];
    let verified = match observe(session, &only, registry, true).await {
        Ok(obs) => judge_one(&only, provider, &obs, SystemTime::now()).0,
        Err(why) => Row {
            state: State::Error,
            detail: why,
            ..base.clone()
        },
    };
    let action = match outcome {
        PushOutcome::Pushed => Action::Pushed,
        PushOutcome::Unchanged => Action::Unchanged,
    };
    if verified.state == State::Ready {
        audit(opts, member, provider, action.as_str(), key);
        return Row {
            state: State::Ready,
            source: Some("pushed_key".into()),
            action: Some(action),
            version: verified.version.or(base.version.clone()),
            detail: format!(
                "{} ({}) verified: {}",
                key.label(provider),
                key.source.as_str(),
                verified.detail
            ),
            ..base.clone()
        };
    }
    // 3. Undo.
    let mut detail = format!(
        "{} did not verify: {}",
        key.label(provider),
        verified.detail
    );
    if outcome == PushOutcome::Pushed && matches!(provider.install, Install::EnvFile { .. }) {
        let cmd = envfile::restore_command(&member.env_file);
        match session
            .exec(&cmd, Input::None, member.command_timeout)
            .await
        {
            Ok(out) if envfile::restore_outcome(&out).is_ok() => {
                detail.push_str("; previous env file restored");
                audit(opts, member, provider, "restored", key);
            }
            Ok(out) => detail.push_str(&format!(
                "; restoring the previous env file failed: {}",
                envfile::restore_outcome(&out)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            )),
            Err(e) => detail.push_str(&format!("; restoring the previous env file failed: {e}")),
        }
    }
    audit(opts, member, provider, "failed", key);
    fail(detail, verified.state)
}
