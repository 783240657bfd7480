//! A scripted fake transport for unit tests of the pipelines (never a substitute for the
//! real-sshd integration tests).
//!
//! A [`FakeMember`] answers fleetauth's member-side scripts the way they answer on a real member,
//! in framed records, from a tiny model: whether the CLI is installed, which key sits in the env
//! file, which keys the vendor accepts. Every command line and stdin is recorded so a test can
//! assert what travelled. Connections can be made to fail from the N-th on (a member lost between
//! provisioning's phases).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use secrecy::ExposeSecret;

use crate::ssh::{Dialog, ExecOutput, Input, Session, SshError, Target, Transport};

/// One exec the fake saw.
#[derive(Debug, Clone)]
pub struct Call {
    pub command: String,
    pub stdin: Vec<u8>,
}

/// The model of one member.
#[derive(Debug, Default)]
pub struct FakeMember {
    /// The provider the member runs (its `fa_def_0`), installed or not.
    pub installed: bool,
    /// The key line in the env file: `GEMINI_API_KEY` → value.
    pub env_key: Mutex<Option<String>>,
    /// Keys the vendor accepts.
    pub good_keys: Vec<String>,
    /// Connections from this number on (0-based) fail.
    pub fail_from_connect: Option<usize>,
    pub connects: AtomicUsize,
    pub calls: Mutex<Vec<Call>>,
}

impl FakeMember {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn env_key(&self) -> Option<String> {
        self.env_key.lock().unwrap().clone()
    }
}

/// A transport whose every member is `member`.
pub struct FakeTransport(pub Arc<FakeMember>);

#[async_trait]
impl Transport for FakeTransport {
    async fn connect(&self, target: &Target) -> Result<Box<dyn Session>, SshError> {
        let n = self.0.connects.fetch_add(1, Ordering::SeqCst);
        if self.0.fail_from_connect.is_some_and(|from| n >= from) {
            return Err(SshError::Refused(format!(
                "{}: fake member is down",
                target.name
            )));
        }
        Ok(Box::new(FakeSession(self.0.clone())))
    }
}

struct FakeSession(Arc<FakeMember>);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// What a script's header says: the nonce, the provider names, the install method.
struct Header {
    nonce: String,
    providers: Vec<String>,
    install: Option<String>,
    deep: bool,
}

fn header(script: &str) -> Header {
    let value = |name: &str| {
        script
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('\'').to_string())
    };
    let providers = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("P="))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    Header {
        nonce: value("FA_NONCE").unwrap_or_default(),
        providers,
        install: value("FA_INSTALL"),
        deep: value("FA_DEEP").as_deref() == Some("1"),
    }
}

impl FakeSession {
    /// The probe's records for `providers` with `key` as the env file's key.
    fn probe(&self, h: &Header, key: Option<&str>, deep: bool) -> String {
        let rec = |p: &str, f: &str, v: &str| format!("@@FA{}\t{p}\t{f}\t{v}\n", h.nonce);
        let mut out = String::from("motd: a member's shell start-up may print anything\n");
        match key {
            Some(_) => {
                out += &rec("-", "envfile", "present");
                out += &rec("-", "envnames", &b64("GEMINI_API_KEY\n"));
            }
            None => out += &rec("-", "envfile", "absent"),
        }
        for p in &h.providers {
            if !self.0.installed {
                out += &rec(p, "missing", "1");
                continue;
            }
            out += &rec(p, "bin", &b64("/usr/bin/gemini"));
            out += &rec(p, "version_rc", "0");
            out += &rec(p, "version_out", &b64("0.61.0\n"));
            if deep {
                let good = key.is_some_and(|k| self.0.good_keys.iter().any(|g| g == k));
                let (rc, o, e) = if good {
                    ("0", "{\"response\":\"OK\"}", "")
                } else {
                    ("41", "", "API key not valid. Please pass a valid API key.")
                };
                out += &rec(p, "probe_rc", rc);
                out += &rec(p, "probe_out", &b64(o));
                out += &rec(p, "probe_err", &b64(e));
            }
        }
        out
    }
}

#[async_trait]
impl Session for FakeSession {
    async fn exec(
        &self,
        command: &str,
        stdin: Input<'_>,
        _deadline: Duration,
    ) -> Result<ExecOutput, SshError> {
        let mut bytes = self.record(command, &stdin);
        if let Some(carried) = crate::remote::Script::carried_text(command) {
            bytes = carried.into_bytes();
        }
        let h = header(&String::from_utf8_lossy(&bytes));
        let key = self.0.env_key();
        let mut out = self.probe(&h, key.as_deref(), h.deep);
        out += &format!("@@FA{}\t-\tdone\t1\n", h.nonce);
        Ok(ExecOutput {
            stdout: out.into_bytes(),
            exit: Some(0),
            ..Default::default()
        })
    }

    async fn exec_dialog(
        &self,
        command: &str,
        stdin: Input<'_>,
        dialog: Dialog<'_>,
        _deadline: Duration,
    ) -> Result<ExecOutput, SshError> {
        let bytes = self.record(command, &stdin);
        // The script is the first `count=N` bytes; the payload follows.
        let n: usize = command
            .split("count=")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .expect("a transaction's command names its script's length");
        let h = header(&String::from_utf8_lossy(&bytes[..n]));
        assert_eq!(
            h.install.as_deref(),
            Some("env"),
            "the fake models env-file installs"
        );
        let payload = String::from_utf8_lossy(&bytes[n..]).into_owned();
        let new_key = payload
            .trim()
            .strip_prefix("export GEMINI_API_KEY='")
            .and_then(|r| r.strip_suffix('\''))
            .expect("one assignment")
            .to_string();
        let old = self.0.env_key();
        let installed = if old.as_deref() == Some(new_key.as_str()) {
            "unchanged"
        } else {
            "pushed"
        };
        *self.0.env_key.lock().unwrap() = Some(new_key.clone());
        let rec = |f: &str, v: &str| format!("@@FA{}\t-\t{f}\t{v}\n", h.nonce);
        let mut out = rec("install", installed);
        out += &self.probe(&h, Some(&new_key), true);
        out += &rec("verify", "1");
        assert!(out.contains(std::str::from_utf8(dialog.ask).unwrap()));
        let verdict = (dialog.answer)(out.as_bytes());
        if verdict == b"commit\n" {
            out += &rec("outcome", "committed");
        } else {
            *self.0.env_key.lock().unwrap() = old;
            out += &rec("outcome", "restored");
        }
        out += &format!("@@FA{}\t-\tdone\t1\n", h.nonce);
        Ok(ExecOutput {
            stdout: out.into_bytes(),
            exit: Some(0),
            ..Default::default()
        })
    }

    async fn close(&self) {}
}

impl FakeSession {
    /// Note the call; returns its stdin.
    fn record(&self, command: &str, stdin: &Input<'_>) -> Vec<u8> {
        let bytes = match stdin {
            Input::None => Vec::new(),
            Input::Plain(b) => b.to_vec(),
            Input::Secret(s) => s.expose_secret().to_vec(),
        };
        self.0.calls.lock().unwrap().push(Call {
            command: command.to_string(),
            stdin: bytes.clone(),
        });
        bytes
    }
}
