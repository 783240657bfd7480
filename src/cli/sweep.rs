//! `fleetauth sweep`

use std::sync::Arc;

use super::{Cli, EXIT_USAGE, Failure, FleetArgs, Format, load_registry, use_color};
use crate::fleet::{Progress, for_each_member};
use crate::inventory::Member;
use crate::provider::Registry;
use crate::report;
use crate::ssh::Transport;
use crate::ssh::client::{RusshTransport, TransportOptions};

/// What every fleet command starts from.
pub struct Prepared {
    pub members: Vec<Member>,
    pub registry: Arc<Registry>,
    pub transport: Arc<dyn Transport>,
}

/// Load the inventory and registry, select members, build the transport: everything that can
/// fail with exit 2 before any member is contacted.
pub fn prepare(cli: &Cli, fleet: &FleetArgs) -> Result<Prepared, Failure> {
    let registry = load_registry(cli)?;
    let names = registry.names();
    let inventory = crate::inventory::load(&fleet.inventory, &names)?;
    let members: Vec<Member> = inventory
        .select(fleet.limit.as_deref())?
        .into_iter()
        .cloned()
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    let opts = TransportOptions {
        interactive: !fleet.no_input,
        ..TransportOptions::default()
    };
    let transport = RusshTransport::new(&refs, opts).map_err(|e| Failure {
        code: EXIT_USAGE,
        message: e.to_string(),
    })?;
    Ok(Prepared {
        members,
        registry: Arc::new(registry),
        transport: Arc::new(transport),
    })
}

pub async fn run(cli: &Cli, fleet: &FleetArgs, deep: bool) -> Result<i32, Failure> {
    let Prepared {
        members,
        registry,
        transport,
    } = prepare(cli, fleet)?;
    let progress = Progress::new(members.len(), if deep { "deep sweep" } else { "sweep" });
    let rows = for_each_member(members, fleet.jobs as usize, &progress, move |m| {
        crate::sweep::sweep_member(transport.clone(), registry.clone(), m, deep)
    })
    .await;
    match fleet.format {
        Format::Json => print!("{}", report::to_json(&rows)),
        Format::Table => print!("{}", report::to_table(&rows, use_color(cli.color))),
    }
    Ok(report::exit_code(&rows))
}
