//! One login on one member: start the provider's own login command, read what it prints, and
//! relay the URL, the code and its state to the operator.
//!
//! What a line means is decided by [`classify`], a pure function of the provider's `[login]`
//! data and the line, so every vendor's text is a unit test. [`run_login`] drives the command:
//! it renews a code that runs out, writes a pasted code to the command's stdin (its pty) and
//! nowhere else, and ends the remote command on success, failure, deadline or Ctrl-C.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::def::{Flow, LoginDef, capture};
use super::input::CodeBroker;
use super::{Event, EventKind, Sink};
use crate::remote::{Role, login_script};
use crate::ssh::{Chunk, Ending, Interactive, InteractiveOptions, Session};

/// What one line of the login's output means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// A known failure: the vendor's reason and the remedy.
    Failed(String),
    /// The code ran out.
    Expired,
    /// The login is done.
    Succeeded,
    /// The URL to open, and the user code when the same line carries it.
    Url(String, Option<String>),
    /// The user code alone.
    Code(String),
    /// The CLI asks for the pasted code.
    Prompt,
    Nothing,
}

static ANSI: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]")
        .expect("valid regex")
});

/// `text` without terminal escape sequences (CLIs colour their URLs and codes).
pub fn strip_ansi(text: &str) -> String {
    ANSI.replace_all(text, "").into_owned()
}

/// What `line` (escape sequences removed) means under `def`. `partial` lines (an unterminated
/// tail) are only looked at for the paste prompt.
pub fn classify(def: &LoginDef, line: &str, partial: bool) -> Meaning {
    if partial {
        return match &def.prompt {
            Some(p) if p.is_match(line) => Meaning::Prompt,
            _ => Meaning::Nothing,
        };
    }
    if let Some(f) = def.failures.iter().find(|f| f.matches.is_match(line)) {
        return Meaning::Failed(match &f.remedy {
            Some(remedy) => format!("{} — {remedy}", f.reason),
            None => f.reason.clone(),
        });
    }
    if def.expired.as_ref().is_some_and(|r| r.is_match(line)) {
        return Meaning::Expired;
    }
    if def.success.as_ref().is_some_and(|r| r.is_match(line)) {
        return Meaning::Succeeded;
    }
    let code = || {
        def.code
            .as_ref()
            .filter(|_| def.flow == Flow::DeviceCode)
            .and_then(|r| capture(r, line))
    };
    if let Some(url) = capture(&def.url, line) {
        return Meaning::Url(url, code());
    }
    if let Some(c) = code() {
        return Meaning::Code(c);
    }
    if def.prompt.as_ref().is_some_and(|p| p.is_match(line)) {
        return Meaning::Prompt;
    }
    Meaning::Nothing
}

/// How a login ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Failed(String),
    Interrupted,
}

/// Everything one login needs.
pub struct LoginJob {
    pub member: String,
    pub provider: String,
    pub def: LoginDef,
    /// The CLI on the member (as the probe located it).
    pub binary: String,
    pub env_file: String,
    pub deadline: Duration,
    /// Shapes of the provider's keys, scrubbed from any text relayed.
    pub key_pattern: Option<regex::Regex>,
}

impl LoginJob {
    fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if !self.def.env.is_empty() {
            argv.push("env".to_string());
            argv.extend(self.def.env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        argv.push(self.binary.clone());
        argv.extend(self.def.args.iter().cloned());
        argv
    }

    fn event(&self, kind: EventKind) -> Event {
        Event::new(kind, &self.member, &self.provider)
    }

    /// Member text made safe to show: no key-shaped strings, no control characters.
    fn shown(&self, text: &str) -> String {
        let scrubbed = crate::mask::scrub(text, None, self.key_pattern.as_ref());
        crate::report::printable(&scrubbed).into_owned()
    }
}

/// What the current attempt has seen.
#[derive(Default)]
struct Seen {
    url: Option<String>,
    code: Option<String>,
    relayed: bool,
    prompted: bool,
    tail: VecDeque<String>,
}

enum Step {
    Done(Outcome),
    Renew(&'static str),
}

/// Run `job` on `session` until approved, failed, past its deadline or cancelled.
pub async fn run_login(
    session: Arc<dyn Session>,
    job: LoginJob,
    sink: Sink,
    broker: CodeBroker,
    mut cancel: watch::Receiver<bool>,
) -> Outcome {
    let until = Instant::now() + job.deadline;
    let mut started = job.event(EventKind::Started);
    started.flow = Some(job.def.flow);
    sink.send(started);
    let mut renewals = 0u32;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return fail(&job, &sink, no_approval(&job));
        }
        let script = login_script(&job.env_file, &job.argv(), job.def.pty);
        let marker = format!("@@FA{}", script.nonce().as_str());
        let opts = InteractiveOptions {
            pty: job.def.pty,
            stdin: script.text().as_bytes().to_vec(),
            deadline: left,
        };
        let mut it = match session
            .exec_interactive(&script.command(Role::Login), opts)
            .await
        {
            Ok(it) => it,
            Err(e) => return fail(&job, &sink, format!("could not start the login: {e}")),
        };
        match attempt(&job, &mut it, &marker, &sink, &broker, &mut cancel).await {
            Step::Done(outcome) => {
                it.close().await;
                drain(&mut it).await;
                return outcome;
            }
            Step::Renew(why) => {
                it.close().await;
                drain(&mut it).await;
                renewals += 1;
                if Instant::now() >= until {
                    return fail(&job, &sink, no_approval(&job));
                }
                let mut e = job.event(EventKind::Renewed);
                e.detail = Some(format!("{why}; new code (renewal {renewals})"));
                sink.send(e);
            }
        }
    }
}

fn no_approval(job: &LoginJob) -> String {
    format!(
        "not approved within the login deadline ({})",
        humantime::format_duration(job.deadline)
    )
}

fn fail(job: &LoginJob, sink: &Sink, why: String) -> Outcome {
    let mut e = job.event(EventKind::Failed);
    e.detail = Some(why.clone());
    sink.send(e);
    Outcome::Failed(why)
}

/// Wait (bounded) for the command's end after closing it.
async fn drain(it: &mut Interactive) {
    let _ = tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(c) = it.next().await {
            if matches!(c, Chunk::Ended(_)) {
                break;
            }
        }
    })
    .await;
}

async fn attempt(
    job: &LoginJob,
    it: &mut Interactive,
    marker: &str,
    sink: &Sink,
    broker: &CodeBroker,
    cancel: &mut watch::Receiver<bool>,
) -> Step {
    let mut seen = Seen::default();
    let mut renew_at: Option<Instant> = None;
    let mut pasted: Option<oneshot::Receiver<SecretString>> = None;
    let mut cancel_gone = false;
    loop {
        if *cancel.borrow() {
            let mut e = job.event(EventKind::Failed);
            e.detail = Some("interrupted".to_string());
            sink.send(e);
            return Step::Done(Outcome::Interrupted);
        }
        tokio::select! {
            chunk = it.next() => {
                let Some(chunk) = chunk else {
                    return Step::Done(fail(job, sink, "the login's channel was lost".into()));
                };
                let (text, partial) = match chunk {
                    Chunk::Line { text, .. } => (text, false),
                    Chunk::Partial { text, .. } => (text, true),
                    Chunk::Ended(ending) => return ended(job, sink, &seen, ending),
                };
                if text.contains(marker) {
                    continue;
                }
                let text = strip_ansi(&text);
                if !partial && !text.trim().is_empty() {
                    seen.tail.push_back(text.trim().to_string());
                    if seen.tail.len() > 3 {
                        seen.tail.pop_front();
                    }
                }
                match classify(&job.def, &text, partial) {
                    Meaning::Failed(why) => return Step::Done(fail(job, sink, job.shown(&why))),
                    Meaning::Expired => return Step::Renew("the code expired"),
                    Meaning::Succeeded => return Step::Done(approved(job, sink)),
                    Meaning::Url(url, code) => {
                        seen.url.get_or_insert(url);
                        if let Some(c) = code {
                            seen.code.get_or_insert(c);
                        }
                    }
                    Meaning::Code(c) => {
                        seen.code.get_or_insert(c);
                    }
                    Meaning::Prompt => {
                        if !seen.prompted && seen.url.is_some() {
                            seen.prompted = true;
                            relay(job, sink, &mut seen);
                            let mut e = job.event(EventKind::Waiting);
                            e.detail = Some("for the code shown after authorising".into());
                            sink.send(e);
                            pasted = Some(broker.request(&job.member, &job.provider));
                        }
                    }
                    Meaning::Nothing => {}
                }
                let ready = match job.def.flow {
                    Flow::DeviceCode => seen.url.is_some() && seen.code.is_some(),
                    Flow::BrowserPoll => seen.url.is_some(),
                    Flow::PasteBack => false,
                };
                if ready && !seen.relayed {
                    relay(job, sink, &mut seen);
                    let mut e = job.event(EventKind::Waiting);
                    e.detail = Some("for approval".into());
                    sink.send(e);
                    renew_at = job.def.code_lifetime.map(|life| {
                        // Renew before the code runs out, leaving the operator a margin.
                        Instant::now() + life.saturating_sub((life / 10).min(Duration::from_secs(30)))
                    });
                }
            }
            code = async { pasted.as_mut().expect("guarded").await }, if pasted.is_some() => {
                pasted = None;
                match code {
                    Ok(code) => {
                        if !it.write_line(code).await {
                            return Step::Done(fail(job, sink, "the login ended before the code arrived".into()));
                        }
                    }
                    Err(_) => {
                        return Step::Done(fail(
                            job,
                            sink,
                            "no code was pasted (stdin ended, or --no-input)".into(),
                        ));
                    }
                }
            }
            _ = async { tokio::time::sleep_until(renew_at.expect("guarded")).await }, if renew_at.is_some() => {
                return Step::Renew("the code's lifetime ran out");
            }
            r = cancel.changed(), if !cancel_gone => cancel_gone = r.is_err(),
        }
    }
}

/// Send the URL (and code) event once.
fn relay(job: &LoginJob, sink: &Sink, seen: &mut Seen) {
    if seen.relayed {
        return;
    }
    seen.relayed = true;
    let kind = if seen.code.is_some() {
        EventKind::Code
    } else {
        EventKind::Url
    };
    let mut e = job.event(kind);
    e.url = seen.url.as_deref().map(|u| job.shown(u));
    e.code = seen.code.as_deref().map(|c| job.shown(c));
    sink.send(e);
}

fn approved(job: &LoginJob, sink: &Sink) -> Outcome {
    sink.send(job.event(EventKind::Approved));
    Outcome::Approved
}

fn ended(job: &LoginJob, sink: &Sink, seen: &Seen, ending: Ending) -> Step {
    let last = || {
        let tail: Vec<&str> = seen.tail.iter().map(String::as_str).collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", job.shown(&tail.join(" / ")))
        }
    };
    Step::Done(match ending {
        Ending::Exited(0) => approved(job, sink),
        Ending::Exited(code) => fail(job, sink, format!("the login exited with {code}{}", last())),
        Ending::Signalled(sig) => {
            fail(job, sink, format!("the login was killed ({sig}){}", last()))
        }
        Ending::TimedOut => fail(job, sink, no_approval(job)),
        Ending::Closed => fail(job, sink, "the login was closed".into()),
        Ending::Lost => fail(job, sink, format!("the connection was lost{}", last())),
    })
}
