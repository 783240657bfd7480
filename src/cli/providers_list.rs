//! `fleetauth providers list`

use std::io::IsTerminal;

use super::out::{out, outln};
use super::{Cli, Failure, Format, load_registry};
use crate::provider::Install;

pub fn run(cli: &Cli, format: Format) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    let install = |i: &Install| match i {
        Install::EnvFile { var } => format!("env file: {var}"),
        Install::LoginCommand { args } => format!("login command: {}", args.join(" ")),
    };
    match format {
        Format::Json => {
            let list: Vec<_> = registry
                .iter()
                .map(|(p, origin)| {
                    serde_json::json!({
                        "name": p.name, "display_name": p.display_name, "binary": p.binary,
                        "key_env": p.key_env, "install": install(&p.install), "origin": origin,
                        "keys": p.keys.iter().map(|k| serde_json::json!({
                            "kind": k.kind, "description": k.description, "env": k.env,
                            "install": install(&k.install),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "providers": list })).unwrap()
            );
        }
        Format::Table => {
            let boxed = std::io::stdout().is_terminal();
            let mut t = crate::report::people_table(boxed);
            t.set_header([
                "PROVIDER",
                "NAME",
                "BINARY",
                "KEY KIND",
                "KEY VARIABLE",
                "INSTALL",
                "DEFINED IN",
            ]);
            // One line per kind of key fleetauth may push (`auth set --kind`).
            for (p, origin) in registry.iter() {
                let kinds: Vec<[String; 3]> = match p.keys.is_empty() {
                    true => vec![["-".into(), "-".into(), "nothing to push".into()]],
                    false => p
                        .keys
                        .iter()
                        .map(|k| [k.kind.replace('_', "-"), k.env.clone(), install(&k.install)])
                        .collect(),
                };
                for (i, [kind, env, how]) in kinds.into_iter().enumerate() {
                    let first = |v: &str| if i == 0 { v.to_string() } else { String::new() };
                    t.add_row([
                        first(&p.name),
                        first(&p.display_name),
                        first(&p.binary),
                        kind,
                        env,
                        how,
                        first(origin),
                    ]);
                }
            }
            out!("{}", crate::report::table_text(&mut t, boxed));
        }
    }
    Ok(0)
}
