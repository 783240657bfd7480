//! `fleetauth provision`

use std::sync::Arc;

use super::formats::RowReport;
use super::{Cli, Failure, FleetArgs, Prepared, fleetauth_home, prepare, use_color};
use crate::keys::KeyBroker;
use crate::provision::{ProvisionOptions, provision};
use crate::report;

/// `provision`'s own flags.
pub struct Flags {
    pub check: bool,
    pub share_oauth: bool,
    pub share_rotating_login: bool,
    pub allow_key_shape: Vec<String>,
    pub keep_backup: bool,
}

pub async fn run(cli: &Cli, fleet: &FleetArgs, flags: Flags) -> Result<i32, Failure> {
    let Prepared {
        members,
        registry,
        transport,
    } = prepare(cli, fleet)?;
    if let Some(unknown) = flags
        .allow_key_shape
        .iter()
        .find(|p| registry.get(p).is_none())
    {
        return Err(Failure::usage(format!(
            "error: --allow-key-shape {unknown}: unknown provider\n  = help: known providers: {}",
            registry.names().join(", ")
        )));
    }
    let home = fleetauth_home();
    let mut broker =
        KeyBroker::new(Some(home.clone()), !fleet.no_input).allow_key_shape(flags.allow_key_shape);
    let output = RowReport::new(fleet.format, use_color(cli.color), "provision");
    let opts = ProvisionOptions {
        on_member: Some(Arc::new(output.member_finished())),
        check: flags.check,
        jobs: super::in_flight(fleet),
        audit_dir: home,
        share_oauth: flags.share_oauth,
        share_rotating_login: flags.share_rotating_login,
        keep_backup: flags.keep_backup,
    };
    let rows = provision(transport, registry, members, &mut broker, &opts).await;
    output.finish(&rows);
    Ok(report::exit_code(&rows))
}
