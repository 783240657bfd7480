//! `fleetauth inventory check`

use std::path::Path;

use super::out::outln;
use super::{Cli, Failure, Format, load_registry};

pub fn run(cli: &Cli, path: &Path, limit: Option<&str>, format: Format) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    let inventory = crate::inventory::load(path, &registry.names())?;
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
            t.set_header(["MEMBER", "ADDRESS", "USER", "PROVIDERS", "TAGS"]);
            for m in &members {
                t.add_row([
                    m.name.clone(),
                    format!("{}:{}", m.ssh.host, m.ssh.port),
                    m.ssh.user.clone(),
                    m.providers.join(","),
                    m.tags.join(","),
                ]);
            }
            outln!("{t}");
            outln!("{}: {} members OK", inventory.path.display(), members.len());
        }
    }
    Ok(0)
}
