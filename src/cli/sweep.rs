//! `fleetauth sweep`

use super::out::out;
use super::{Cli, Failure, FleetArgs, Format, Prepared, prepare, use_color};
use crate::fleet::Progress;
use crate::report;

pub async fn run(
    cli: &Cli,
    fleet: &FleetArgs,
    deep: bool,
    valid_for: std::time::Duration,
) -> Result<i32, Failure> {
    let Prepared {
        members,
        registry,
        transport,
    } = prepare(cli, fleet)?;
    let progress = Progress::new(members.len(), if deep { "deep sweep" } else { "sweep" });
    let jobs = super::in_flight(fleet);
    let opts = crate::sweep::SweepOptions { deep, valid_for };
    let rows = crate::sweep::sweep_fleet(transport, registry, members, opts, jobs, &progress).await;
    match fleet.format {
        Format::Json => out!("{}", report::to_json(&rows)),
        Format::Table => out!("{}", report::to_table(&rows, use_color(cli.color))),
    }
    Ok(report::exit_code(&rows))
}
