//! The read-only health sweep of one member: connect, run the probe script once, judge each
//! provider. Nothing on the member is written; without `--deep` no model request is made.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::assess::{State, assess, credential_home};
use crate::inventory::Member;
use crate::probe::{MemberObservation, ProbeRequest, build_script, parse_output};
use crate::provider::{Provider, Registry};
use crate::remote::Script;
use crate::row::CredentialHome;
use crate::row::Row;
use crate::ssh::{Input, Session, SshError, Transport};

/// Margin kept between a prompt's own deadline and the member's command deadline, so the
/// prompt's timeout is what reports the hang (with its reason), not the channel's.
const PROMPT_MARGIN: Duration = Duration::from_secs(5);

/// The prompt deadline of `provider` on `member`: the member's `probe_timeout`, else the
/// provider's, capped to leave [`PROMPT_MARGIN`] of the member's command deadline. The one
/// figure the probe script runs the prompt under and the verdict reports a hang against.
pub fn prompt_deadline(member: &Member, provider: &Provider) -> Duration {
    let wanted = member.probe_timeout.unwrap_or(provider.probe.timeout);
    let cap = member
        .command_timeout
        .saturating_sub(PROMPT_MARGIN)
        .max(Duration::from_secs(1));
    wanted.min(cap)
}

/// What to ask `member` about its providers: the probe the sweep and provisioning run.
pub fn probe_request<'a>(
    member: &'a Member,
    registry: &'a Registry,
    deep: bool,
) -> ProbeRequest<'a> {
    let providers = member
        .providers
        .iter()
        .filter_map(|p| registry.get(p))
        .map(|p| (p, prompt_deadline(member, p)))
        .collect();
    ProbeRequest {
        providers,
        env_file: &member.env_file,
        deep,
    }
}

/// Run the probe script on an open session.
pub async fn observe(
    session: &dyn Session,
    member: &Member,
    registry: &Registry,
    deep: bool,
) -> Result<MemberObservation, ObserveError> {
    let script = build_script(&probe_request(member, registry, deep));
    // The script on the command line when it fits (one round trip less), else on stdin.
    let carried = script.carried_command("sweep");
    let (command, stdin) = match &carried {
        Some(command) => (command.as_str(), Input::None),
        None => (
            Script::command_whole_stdin(),
            Input::Plain(script.text().as_bytes()),
        ),
    };
    match session.exec(command, stdin, member.command_timeout).await {
        Ok(out) => {
            let obs = parse_output(&out.stdout, script.nonce());
            if obs.complete {
                Ok(obs)
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                let tail: String = err.lines().rev().take(2).collect::<Vec<_>>().join(" / ");
                Err(ObserveError::Unfinished {
                    exit: out.exit,
                    tail: crate::mask::scrub(&tail, None, None),
                })
            }
        }
        Err(SshError::Timeout { after, .. }) => Err(ObserveError::Timeout(after)),
        Err(e) => Err(ObserveError::Ssh(e)),
    }
}

/// Why a member's probe gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObserveError {
    /// The script stopped before its last record: its shell failed, or the channel died.
    #[error("probe script did not finish (exit {}){}", .exit.map(|c| c.to_string()).unwrap_or_else(|| "?".into()), if .tail.is_empty() { String::new() } else { format!(": {}", .tail) })]
    Unfinished { exit: Option<u32>, tail: String },
    #[error("probe did not finish within command_timeout ({})", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error(transparent)]
    Ssh(SshError),
}

/// The row for one provider of a member whose probe answered, and where its credential lives.
/// `valid_for` is how long its credential must stay usable to be `ready` (`--valid-for`).
pub fn judge_one(
    member: &Member,
    provider: &Provider,
    obs: &MemberObservation,
    valid_for: Duration,
    now: SystemTime,
) -> (Row, CredentialHome) {
    let p_obs = obs.providers.get(&provider.name);
    let v = assess(
        provider,
        p_obs,
        &obs.env_file,
        prompt_deadline(member, provider),
        valid_for,
        now,
    );
    let home = credential_home(provider, p_obs, &obs.env_file, now);
    let mut detail = v.detail;
    if let Some(why) = &obs.env_file_unsafe {
        detail = format!("{detail}; env file not sourced: {why}");
    }
    // Text from the member (a CLI's message, a path) never shows anything shaped like a key.
    let detail = crate::mask::scrub(&detail, None, provider.key_pattern.as_ref());
    let row = Row {
        member: member.name.clone(),
        host: member.ssh.host.clone(),
        provider: provider.name.clone(),
        state: v.state,
        source: v.source,
        action: None,
        version: v.version,
        detail,
        reason: None,
        expires_in: crate::assess::credential_expiry(provider, p_obs, &obs.env_file, now),
    };
    (row, home)
}

/// Rows for a member whose probe answered.
pub fn judge(
    member: &Member,
    registry: &Registry,
    obs: &MemberObservation,
    valid_for: Duration,
) -> Vec<Row> {
    let now = SystemTime::now();
    member
        .providers
        .iter()
        .filter_map(|name| registry.get(name))
        .map(|p| judge_one(member, p, obs, valid_for, now).0)
        .collect()
}

/// How a sweep looks at each member.
#[derive(Debug, Clone, Copy)]
pub struct SweepOptions {
    /// Run each provider's minimal prompt too.
    pub deep: bool,
    /// How long a credential must stay usable to be `ready` (`--valid-for`).
    pub valid_for: Duration,
}

/// Sweep every member, at most `jobs` at once; rows in inventory order. A member whose task
/// died still gets its rows.
pub async fn sweep_fleet(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    members: Vec<Member>,
    opts: SweepOptions,
    jobs: usize,
    progress: &crate::fleet::Progress,
) -> Vec<Row> {
    let subjects = members.clone();
    crate::fleet::map_members(members, jobs, progress, move |m| {
        sweep_member(transport.clone(), registry.clone(), m, opts)
    })
    .await
    .into_iter()
    .zip(subjects)
    .flat_map(|(rows, m)| rows.unwrap_or_else(|| Row::internal_failure(m.subject(), &m.providers)))
    .collect()
}

/// Sweep one member end to end.
pub async fn sweep_member(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    member: Member,
    opts: SweepOptions,
) -> Vec<Row> {
    let session = match transport.connect(&member.target()).await {
        Ok(s) => s,
        Err(e) => return member.unreachable_rows(&e),
    };
    let rows = match observe(session.as_ref(), &member, &registry, opts.deep).await {
        Ok(obs) => judge(&member, &registry, &obs, opts.valid_for),
        Err(why) => member.rows(State::Error, &why.to_string()),
    };
    session.close().await;
    rows
}
