//! `fleetauth sweep`

use super::formats::RowReport;
use super::{Cli, Failure, FleetArgs, Prepared, prepare, use_color};
use crate::fleet::Progress;
use crate::report;

pub async fn run(cli: &Cli, fleet: &FleetArgs, deep: bool) -> Result<i32, Failure> {
    let Prepared {
        members,
        registry,
        transport,
    } = prepare(cli, fleet)?;
    let output = RowReport::new(fleet.format, use_color(cli.color), "sweep");
    let progress = output.listening(Progress::new(
        members.len(),
        if deep { "deep sweep" } else { "sweep" },
    ));
    let jobs = super::in_flight(fleet);
    let rows = crate::sweep::sweep_fleet(transport, registry, members, deep, jobs, &progress).await;
    output.finish(&rows);
    Ok(report::exit_code(&rows))
}
