//! `fleetauth providers list`

use super::out::outln;
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
                    })
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "providers": list })).unwrap()
            );
        }
        Format::Table => {
            let mut t = crate::report::new_table(false);
            t.set_header([
                "PROVIDER",
                "NAME",
                "BINARY",
                "KEY VARIABLE",
                "INSTALL",
                "DEFINED IN",
            ]);
            for (p, origin) in registry.iter() {
                t.add_row([
                    p.name.clone(),
                    p.display_name.clone(),
                    p.binary.clone(),
                    p.key_env.clone(),
                    install(&p.install),
                    origin.to_string(),
                ]);
            }
            outln!("{t}");
        }
    }
    Ok(0)
}
