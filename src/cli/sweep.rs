//! `fleetauth sweep`

use super::{Cli, Failure, FleetArgs, Format, Prepared, prepare, use_color};
use crate::fleet::{Progress, for_each_member};
use crate::report;

pub async fn run(cli: &Cli, fleet: &FleetArgs, deep: bool) -> Result<i32, Failure> {
    let Prepared {
        members,
        registry,
        transport,
    } = prepare(cli, fleet)?;
    let progress = Progress::new(members.len(), if deep { "deep sweep" } else { "sweep" });
    let rows = for_each_member(members, super::in_flight(fleet), &progress, move |m| {
        crate::sweep::sweep_member(transport.clone(), registry.clone(), m, deep)
    })
    .await;
    match fleet.format {
        Format::Json => print!("{}", report::to_json(&rows)),
        Format::Table => print!("{}", report::to_table(&rows, use_color(cli.color))),
    }
    Ok(report::exit_code(&rows))
}
