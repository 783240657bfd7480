//! One provisioning transaction on one member for one provider (`src/remote/provision.sh`): install, verify
//! under the same lock, then commit or restore on the client's word.
//!
//! Why one channel for all three steps: a lock can only be held across them by one process, and
//! only a process that is still waiting for the client can undo its change when the client or
//! the connection goes away (its stdin closes: that is taken as "restore"). Two provisioners on
//! one member therefore serialise from push to restore, and no run can leave another's key in
//! place or restore another's backup.
//!
//! What travels: the script (with the provider's definition and the install's parameters in its
//! header), then on stdin the payload — the env-file assignment lines, the key for a login
//! command, or a file's bytes — then the verdict. The payload never appears in a command line,
//! and on the member it lives in the shell's memory and in the target file only.

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::envfile::{EnvFileError, push_input};
use crate::probe::{ProbeRequest, probe_header};
use crate::remote::{self as remote, ExitStatus, Nonce, Record, Role, Script, records};

/// What a transaction installs.
pub enum Install<'a> {
    /// Merge `export VAR='value'` into the env file.
    EnvFile {
        var: &'a str,
        value: &'a SecretString,
    },
    /// Feed `key` to the provider's login command (`args`) at `binary`.
    LoginCommand {
        args: &'a [String],
        binary: &'a str,
        key: &'a SecretString,
    },
    /// Replace `<config home>/<rel>` with `bytes`.
    File {
        rel: &'a str,
        bytes: &'a SecretSlice<u8>,
    },
}

/// What `--fix-shadowing` changes in the same transaction ([`crate::shadowing`]).
#[derive(Default)]
pub struct Fixes<'a> {
    /// Env-file variables removed from the env file: by the same merge (env-file install), or
    /// by a merge just before the login command runs.
    pub drop_vars: Vec<&'a str>,
    /// A JSON settings file under the provider's config home: its path there, the bytes the
    /// probe read (the member checks the file still holds them) and its new bytes.
    pub file: Option<(&'a str, &'a SecretSlice<u8>, &'a SecretSlice<u8>)>,
}

/// A transaction ready to send: the command line and the secret stdin (script + payload).
pub struct Transaction {
    pub command: String,
    pub stdin: SecretSlice<u8>,
    pub nonce: Nonce,
}

/// Build the transaction for `provider` (the probe request holds just it, deep).
/// `verdict_wait` bounds how long the member waits for the client's word (then it restores).
pub fn build(
    req: &ProbeRequest<'_>,
    install: &Install<'_>,
    fixes: &Fixes<'_>,
    keep_backup: bool,
    verdict_wait: std::time::Duration,
) -> Result<Transaction, EnvFileError> {
    let mut script = probe_header(req);
    script
        .set("FA_KEEP_BACKUP", if keep_backup { "1" } else { "0" })
        .set(
            "FA_VERDICT_WAIT",
            &verdict_wait.as_secs().max(1).to_string(),
        );
    let payload: SecretSlice<u8> = match install {
        Install::EnvFile { var, value } => {
            script
                .set("FA_INSTALL", "env")
                .set("FA_NAMES", var)
                .set("FA_DROP", &fixes.drop_vars.join(" "));
            push_input(&[(var, value)])?
        }
        Install::LoginCommand { args, binary, key } => {
            script
                .set("FA_INSTALL", "login")
                .set("FA_NAMES", "")
                .set("FA_DROP", &fixes.drop_vars.join(" "))
                .set("FA_LOGIN_PROVIDER", "0")
                .set_words("FA_LOGIN_ARGS", args.iter())
                .set("FA_LOGIN_BIN", binary);
            let mut bytes = key.expose_secret().as_bytes().to_vec();
            bytes.push(b'\n');
            bytes.into()
        }
        Install::File { rel, bytes } => {
            script
                .set("FA_INSTALL", "file")
                .set("FA_FILE_PROVIDER", "0")
                .set("FA_FILE_REL", rel)
                .set("FA_FILE_SIZE", &bytes.expose_secret().len().to_string());
            bytes.expose_secret().to_vec().into()
        }
    };
    let mut payload = payload.expose_secret().to_vec();
    if let Some((rel, old, new)) = fixes.file {
        script
            .set("FA_FIX_PROVIDER", "0")
            .set("FA_FIX_REL", rel)
            .set("FA_FIX_OLD", &old.expose_secret().len().to_string())
            .set("FA_FIX_NEW", &new.expose_secret().len().to_string());
        payload.extend_from_slice(old.expose_secret());
        payload.extend_from_slice(new.expose_secret());
    }
    let payload: SecretSlice<u8> = payload.into();
    let script: Script =
        script.finish(&[&remote::PROBE, &remote::ENVFILE, &remote::PROVISION_MAIN]);
    let mut stdin = script.text().as_bytes().to_vec();
    stdin.extend_from_slice(payload.expose_secret());
    Ok(Transaction {
        command: script.command(Role::Provision),
        stdin: stdin.into(),
        nonce: script.nonce().clone(),
    })
}

/// What the install step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    Pushed,
    Unchanged,
}

/// How the transaction ended on the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client's `commit` arrived: the change stays.
    Committed,
    /// The previous files are back.
    Restored,
    /// Nothing had changed, so nothing was restored.
    Unchanged,
}

/// Why a transaction failed before verification, from the script's exit status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("{0}")]
    Refused(String),
    #[error("{message}")]
    Failed {
        status: Option<ExitStatus>,
        message: String,
    },
    #[error("the login command failed (exit {rc}){}", if .output.is_empty() { String::new() } else { format!(": {}", .output) })]
    LoginFailed { rc: i32, output: String },
}

/// The member's account of a transaction.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub installed: Option<Installed>,
    /// `--fix-shadowing` changed a settings file too.
    pub fixed: bool,
    pub ending: Option<Ending>,
    pub login: Option<(i32, String)>,
    pub fatal: Option<String>,
    pub done: bool,
}

/// Read the transaction's records from its whole stdout.
pub fn report(stdout: &[u8], nonce: &Nonce) -> Report {
    let mut r = Report::default();
    let mut login_rc = None;
    for rec in records(stdout, nonce)
        .iter()
        .filter(|r: &&Record<'_>| r.provider == "-")
    {
        match (rec.field, rec.value) {
            ("install", "pushed") => r.installed = Some(Installed::Pushed),
            ("install", "unchanged") => r.installed = Some(Installed::Unchanged),
            ("fix", "pushed") => r.fixed = true,
            ("outcome", "committed") => r.ending = Some(Ending::Committed),
            ("outcome", "restored") => r.ending = Some(Ending::Restored),
            ("outcome", "unchanged") => r.ending = Some(Ending::Unchanged),
            ("login_rc", v) => login_rc = v.trim().parse::<i32>().ok(),
            ("login_out", _) => r.login = Some((login_rc.unwrap_or(-1), rec.text())),
            ("fatal", _) => r.fatal = Some(rec.text()),
            ("done", _) => r.done = true,
            _ => {}
        }
    }
    r
}

/// The failure a transaction's exit status and `fatal` message describe, if it failed before
/// verifying. `scrub` cleans member-supplied text.
pub fn failure(
    report: &Report,
    exit: Option<u32>,
    scrub: &dyn Fn(&str) -> String,
) -> Option<TxnError> {
    if let Some((rc, out)) = &report.login
        && *rc != 0
    {
        let last = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Some(TxnError::LoginFailed {
            rc: *rc,
            output: scrub(last.trim()),
        });
    }
    let status = exit.and_then(ExitStatus::from_code);
    let message = report.fatal.as_deref().map(scrub);
    match (status, message) {
        (
            Some(
                ExitStatus::UnsafeDir
                | ExitStatus::UnsafeFile
                | ExitStatus::Symlink
                | ExitStatus::ForeignOwner
                | ExitStatus::NotRegular
                | ExitStatus::Shadowed,
            ),
            Some(m),
        ) => Some(TxnError::Refused(m)),
        (status, Some(m)) => Some(TxnError::Failed { status, message: m }),
        _ => None,
    }
}

/// The verdict the client sends.
pub fn verdict(commit: bool) -> Vec<u8> {
    if commit {
        b"commit\n".to_vec()
    } else {
        b"restore\n".to_vec()
    }
}
