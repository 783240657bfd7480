//! `fleetauth auth set|unset|status`: the operator's local credential store.
//!
//! A key is read from a hidden prompt on a terminal, else from stdin, else (with `--from-env`)
//! from a named variable — never from argv, where `ps` and shell history would keep it.

use std::io::{IsTerminal, Read};

use secrecy::{ExposeSecret, SecretString};

use super::out;
use super::out::{errln, out, outln};
use super::{Cli, Failure, Format, fleetauth_home, load_registry};
use crate::keys::{KeyError, KeySource, PASSPHRASE_ENV, checked, env_remedy};
use crate::mask;
use crate::operator::own_login;
use crate::provider::Registry;
use crate::store::{SetOutcome, Store, StoreError};

fn store() -> Result<Store, Failure> {
    Store::open(fleetauth_home()).map_err(|e| Failure::failed(format!("error: {e}")))
}

/// The store passphrase: `FLEETAUTH_PASSPHRASE`, else a hidden prompt (twice when it is new).
fn passphrase(store: &Store, confirm_new: bool) -> Result<SecretString, Failure> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV)
        && !p.is_empty()
    {
        return Ok(SecretString::from(p));
    }
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(Failure::failed(format!(
            "error: the credential store is encrypted with a passphrase: set {PASSPHRASE_ENV} or run on a terminal"
        )));
    }
    let read = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(SecretString::from)
            .map_err(|e| Failure::failed(format!("error: cannot read the passphrase: {e}")))
    };
    if confirm_new && !store.has_passphrase() {
        let first = read("new store passphrase: ")?;
        let again = read("repeat the passphrase: ")?;
        if first.expose_secret() != again.expose_secret() {
            return Err(Failure::failed("error: the passphrases differ"));
        }
        return Ok(first);
    }
    read("store passphrase: ")
}

fn known(registry: &Registry, provider: &str) -> Result<(), Failure> {
    if registry.get(provider).is_some() {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "error: unknown provider `{provider}`\n  = help: known providers: {}",
        registry.names().join(", ")
    )))
}

/// Read the key: `--from-env VAR`, else a hidden prompt on a terminal, else stdin.
fn read_key(provider: &str, from_env: Option<&str>) -> Result<SecretString, Failure> {
    let raw = if let Some(var) = from_env {
        std::env::var(var).map_err(|_| {
            Failure::failed(format!("error: --from-env {var}: the variable is not set"))
        })?
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{provider} key (input hidden): "))
            .map_err(|e| Failure::failed(format!("error: cannot read the key: {e}")))?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::failed(format!("error: cannot read the key from stdin: {e}")))?;
        s
    };
    let key = SecretString::from(raw.trim().to_string());
    if key.expose_secret().is_empty() {
        return Err(Failure::failed("error: no key given (empty input)"));
    }
    Ok(key)
}

pub fn set(
    cli: &Cli,
    provider: &str,
    from_env: Option<&str>,
    kind: Option<&str>,
    allow_shape: bool,
) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    known(&registry, provider)?;
    let p = registry.get(provider).expect("checked");
    if let Some(k) = kind
        && p.push_key(k).is_none()
    {
        return Err(Failure::usage(format!(
            "error: --kind {k}: fleetauth pushes no such key for {provider}\n  = help: {provider} keys: {}",
            kinds_help(p)
        )));
    }
    let key = read_key(provider, from_env)?;
    let source = if from_env.is_some() {
        KeySource::Env
    } else {
        KeySource::Prompt
    };
    let collected = checked(p, kind, key, source, allow_shape).map_err(|e| {
        Failure::failed(match e {
            KeyError::Malformed {
                masked,
                expected,
                pattern,
                hint,
                ..
            } => format!(
                "error: {masked} does not look like a {expected} (expected {pattern}); nothing stored{}",
                hint.replace(&format!("`--allow-key-shape {provider}` for this run"), "`--allow-key-shape`")
            ),
            KeyError::Refused { masked, reason, .. } => {
                format!("error: {masked} is {reason}; nothing stored")
            }
            other => format!("error: {other}"),
        })
    })?;
    let kind = collected.kind.clone();
    let key = collected.value;
    let store = store()?;
    let pass = passphrase(&store, true)?;
    let (masked, fp) = (mask::mask(&key), mask::fingerprint(&key));
    let outcome = store
        .set(provider, &kind, key, &pass)
        .map_err(|e| Failure::failed(format!("error: {e}")))?;
    let action = match outcome {
        SetOutcome::Added => "stored",
        SetOutcome::Replaced => "replaced",
        SetOutcome::Unchanged => "unchanged (this key is already stored)",
    };
    if outcome != SetOutcome::Unchanged {
        let entry = crate::audit::AuditEntry::new("-", provider, "set", "store", Some(fp.clone()));
        if let Err(e) = crate::audit::append(store.dir(), &entry) {
            tracing::warn!("could not write the audit log: {e}");
        }
    }
    let what = p.push_key(&kind).expect("checked");
    outln!(
        "{provider}: {action} — {} {masked} ({fp}), pushed into {}",
        what.description,
        what.target()
    );
    if collected.shape_unchecked {
        out::errln!(
            "warning: {provider}: the key matches no known shape; each provision refuses it unless that run passes --allow-key-shape {provider}"
        );
    }
    Ok(0)
}

/// `api-key (API key, into ANTHROPIC_API_KEY), oauth-token (…)`
fn kinds_help(p: &crate::provider::Provider) -> String {
    p.keys
        .iter()
        .map(|k| {
            format!(
                "{} ({}, into {})",
                k.kind.replace('_', "-"),
                k.description,
                k.target()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn unset(cli: &Cli, provider: &str) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    known(&registry, provider)?;
    let store = store()?;
    if !store
        .index()
        .map(|i| i.iter().any(|e| e.provider == provider))
        .unwrap_or(false)
    {
        outln!("{provider}: nothing stored");
        return Ok(0);
    }
    let pass = passphrase(&store, false)?;
    let removed = store
        .unset(provider, &pass)
        .map_err(|e| Failure::failed(format!("error: {e}")))?;
    if removed {
        let entry = crate::audit::AuditEntry::new("-", provider, "unset", "store", None);
        if let Err(e) = crate::audit::append(store.dir(), &entry) {
            tracing::warn!("could not write the audit log: {e}");
        }
    }
    outln!(
        "{provider}: {}",
        if removed { "removed" } else { "nothing stored" }
    );
    Ok(0)
}

#[derive(serde::Serialize)]
struct StatusRow {
    provider: String,
    kind: String,
    status: String,
    source: String,
    masked: Option<String>,
    detail: String,
}

pub fn status(cli: &Cli, format: Format) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    let store = store()?;
    let index = store
        .index()
        .map_err(|e| Failure::failed(format!("error: {e}")))?;
    // The masked value needs the passphrase; everything else does not. A passphrase that does
    // not open the store is said to be wrong, not missing.
    let (unlocked, locked_why) = match std::env::var(PASSPHRASE_ENV) {
        Ok(p) if !p.is_empty() && !index.is_empty() => match store.load(&SecretString::from(p)) {
            Ok(u) => (Some(u), String::new()),
            Err(e @ StoreError::WrongPassphrase { .. }) => {
                errln!("warning: {e}");
                (
                    None,
                    format!("; {PASSPHRASE_ENV} is wrong: no masked value"),
                )
            }
            Err(e) => {
                errln!("warning: {e}");
                (
                    None,
                    "; the store cannot be read: no masked value".to_string(),
                )
            }
        },
        _ => (None, format!("; masked value needs {PASSPHRASE_ENV}")),
    };
    let mut rows = Vec::new();
    for (p, _) in registry.iter() {
        let mut any = false;
        if let Some(e) = index.iter().find(|e| e.provider == p.name) {
            any = true;
            let masked = unlocked
                .as_ref()
                .and_then(|u| u.get(&p.name))
                .map(|c| c.masked());
            rows.push(StatusRow {
                provider: p.name.clone(),
                kind: e.kind.clone(),
                status: "present".into(),
                source: "store".into(),
                detail: format!(
                    "{}, set {}{}",
                    e.fingerprint,
                    e.set_at,
                    if masked.is_none() { &locked_why } else { "" }
                ),
                masked,
            });
        }
        let mut seen: Vec<&str> = Vec::new();
        for k in &p.keys {
            if seen.contains(&k.env.as_str()) {
                continue;
            }
            seen.push(&k.env);
            let Ok(v) = std::env::var(&k.env) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            any = true;
            // Kinds sharing a variable (copilot) are told apart by the key's shape.
            let kind = p
                .keys
                .iter()
                .filter(|o| o.env == k.env)
                .find(|o| o.pattern.as_ref().is_some_and(|re| re.is_match(&v)))
                .unwrap_or(k);
            let v = SecretString::from(v);
            rows.push(StatusRow {
                provider: p.name.clone(),
                kind: kind.kind.clone(),
                status: "present".into(),
                source: "env".into(),
                masked: Some(mask::mask(&v)),
                detail: format!("${}", k.env),
            });
        }
        if let Some(login) = own_login(p) {
            any = true;
            rows.push(StatusRow {
                provider: p.name.clone(),
                kind: login.kind.into(),
                status: login.status.into(),
                source: "own_login".into(),
                masked: None,
                detail: login.detail,
            });
        }
        if !any {
            rows.push(StatusRow {
                provider: p.name.clone(),
                kind: "-".into(),
                status: "missing".into(),
                source: "-".into(),
                masked: None,
                detail: match p.keys.is_empty() {
                    true => format!(
                        "fleetauth pushes nothing for {}: log in on each member",
                        p.name
                    ),
                    false => format!("`fleetauth auth set {}` or {}", p.name, env_remedy(p)),
                },
            });
        }
    }
    match format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "credentials": rows }))
                .expect("serialisable")
        ),
        Format::Table => {
            let boxed = std::io::stdout().is_terminal();
            let mut t = crate::report::people_table(boxed);
            t.set_header(["PROVIDER", "KIND", "STATUS", "SOURCE", "MASKED", "DETAIL"]);
            for r in &rows {
                t.add_row([
                    r.provider.as_str(),
                    r.kind.as_str(),
                    r.status.as_str(),
                    r.source.as_str(),
                    r.masked.as_deref().unwrap_or("-"),
                    r.detail.as_str(),
                ]);
            }
            out!("{}", crate::report::table_text(&mut t, boxed));
        }
    }
    Ok(0)
}
