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
//! OAuth login file instead (replaced atomically, verified, undone on failure), after a warning —
//! but only a login whose refresh token does not rotate (`rotates = false` in the provider's
//! definition), unless `--share-rotating-login` is given too: a rotating refresh token is
//! single-use, and hosts sharing one login log each other out.
//!
//! `--check` stops after phase 2 without prompting for keys and writes nothing anywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::fleet::{Progress, map_members};
use crate::inventory::Member;
use crate::keys::{KeyBroker, env_remedy};
use crate::operator::shared_login;
use crate::plan::{Before, Decision, decide, share_refusal};
use crate::probe::MemberObservation;
use crate::provider::{Provider, Registry};
use crate::row::{Action, Row, State};
use crate::ssh::Transport;
use crate::sweep::{judge_one, observe};

mod install;
mod payload;
#[cfg(test)]
mod tests;
pub mod transaction;

use install::install_and_verify;
use payload::{Offer, Payload, Payloads};

/// Told of each member's final rows (and the time the member took) the moment they are final,
/// from the member's task: see [`ProvisionOptions::on_member`].
pub type MemberRows = Arc<dyn Fn(&[Row], Duration) + Send + Sync>;

/// Options for one provisioning run.
#[derive(Clone)]
pub struct ProvisionOptions {
    /// Streams each member's rows as soon as they are final (`--format jsonl`): a member with
    /// nothing to install when its observation ends, the others when their installs end. The
    /// rows are those [`provision`] returns, `action` included; calls may come from several
    /// threads at once, in any order.
    pub on_member: Option<MemberRows>,
    pub check: bool,
    pub jobs: usize,
    /// Where the audit log goes (`$FLEETAUTH_HOME`).
    pub audit_dir: PathBuf,
    /// Copy the operator's own OAuth login where no key can be had.
    pub share_oauth: bool,
    /// With `share_oauth`, also copy logins whose refresh token rotates.
    pub share_rotating_login: bool,
    /// Keep the file a verified push replaced as `<file>.fleetauth-prev` (default: removed).
    pub keep_backup: bool,
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
        .connect(&member.target())
        .await
        .map_err(|e| member.unreachable_rows(&e))?;
    let obs = observe(session.as_ref(), &member, &registry, true).await;
    session.close().await;
    let obs: MemberObservation = obs.map_err(|why| member.rows(State::Error, &why.to_string()))?;
    let now = SystemTime::now();
    let mut plans = Vec::new();
    let mut binaries = BTreeMap::new();
    for provider in member.providers.iter().filter_map(|p| registry.get(p)) {
        let (row, home) = judge_one(&member, provider, &obs, now);
        let offer = offers.get(&provider.name).cloned().unwrap_or_default();
        let decision = decide(
            &provider.name,
            member.auth_mode(&provider.name),
            Before {
                state: row.state,
                home,
            },
            offer.key,
            offer.share,
            &env_remedy(provider),
        )
        .with_share_refusal(offer.share_refused.as_deref());
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
                let has_login = opts.share_oauth && shared_login(p).is_ok();
                let share_refused = has_login
                    .then(|| match p.keys.is_empty() {
                        // A CLI that takes no pushed credential takes no copied login either.
                        true => Some(format!(
                            "fleetauth pushes nothing for {}: not even a copy of your login",
                            p.name
                        )),
                        false => {
                            share_refusal(&p.name, p.login_rotates(), opts.share_rotating_login)
                        }
                    })
                    .flatten();
                let share = has_login && share_refused.is_none();
                (
                    p.name.clone(),
                    Offer {
                        key,
                        share,
                        share_refused,
                    },
                )
            })
            .collect(),
    );

    // Phase 1: observe and decide, every member at once. A member with nothing to install is
    // final once observed; the others' observation time is kept for their final rows.
    let observed_in: Arc<Mutex<BTreeMap<String, Duration>>> = Arc::default();
    let mut progress = Progress::new(members.len(), "probe");
    if let Some(listener) = opts.on_member.clone() {
        let observed_in = observed_in.clone();
        progress = progress.on_finished(move |o: &Result<Observed, Vec<Row>>, took| match o {
            Err(rows) => listener(&with_actions(rows.clone()), took),
            Ok(o) => match settled(o) {
                Some(rows) => listener(&with_actions(rows), took),
                None => {
                    let mut times = observed_in.lock().expect("not poisoned");
                    times.insert(o.member.name.clone(), took);
                }
            },
        });
    }
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
        .map(|(o, m)| o.unwrap_or_else(|| Err(Row::internal_failure(m.subject(), &m.providers))))
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
        let key = broker.collect(p, !opts.check);
        if let Ok(k) = &key
            && k.shape_unchecked
        {
            eprintln!(
                "warning: the {} key from {} ({}) matches none of its known shapes; pushed as {} because of --allow-key-shape {} (this run only)",
                p.name,
                k.source.as_str(),
                k.masked(),
                k.push_key(p).target(),
                p.name
            );
        }
        payloads.keys.insert(p.name.clone(), key);
    }
    let sharing = needed(&Decision::ShareOauth);
    if !sharing.is_empty() && !opts.check {
        let names = |rotating: bool| {
            sharing
                .iter()
                .filter(|p| (p.login_rotates() != Some(false)) == rotating)
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
        };
        let (rotating, stable) = (names(true), names(false));
        if !rotating.is_empty() {
            eprintln!(
                "warning: --share-rotating-login copies your own {} login to members. Its refresh token \
                 rotates: when one holder refreshes, every other one is logged out, your own login \
                 included. Prefer a non-rotating credential per provider (an API key, a claude \
                 setup-token, a codex access token), or a login per member.",
                rotating.join("/")
            );
        }
        if !stable.is_empty() {
            eprintln!(
                "warning: --share-oauth copies your own {} login to members (its refresh token does not \
                 rotate: every copy keeps working, and revoking it logs them all out).",
                stable.join("/")
            );
        }
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
            Ok(o) => match settled(&o) {
                Some(rows) => slots.push(Ok(rows)),
                None => {
                    let o = Arc::new(o);
                    acting.push(o.clone());
                    slots.push(Err(o));
                }
            },
        }
    }
    let mut progress = Progress::new(acting.len(), if opts.check { "plan" } else { "provision" });
    if let Some(listener) = opts.on_member.clone() {
        progress = progress.on_finished(move |rows: &Vec<Row>, took| {
            let member = rows.first().map(|r| r.member.as_str()).unwrap_or_default();
            let observing = observed_in
                .lock()
                .expect("not poisoned")
                .get(member)
                .copied();
            listener(
                &with_actions(rows.clone()),
                took + observing.unwrap_or_default(),
            );
        });
    }
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
            Err(o) => {
                out.extend(acted.next().flatten().unwrap_or_else(|| {
                    Row::internal_failure(o.member.subject(), &o.member.providers)
                }))
            }
        }
    }
    with_actions(out)
}

/// Every provision row says what was done, `none` included.
fn with_actions(mut rows: Vec<Row>) -> Vec<Row> {
    for row in &mut rows {
        row.action.get_or_insert(Action::None);
    }
    rows
}

/// The final rows of an observed member with nothing to install; None when something is.
fn settled(o: &Observed) -> Option<Vec<Row>> {
    if o.plans.iter().any(|(_, d)| d.acts()) {
        return None;
    }
    Some(
        o.plans
            .iter()
            .map(|(row, d)| d.settle(row.clone()))
            .collect(),
    )
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
        match transport.connect(&member.target()).await {
            Ok(s) => Some(s),
            // Lost between phases: every provider of this member is unreachable now.
            Err(e) => return member.unreachable_rows(&e),
        }
    };
    for (row, decision) in &observed.plans {
        if !decision.acts() {
            rows.push(decision.settle(row.clone()));
            continue;
        }
        let provider = registry
            .get(&row.provider)
            .expect("planned providers exist");
        let payload: Option<Result<Payload<'_>, String>> = match decision {
            Decision::Push => payloads
                .keys
                .get(&provider.name)
                .map(|r| r.as_ref().map(Payload::Key).map_err(ToString::to_string)),
            _ => payloads
                .logins
                .get(&provider.name)
                .map(|r| r.as_ref().map(Payload::Login).map_err(ToString::to_string)),
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
        rows.push(install_and_verify(session, member, provider, payload, observed, opts).await);
    }
    if let Some(s) = session {
        s.close().await;
    }
    rows
}
