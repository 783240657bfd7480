//! `fleetauth inventory check`

use std::path::Path;

use super::out::{errln, outln};
use super::{Cli, Failure, Format, load_registry};

pub fn run(
    cli: &Cli,
    path: &Path,
    inventory_format: crate::inventory::InventoryFormat,
    limit: Option<&str>,
    format: Format,
) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    let inventory = crate::inventory::load_as(path, &registry.names(), inventory_format)?;
    let members = inventory.select(limit)?;
    match format {
        Format::Json => {
            let list: Vec<_> = members
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "name": m.name, "host": m.ssh.host, "port": m.ssh.port, "user": m.ssh.user,
                        "providers": m.providers, "tags": m.tags, "env_file": m.env_file,
                        "host_key_checking": m.ssh.host_key_checking,
                        "identity_file": m.ssh.identity_file, "known_hosts": m.ssh.known_hosts,
                        "proxy_jump": m.proxy_jump,
                    })
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "members": list })).unwrap()
            );
        }
        Format::Table => {
            let mut t = crate::report::new_table(false);
            t.set_header([
                "MEMBER",
                "ADDRESS",
                "USER",
                "PROXY JUMP",
                "PROVIDERS",
                "TAGS",
            ]);
            for m in &members {
                t.add_row([
                    m.name.clone(),
                    format!("{}:{}", m.ssh.host, m.ssh.port),
                    m.ssh.user.clone(),
                    m.proxy_jump.clone().unwrap_or_else(|| "-".to_string()),
                    m.providers.join(","),
                    m.tags.join(","),
                ]);
            }
            outln!("{t}");
        }
    }
    let problems: Vec<_> = members.iter().flat_map(|m| m.local_problems()).collect();
    for p in &problems {
        let level = if p.error { "error" } else { "warning" };
        errln!("{level}: {}", p.message);
    }
    let errors = problems.iter().filter(|p| p.error).count();
    if errors > 0 {
        return Err(Failure::usage(format!(
            "error: {}: {errors} member(s) with unusable local files (see above)",
            inventory.path.display()
        )));
    }
    if format == Format::Table {
        outln!("{}: {} members OK", inventory.path.display(), members.len());
    }
    Ok(0)
}
