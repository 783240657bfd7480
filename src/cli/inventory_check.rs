//! `fleetauth inventory check`: validates the inventory and shows each member's resolved SSH
//! target (inventory > ssh_config > defaults).

use std::io::IsTerminal;

use std::path::{Path, PathBuf};

use super::out::{errln, out, outln};
use super::{Cli, Failure, Format, apply_ssh_config, load_registry};
use crate::inventory::Member;
use crate::ssh::Target;

fn paths(list: &[PathBuf]) -> Vec<String> {
    list.iter().map(|p| p.display().to_string()).collect()
}

/// The identities a member authenticates with, as shown.
fn identities(m: &Member) -> Vec<String> {
    target_identities(&m.ssh)
}

fn target_identities(t: &Target) -> Vec<String> {
    if !t.identities.is_empty() {
        return paths(&t.identities);
    }
    let mut shown = vec!["ssh-agent".to_string()];
    shown.extend(paths(&t.default_identities));
    shown
}

/// The jump hosts, first hop first (`-`: direct).
fn jump_chain(t: &Target) -> String {
    if t.jumps.is_empty() {
        return "-".into();
    }
    t.jumps
        .iter()
        .map(Target::user_addr)
        .collect::<Vec<_>>()
        .join(" > ")
}

pub fn run(
    cli: &Cli,
    path: &Path,
    inventory_format: crate::inventory::InventoryFormat,
    limit: Option<&str>,
    format: Format,
) -> Result<i32, Failure> {
    let registry = load_registry(cli)?;
    let inventory = crate::inventory::load_as(path, &registry.names(), inventory_format)?;
    let mut members: Vec<Member> = inventory.select(limit)?.into_iter().cloned().collect();
    apply_ssh_config(cli, &inventory, &mut members)?;
    match format {
        Format::Json => {
            let list: Vec<_> = members
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "name": m.name, "host": m.ssh.host, "port": m.ssh.port, "user": m.ssh.user,
                        "providers": m.providers, "tags": m.tags, "env_file": m.env_file,
                        "host_key_checking": m.ssh.host_key_checking,
                        "identities": identities(m),
                        "identities_only": m.ssh.identities_only,
                        "certificate_files": paths(&m.ssh.certificate_files),
                        "known_hosts": m.ssh.known_hosts.display().to_string(),
                        "other_known_hosts": paths(&m.ssh.other_known_hosts),
                        "host_key_alias": m.ssh.host_key_alias,
                        "proxy_jump": m.ssh.proxy_jump,
                        "jumps": m.ssh.jumps.iter().map(|hop| serde_json::json!({
                            "name": hop.name, "host": hop.host, "port": hop.port, "user": hop.user,
                            "identities": target_identities(hop),
                            "known_hosts": hop.known_hosts.display().to_string(),
                            "host_key_checking": hop.host_key_checking,
                        })).collect::<Vec<_>>(),
                        "connect_timeout_secs": m.ssh.connect_timeout.as_secs_f64(),
                    })
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "members": list })).unwrap()
            );
        }
        Format::Table => {
            let boxed = std::io::stdout().is_terminal();
            let mut t = crate::report::people_table(boxed);
            t.set_header([
                "MEMBER",
                "ADDRESS",
                "USER",
                "IDENTITIES",
                "JUMP HOSTS",
                "KNOWN HOSTS",
                "PROVIDERS",
                "TAGS",
            ]);
            for m in &members {
                let mut known = vec![m.ssh.known_hosts.display().to_string()];
                known.extend(paths(&m.ssh.other_known_hosts));
                t.add_row([
                    m.name.clone(),
                    m.ssh.addr(),
                    m.ssh.user.clone(),
                    identities(m).join(","),
                    jump_chain(&m.ssh),
                    known.join(","),
                    m.providers.join(","),
                    m.tags.join(","),
                ]);
            }
            out!("{}", crate::report::table_text(&mut t, boxed));
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
