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
//! With `--share-oauth`, a provider for which no key can be had gets a copy of the operator's own
//! OAuth login file instead (replaced atomically, verified, undone on failure), after a warning:
//! refresh tokens rotate, and hosts sharing one login break each other.
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
use crate::keys::{CollectedKey, KeyBroker};
use crate::operator::{SharedLogin, shared_login};
use crate::plan::{Before, Decision, Strategy, decide};
use crate::probe::MemberObservation;
use crate::provider::{Install, Provider, Registry};
use crate::remote_file;
use crate::report::{Action, Row};
use crate::shell::quote;
use crate::ssh::{Input, Session, Transport};
use crate::sweep::{judge_one, observe};

/// Options for one provisioning run.
#[derive(Clone)]
pub struct ProvisionOptions {
    pub check: bool,
    pub jobs: usize,
    /// Where the audit log goes (`$FLEETAUTH_HOME`).
    pub audit_dir: PathBuf,
    /// Copy the operator's own OAuth login where no key can be had.
    pub share_oauth: bool,
}

/// What can be offered to a provider's members, known before any is needed.
#[derive(Debug, Clone, Copy, Default)]
struct Offer {
    key: bool,
    share: bool,
}

/// What phase 2 collected, per provider.
#[derive(Default)]
struct Payloads {
    keys: BTreeMap<String, Result<CollectedKey, String>>,
    logins: BTreeMap<String, Result<SharedLogin, String>>,
}

/// What phase 3 installs on one member for one provider.
enum Payload<'a> {
    Key(&'a CollectedKey),
    Login(&'a SharedLogin),
}

impl Payload<'_> {
    fn label(&self, provider: &Provider) -> String {
        match self {
            Payload::Key(k) => k.label(provider),
            Payload::Login(l) => format!("your own {} login ({})", provider.name, l.rel),
        }
    }
    fn source(&self) -> &'static str {
        match self {
            Payload::Key(k) => k.source.as_str(),
            Payload::Login(_) => "share_oauth",
        }
    }
    fn fingerprint(&self) -> String {
        match self {
            Payload::Key(k) => k.fingerprint(),
            Payload::Login(l) => l.fingerprint.clone(),
        }
    }
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
    offers: Arc<BTreeMap<String, Offer>>,
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
        let offer = offers.get(&provider.name).copied().unwrap_or_default();
        let decision = decide(
            &provider.name,
            member.auth_mode(&provider.name),
            Before {
                state: row.state,
                home,
            },
            offer.key,
            offer.share,
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
            };
            row.detail = format!("{how}: {}", row.detail);
        }
        Decision::NeedsAuth(remedy) => {
            row.state = State::NeedsAuth;
            row.detail = format!("{}; {remedy}", row.detail);
        }
        Decision::Skip(_) | Decision::Push | Decision::ShareOauth => {}
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
    let offers: Arc<BTreeMap<String, Offer>> = Arc::new(
        wanted
            .iter()
            .map(|p| {
                let key = broker.availability(p, !opts.check).is_available();
                let share = opts.share_oauth && shared_login(p).is_ok();
                (p.name.clone(), Offer { key, share })
            })
            .collect(),
    );

    // Phase 1: observe and decide, every member at once.
    let progress = Progress::new(members.len(), "probe");
    let fallback = members.clone();
    let observed = {
        let (t, r, a) = (transport.clone(), registry.clone(), offers.clone());
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

    // Phase 2: collect each needed key (or login) once, one provider at a time.
    let needed = |kind: &Decision| -> Vec<&Provider> {
        let mut v: Vec<&Provider> = observed
            .iter()
            .flatten()
            .flat_map(|o| o.plans.iter())
            .filter(|(_, d)| d == kind)
            .filter_map(|(row, _)| registry.get(&row.provider))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.dedup_by(|a, b| a.name == b.name);
        v
    };
    let mut payloads = Payloads::default();
    for p in needed(&Decision::Push) {
        payloads
            .keys
            .insert(p.name.clone(), broker.collect(p, !opts.check));
    }
    let sharing = needed(&Decision::ShareOauth);
    if !sharing.is_empty() && !opts.check {
        eprintln!(
            "warning: --share-oauth copies your own {} login to members. Refresh tokens rotate (codex, \
             likely claude): when one host refreshes, the others and your own login break. Prefer an \
             API key per provider, or a login per member.",
            sharing
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join("/")
        );
    }
    for p in sharing {
        payloads.logins.insert(p.name.clone(), shared_login(p));
    }
    let payloads = Arc::new(payloads);

    // Phase 3: act where a key is needed, every member at once.
    let acting: Vec<Arc<Observed>> = Vec::new();
    let mut slots: Vec<Result<Vec<Row>, Arc<Observed>>> = Vec::new();
    let mut acting = acting;
    for o in observed {
        match o {
            Err(rows) => slots.push(Ok(rows)),
            Ok(o) if o.plans.iter().any(|(_, d)| d.acts()) => {
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
        let (t, r, c, b, opts) = (transport, registry, payloads, by_name, opts.clone());
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

/// Phase 3 for one member: install, verify (and undo) each provider that needs it.
async fn act_on_member(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    payloads: Arc<Payloads>,
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
            // Lost between phases: every provider of this member is unreachable now.
            Err(e) => return unreachable_rows(member, &e),
        }
    };
    for (row, decision) in &observed.plans {
        if !decision.acts() {
            rows.push(settled_row(row.clone(), decision));
            continue;
        }
        let provider = registry
            .get(&row.provider)
            .expect("planned providers exist");
        let payload = match decision {
            Decision::Push => payloads
                .keys
                .get(&provider.name)
                .map(|r| r.as_ref().map(Payload::Key)),
            _ => payloads
                .logins
                .get(&provider.name)
                .map(|r| r.as_ref().map(Payload::Login)),
        };
        let payload = match payload {
            Some(Ok(p)) => p,
            Some(Err(why)) => {
                let mut r = row.clone();
                r.action = Some(Action::None);
                if r.state != State::Ready {
                    r.state = State::NeedsAuth;
                }
                r.detail = format!("{}; {why}", r.detail);
                rows.push(r);
                continue;
            }
            None => unreachable!("phase 2 collects for every acting decision"),
        };
        if opts.check {
            let what = match &payload {
                Payload::Key(k) => k.describe(provider, &member.env_file),
                Payload::Login(l) => format!(
                    "a copy of your own login into {} ({})",
                    l.rel, l.fingerprint
                ),
            };
            let mut r = row.clone();
            r.action = Some(Action::WouldPush);
            r.detail = format!("{}; would install {what} and verify it", r.detail);
            rows.push(r);
            continue;
        }
        let session = session.as_deref().expect("connected when not checking");
        rows.push(
            install_and_verify(
                session, member, provider, &registry, payload, observed, opts,
            )
            .await,
        );
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

/// What an install did, and how to undo it.
struct Installed {
    outcome: PushOutcome,
    /// The command that puts the previous state back, when there is one.
    undo: Option<String>,
}

/// Put `payload` on the member: env file, login command, or a copied login file.
async fn install(
    session: &dyn Session,
    member: &Member,
    provider: &Provider,
    payload: &Payload<'_>,
    binary: Option<&String>,
) -> Result<Installed, String> {
    let (cmd, input, undo): (String, SecretSlice<u8>, Option<String>) =
        match (payload, &provider.install) {
            (Payload::Key(key), Install::EnvFile { var }) => (
                envfile::push_command(&member.env_file, &[var.as_str()]),
                envfile::push_input(&[(var.as_str(), &key.value)])
                    .map_err(|e| format!("key refused before any push: {e}"))?,
                Some(envfile::restore_command(&member.env_file)),
            ),
            (Payload::Key(key), Install::LoginCommand { args }) => {
                let bin = binary.ok_or("CLI path unknown")?;
                let (backup, restore) = login_command_backup(provider);
                let cmd = format!(
                    "{}; {backup} cd \"$HOME\" && exec {} {}",
                    envfile::source_command(&member.env_file),
                    quote(bin),
                    crate::shell::join(args)
                );
                let mut bytes = key.value.expose_secret().as_bytes().to_vec();
                bytes.push(b'\n');
                let undo = format!(
                    "{}; {restore} echo restored",
                    envfile::source_command(&member.env_file)
                );
                (cmd, bytes.into(), Some(undo))
            }
            (Payload::Login(login), _) => {
                let (env, default) = (
                    provider.config_home.env.as_deref(),
                    provider.config_home.default.as_str(),
                );
                (
                    remote_file::push_command(env, default, &login.rel),
                    login.bytes.expose_secret().to_vec().into(),
                    Some(remote_file::restore_command(env, default, &login.rel)),
                )
            }
        };
    let out = session
        .exec(&cmd, Input::Secret(&input), member.command_timeout)
        .await
        .map_err(|e| format!("install failed: {e}"))?;
    let outcome = match (payload, &provider.install) {
        (Payload::Key(_), Install::EnvFile { .. }) => {
            envfile::push_outcome(&out).map_err(|e| e.to_string())?
        }
        (Payload::Login(_), _) => match remote_file::push_outcome(&out)? {
            true => PushOutcome::Pushed,
            false => PushOutcome::Unchanged,
        },
        (Payload::Key(_), Install::LoginCommand { .. }) if out.exit == Some(0) => {
            PushOutcome::Pushed
        }
        (Payload::Key(_), Install::LoginCommand { args }) => {
            return Err(format!(
                "`{} {}` failed (exit {:?}): {}",
                provider.binary,
                args.join(" "),
                out.exit,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
    };
    Ok(Installed {
        undo: undo.filter(|_| outcome == PushOutcome::Pushed),
        outcome,
    })
}

/// Shell statements that back up a provider's credential files before its login command
/// rewrites them, and that put them back (or remove what the login created).
fn login_command_backup(provider: &Provider) -> (String, String) {
    let home = crate::probe::config_home_assignment("h", provider);
    let (mut backup, mut restore) = (format!("{home}; "), format!("{home}; "));
    for rel in crate::probe::credential_files(provider) {
        let (file, prev) = (
            format!("\"$h\"/{}", quote(rel)),
            format!("\"$h\"/{}", quote(&format!("{rel}.fleetauth-prev"))),
        );
        backup.push_str(&format!(
            "if [ -f {file} ]; then cp -p {file} {prev} || exit 70; else rm -f {prev}; fi; "
        ));
        restore.push_str(&format!(
            "if [ -f {prev} ]; then mv -f {prev} {file}; else rm -f {file}; fi; "
        ));
    }
    (backup, restore)
}

/// Install on one member for one provider, verify with the prompt, undo on failure.
async fn install_and_verify(
    session: &dyn Session,
    member: &Member,
    provider: &Provider,
    registry: &Registry,
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
    let fail = |detail: String, state: State| Row {
        state,
        action: Some(Action::Failed),
        source: None,
        detail,
        ..base.clone()
    };
    let installed = match install(
        session,
        member,
        provider,
        &payload,
        observed.binaries.get(&provider.name),
    )
    .await
    {
        Ok(i) => i,
        Err(why) => {
            audit(opts, member, provider, "failed", &payload);
            return fail(why, State::Error);
        }
    };
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
    let action = match installed.outcome {
        PushOutcome::Pushed => Action::Pushed,
        PushOutcome::Unchanged => Action::Unchanged,
    };
    let label = payload.label(provider);
    if verified.state == State::Ready {
        audit(opts, member, provider, action.as_str(), &payload);
        let source = match payload {
            Payload::Key(_) => "pushed_key",
            Payload::Login(_) => "shared_oauth",
        };
        return Row {
            state: State::Ready,
            source: Some(source.into()),
            action: Some(action),
            version: verified.version.or(base.version.clone()),
            detail: format!(
                "{label} ({}) verified: {}",
                payload.source(),
                verified.detail
            ),
            ..base.clone()
        };
    }
    let mut detail = format!("{label} did not verify: {}", verified.detail);
    if let Some(undo) = installed.undo {
        match session
            .exec(&undo, Input::None, member.command_timeout)
            .await
        {
            Ok(out) if out.exit == Some(0) => {
                detail.push_str("; previous state restored");
                audit(opts, member, provider, "restored", &payload);
            }
            Ok(out) => detail.push_str(&format!(
                "; restoring the previous state failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => detail.push_str(&format!("; restoring the previous state failed: {e}")),
        }
    }
    audit(opts, member, provider, "failed", &payload);
    fail(detail, verified.state)
}
