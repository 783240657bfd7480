//! `fleetauth login`: each member's own CLI login, relayed to the operator.
//!
//! A subscription login must be made *on each member*: copying one login to many hosts breaks
//! them all as soon as one refreshes a rotating token. So fleetauth runs the provider's own
//! login command on the member — device code, paste-back or browser-poll, as its `[login]` data
//! says ([`def`]) — and relays what the CLI prints (URL, code, state) to the operator as events
//! ([`Event`]); a pasted code goes back to that member's login only ([`input`]). Afterwards each
//! member is verified with the deep probe, like `sweep --deep`, and reported as rows.
//!
//! Per member: connect once, probe (which providers need a login, where each CLI is), run the
//! logins on that connection at once ([`relay`]), probe again with the minimal prompt.

pub use crate::login_flow as def;
pub mod input;
pub mod relay;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::inventory::Member;
use crate::provider::Registry;
use crate::row::{Row, State};
use crate::ssh::{Session, Transport};
use def::Flow;
use input::CodeBroker;
use relay::{LoginJob, Outcome, run_login};

crate::spelled! {
    /// What happened to one member × provider login (`--format jsonl`'s `event`).
    pub enum EventKind {
        /// The login command was started on the member (`flow` says which kind).
        Started = "started",
        /// A URL to open, no code (paste_back, browser_poll).
        Url = "url",
        /// A URL and the user code to enter there (device_code).
        Code = "code",
        /// Waiting: for approval, or for the pasted code (`detail`).
        Waiting = "waiting",
        /// The code ran out and a new one was started (a `code` event follows).
        Renewed = "renewed",
        /// The CLI reports the login done.
        Approved = "approved",
        /// The login failed (`detail`: the vendor's reason and the remedy, or what happened).
        Failed = "failed",
        /// No login was needed or possible (`detail` says why).
        Skipped = "skipped",
        /// The member was probed afterwards (`state`, `detail`: the row).
        Verified = "verified",
    }
}

/// One event of `fleetauth login` (one JSON object per line with `--format jsonl`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Event {
    pub event: EventKind,
    pub member: String,
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Event {
    pub fn new(event: EventKind, member: &str, provider: &str) -> Event {
        Event {
            event,
            member: member.to_string(),
            provider: provider.to_string(),
            flow: None,
            url: None,
            code: None,
            state: None,
            detail: None,
        }
    }

    /// The event as one line for a person (member text already escaped when built).
    pub fn human(&self) -> String {
        let what = match self.event {
            EventKind::Started => format!(
                "starting the login ({})",
                self.flow.map(|f| f.as_str()).unwrap_or("?")
            ),
            EventKind::Url => format!("open {}", self.url.as_deref().unwrap_or("?")),
            EventKind::Code => format!(
                "open {} and enter the code {}",
                self.url.as_deref().unwrap_or("?"),
                self.code.as_deref().unwrap_or("?")
            ),
            EventKind::Verified => format!(
                "verified: {}",
                self.state.map(|s| s.as_str()).unwrap_or("?")
            ),
            other => other.as_str().to_string(),
        };
        match (&self.detail, self.event) {
            (Some(d), k) if k != EventKind::Verified => {
                format!("{} {}: {what} {d}", self.member, self.provider)
            }
            (Some(d), _) => format!("{} {}: {what} ({d})", self.member, self.provider),
            (None, _) => format!("{} {}: {what}", self.member, self.provider),
        }
    }
}

/// Where events go (the command prints them as they come).
#[derive(Clone)]
pub struct Sink(mpsc::UnboundedSender<Event>);

impl Sink {
    pub fn new() -> (Sink, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Sink(tx), rx)
    }

    pub fn send(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

/// Where a login's events go, where pasted codes come from, and the Ctrl-C signal.
#[derive(Clone)]
pub struct Relay {
    pub sink: Sink,
    pub broker: CodeBroker,
    pub cancel: watch::Receiver<bool>,
}

/// How the logins run.
#[derive(Clone)]
pub struct LoginOptions {
    /// The providers to log in, as named on the command line.
    pub providers: Vec<String>,
    /// Replaces each provider's `[login] deadline`.
    pub deadline: Option<Duration>,
    /// Where the audit log lives (None: no audit, for unit tests).
    pub audit_dir: Option<PathBuf>,
    pub jobs: usize,
    /// How long a credential must stay usable to be `ready` (`--valid-for`): a login that
    /// lapses sooner is logged in again.
    pub valid_for: Duration,
}

/// Every selected member: rows for each requested provider it runs, in inventory order.
pub async fn login_fleet(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    members: Vec<Member>,
    opts: LoginOptions,
    relay: Relay,
    progress: &crate::fleet::Progress,
) -> Vec<Row> {
    let subjects = members.clone();
    let jobs = opts.jobs;
    let rows = crate::fleet::map_members(members, jobs, progress, move |m| {
        login_member(
            transport.clone(),
            registry.clone(),
            m,
            opts.clone(),
            relay.clone(),
        )
    })
    .await;
    rows.into_iter()
        .zip(subjects)
        .flat_map(|(rows, m)| {
            rows.unwrap_or_else(|| Row::internal_failure(m.subject(), &m.providers))
        })
        .collect()
}

/// The member's providers among the requested ones, in the member's order.
fn wanted(member: &Member, opts: &LoginOptions) -> Vec<String> {
    member
        .providers
        .iter()
        .filter(|p| opts.providers.contains(p))
        .cloned()
        .collect()
}

/// One member end to end: probe, log in what needs it, verify.
pub async fn login_member(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    member: Member,
    opts: LoginOptions,
    relay: Relay,
) -> Vec<Row> {
    let Relay {
        sink,
        broker,
        cancel,
    } = relay;
    let providers = wanted(&member, &opts);
    if providers.is_empty() {
        return Vec::new();
    }
    let mut scoped = member.clone();
    scoped.providers = providers.clone();
    let session: Arc<dyn Session> = match transport.connect(&scoped.target()).await {
        Ok(s) => Arc::from(s),
        Err(e) => return scoped.unreachable_rows(&e),
    };
    let obs = match crate::sweep::observe(session.as_ref(), &scoped, &registry, false).await {
        Ok(obs) => obs,
        Err(why) => {
            session.close().await;
            return scoped.rows(State::Error, &why.to_string());
        }
    };
    let now = SystemTime::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for name in &providers {
        let Some(provider) = registry.get(name) else {
            continue;
        };
        let (row, _) = crate::sweep::judge_one(&scoped, provider, &obs, opts.valid_for, now);
        let skip = |why: String| {
            let mut e = Event::new(EventKind::Skipped, &scoped.name, name);
            e.state = Some(row.state);
            e.detail = Some(why);
            sink.send(e);
        };
        match (&provider.login, row.state) {
            (_, State::Ready) => skip("already ready".into()),
            (None, _) => skip(format!(
                "{name} has no login flow fleetauth can relay (no [login] in its definition)"
            )),
            (Some(def), State::NeedsAuth) => {
                let binary = obs
                    .providers
                    .get(name)
                    .and_then(|p| p.binary.clone())
                    .unwrap_or_else(|| provider.binary.clone());
                let job = LoginJob {
                    member: scoped.name.clone(),
                    provider: name.clone(),
                    def: def.clone(),
                    binary,
                    env_file: scoped.env_file.clone(),
                    deadline: opts.deadline.unwrap_or(def.deadline),
                    key_pattern: provider.key_pattern.clone(),
                };
                let (session, sink, broker, cancel) = (
                    session.clone(),
                    sink.clone(),
                    broker.clone(),
                    cancel.clone(),
                );
                let name = name.clone();
                tasks.spawn(
                    async move { (name, run_login(session, job, sink, broker, cancel).await) },
                );
            }
            (Some(_), state) => skip(format!("{state}: a login cannot help ({})", row.detail)),
        }
        rows.push(row);
    }
    let mut outcomes: Vec<(String, Outcome)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(o) => outcomes.push(o),
            Err(e) => tracing::warn!("a login task of {} failed: {e}", scoped.name),
        }
    }
    for (name, outcome) in &outcomes {
        audit(&opts, &scoped.name, name, outcome);
    }
    let logged: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| *o != Outcome::Interrupted)
        .map(|(n, _)| n.clone())
        .collect();
    let verified = if logged.is_empty() {
        None
    } else {
        let mut check = scoped.clone();
        check.providers = logged.clone();
        match crate::sweep::observe(session.as_ref(), &check, &registry, true).await {
            Ok(obs) => Some(obs),
            Err(why) => {
                for row in rows.iter_mut().filter(|r| logged.contains(&r.provider)) {
                    row.state = State::Error;
                    row.detail = format!("verification failed: {why}");
                }
                None
            }
        }
    };
    session.close().await;
    let now = SystemTime::now();
    for row in rows.iter_mut() {
        let Some((_, outcome)) = outcomes.iter().find(|(n, _)| *n == row.provider) else {
            continue;
        };
        if let (Some(obs), Some(provider)) = (&verified, registry.get(&row.provider))
            && *outcome != Outcome::Interrupted
        {
            *row = crate::sweep::judge_one(&scoped, provider, obs, opts.valid_for, now).0;
        }
        row.detail = match outcome {
            Outcome::Approved => format!("logged in on the member; {}", row.detail),
            Outcome::Failed(why) => format!("login failed: {why}; {}", row.detail),
            Outcome::Interrupted => format!("login interrupted; {}", row.detail),
        };
        if *outcome != Outcome::Interrupted {
            let mut e = Event::new(EventKind::Verified, &row.member, &row.provider);
            e.state = Some(row.state);
            e.detail = Some(row.detail.clone());
            sink.send(e);
        }
    }
    rows
}

fn audit(opts: &LoginOptions, member: &str, provider: &str, outcome: &Outcome) {
    let Some(dir) = &opts.audit_dir else { return };
    let action = match outcome {
        Outcome::Approved => "login_approved",
        Outcome::Failed(_) => "login_failed",
        Outcome::Interrupted => "login_interrupted",
    };
    let entry = crate::audit::AuditEntry::new(member, provider, action, "member_login", None);
    if let Err(e) = crate::audit::append(dir, &entry) {
        tracing::warn!("audit log not written: {e}");
    }
}

#[cfg(test)]
mod tests;
