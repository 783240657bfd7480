//! `fleetauth matrix`: what the operator holds × what members run → the strategy that applies.

use std::io::IsTerminal;

use std::path::Path;

use super::out::{out, outln};
use super::{Cli, Failure, Format, fleetauth_home, load_registry};
use crate::operator::own_login;
use crate::plan::{OperatorHolds, ShareFlags, matrix_cell, rotation_label};
use crate::store::Store;

pub fn run(
    cli: &Cli,
    inventory: Option<&Path>,
    share: ShareFlags,
    format: Format,
) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    let member_providers: Vec<String> = match inventory {
        Some(path) => {
            let inv = crate::inventory::load(path, &registry.names())?;
            let mut v: Vec<String> = inv
                .members
                .iter()
                .flat_map(|m| m.providers.clone())
                .collect();
            v.sort();
            v.dedup();
            v
        }
        None => registry.names().iter().map(|s| s.to_string()).collect(),
    };
    let home = fleetauth_home();
    let stored: Vec<(String, String)> = if home.exists() {
        Store::open(home)
            .and_then(|s| s.index())
            .map(|i| i.into_iter().map(|e| (e.provider, e.kind)).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut rows = Vec::new();
    for (p, _) in registry.iter() {
        // The kinds of key held: the stored one, then each set operator variable's.
        let mut kinds: Vec<&str> = stored
            .iter()
            .filter(|(name, _)| *name == p.name)
            .map(|(_, kind)| kind.as_str())
            .collect();
        for k in &p.keys {
            if std::env::var_os(&k.env).is_some_and(|v| !v.is_empty())
                && !kinds.contains(&k.kind.as_str())
            {
                kinds.push(&k.kind);
            }
        }
        let api_key = !kinds.is_empty();
        let own = own_login(p).is_some_and(|l| l.status == "present");
        if !api_key && !own {
            continue;
        }
        let holds = OperatorHolds {
            api_key,
            own_login: own,
            login_rotates: p.login_rotates(),
        };
        let what = match (api_key, own) {
            (true, true) => format!("{} + own login", kinds.join(" + ")),
            (true, false) => kinds.join(" + "),
            _ => "own login".to_string(),
        };
        for m in &member_providers {
            // Whether the login a symmetric cell could copy may be shared safely.
            let rotation = match (m == &p.name, registry.get(m)) {
                (true, Some(mp)) if mp.login_rotates().is_some() || own => {
                    rotation_label(mp.login_rotates())
                }
                _ => "-",
            };
            rows.push((
                p.name.clone(),
                what.clone(),
                m.clone(),
                rotation,
                matrix_cell(&p.name, m, holds, share),
            ));
        }
    }
    match format {
        Format::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|(o, what, m, r, s)| serde_json::json!({"operator_provider": o, "operator_holds": what, "member_provider": m, "login_rotation": r, "strategy": s}))
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "matrix": list }))
                    .expect("serialisable")
            );
        }
        Format::Table => {
            if rows.is_empty() {
                outln!(
                    "The operator holds no credential for any provider: every member needs its own login, or `fleetauth auth set PROVIDER`."
                );
                return Ok(0);
            }
            let boxed = std::io::stdout().is_terminal();
            let mut t = crate::report::people_table(boxed);
            t.set_header([
                "OPERATOR HOLDS",
                "MEMBER PROVIDER",
                "LOGIN ROTATION",
                "STRATEGY",
            ]);
            for (o, what, m, r, s) in &rows {
                t.add_row([format!("{o} ({what})"), m.clone(), r.to_string(), s.clone()]);
            }
            out!("{}", crate::report::table_text(&mut t, boxed));
        }
    }
    Ok(0)
}
