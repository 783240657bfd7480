//! `fleetauth provision`

use super::out::out;
use super::{Cli, Failure, FleetArgs, Format, Prepared, fleetauth_home, prepare, use_color};
use crate::keys::KeyBroker;
use crate::provision::{ProvisionOptions, provision};
use crate::report;

pub async fn run(
    cli: &Cli,
    fleet: &FleetArgs,
    check: bool,
    share_oauth: bool,
    keep_backup: bool,
) -> Result<i32, Failure> {
    let Prepared {
        members,
        registry,
        transport,
    } = prepare(cli, fleet)?;
    let home = fleetauth_home();
    let mut broker = KeyBroker::new(Some(home.clone()), !fleet.no_input);
    let opts = ProvisionOptions {
        check,
        jobs: super::in_flight(fleet),
        audit_dir: home,
        share_oauth,
        keep_backup,
    };
    let rows = provision(transport, registry, members, &mut broker, &opts).await;
    match fleet.format {
        Format::Json => out!("{}", report::to_json(&rows)),
        Format::Table => out!("{}", report::to_table(&rows, use_color(cli.color))),
    }
    Ok(report::exit_code(&rows))
}
