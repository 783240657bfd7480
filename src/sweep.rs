//! The read-only health sweep of one member: connect, run the probe script once, judge each
//! provider. Nothing on the member is written; without `--deep` no model request is made.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::assess::{State, assess, credential_home};
use crate::fleet::{rows_for_all, unreachable_rows};
use crate::inventory::Member;
use crate::plan::CredentialHome;
use crate::probe::{MemberObservation, PROBE_COMMAND, ProbeRequest, build_script, parse_output};
use crate::provider::{Provider, Registry};
use crate::report::Row;
use crate::ssh::{Input, Session, SshError, Transport};

/// Margin kept between a prompt's own deadline and the member's command deadline, so the
/// prompt's timeout is what reports the hang (with its reason), not the channel's.
const PROMPT_MARGIN: Duration = Duration::from_secs(5);

/// The prompt deadline actually used on a member.
pub fn prompt_deadline(member: &Member, provider_default: Duration) -> Duration {
    let wanted = member.probe_timeout.unwrap_or(provider_default);
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
    let providers: Vec<_> = member
        .providers
        .iter()
        .filter_map(|p| registry.get(p))
        .collect();
    let probe_timeout = providers
        .iter()
        .map(|p| prompt_deadline(member, p.probe.timeout))
        .max();
    ProbeRequest {
        providers,
        env_file: &member.env_file,
        deep,
        probe_timeout,
    }
}

/// Run the probe script on an open session.
pub async fn observe(
    session: &dyn Session,
    member: &Member,
    registry: &Registry,
    deep: bool,
) -> Result<MemberObservation, String> {
    let script = build_script(&probe_request(member, registry, deep));
    match session
        .exec(
            PROBE_COMMAND,
            Input::Plain(script.as_bytes()),
            member.command_timeout,
        )
        .await
    {
        Ok(out) => {
            let obs = parse_output(&out.stdout);
            if obs.complete {
                Ok(obs)
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                let tail: String = err.lines().rev().take(2).collect::<Vec<_>>().join(" / ");
                Err(format!(
                    "probe script did not finish (exit {}){}",
                    out.exit
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "?".into()),
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {tail}")
                    }
                ))
            }
        }
        Err(SshError::Timeout { after, .. }) => Err(format!(
            "probe did not finish within command_timeout ({})",
            humantime::format_duration(after)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The row for one provider of a member whose probe answered, and where its credential lives.
pub fn judge_one(
    member: &Member,
    provider: &Provider,
    obs: &MemberObservation,
    now: SystemTime,
) -> (Row, CredentialHome) {
    let p_obs = obs.providers.get(&provider.name);
    let v = assess(
        provider,
        p_obs,
        &obs.env_file,
        prompt_deadline(member, provider.probe.timeout),
        now,
    );
    let home = credential_home(provider, p_obs, &obs.env_file, now);
    let row = Row {
        member: member.name.clone(),
        host: member.host.clone(),
        provider: provider.name.clone(),
        state: v.state,
        source: v.source,
        action: None,
        version: v.version,
        detail: v.detail,
        reason: None,
    };
    (row, home)
}

/// Rows for a member whose probe answered.
pub fn judge(member: &Member, registry: &Registry, obs: &MemberObservation) -> Vec<Row> {
    let now = SystemTime::now();
    member
        .providers
        .iter()
        .filter_map(|name| registry.get(name))
        .map(|p| judge_one(member, p, obs, now).0)
        .collect()
}

/// Sweep one member end to end.
pub async fn sweep_member(
    transport: Arc<dyn Transport>,
    registry: Arc<Registry>,
    member: Member,
    deep: bool,
) -> Vec<Row> {
    let session = match transport.connect(&member).await {
        Ok(s) => s,
        Err(e) => return unreachable_rows(&member, &e),
    };
    let rows = match observe(session.as_ref(), &member, &registry, deep).await {
        Ok(obs) => judge(&member, &registry, &obs),
        Err(why) => rows_for_all(&member, State::Error, &why, None),
    };
    session.close().await;
    rows
}
