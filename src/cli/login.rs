//! `fleetauth login PROVIDER…`: wiring and printing; the pipeline is [`crate::login`].
//!
//! Events go to stderr as plain lines for the person at the terminal, and with `--format jsonl`
//! also to stdout as one JSON object per line (the contract scripts read). Afterwards the rows
//! are printed as by `sweep` (table or json; jsonl: `verified` events and a final `summary`).

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::out::{errln, out, outln};
use super::{Cli, Failure, FleetArgs, FleetFormat, Prepared, fleetauth_home, prepare, use_color};
use crate::fleet::Progress;
use crate::inventory::InventoryFormat;
use crate::login::input::{CodeBroker, InputMode};
use crate::login::{LoginOptions, Relay, Sink, login_fleet};
use crate::report;

/// Output of `login` on stdout.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LoginFormat {
    Table,
    Json,
    /// One JSON event per line as the logins progress, then a `summary` line.
    Jsonl,
}

/// `login`'s arguments (the fleet options, with `jsonl` among the formats).
#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// Inventory file: fleetauth TOML, or an Ansible INI/YAML inventory.
    #[arg(short, long, value_name = "FILE", env = super::INVENTORY_ENV)]
    pub inventory: std::path::PathBuf,
    /// How to read the inventory (auto: by content).
    #[arg(long, value_enum, default_value_t = InventoryFormat::Auto, value_name = "FMT")]
    pub inventory_format: InventoryFormat,
    /// Only these members: comma-separated names, globs or tags.
    #[arg(long, value_name = "SEL")]
    pub limit: Option<String>,
    /// At most this many SSH handshakes (key exchange + authentication, the CPU-heavy part) at
    /// once; a member waiting on the network holds no slot.
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub jobs: u32,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = LoginFormat::Table)]
    pub format: LoginFormat,
    /// Never prompt: a login that needs a pasted code fails (codes are otherwise read from a
    /// hidden prompt on a terminal, or from stdin lines `[MEMBER PROVIDER] CODE`).
    #[arg(long)]
    pub no_input: bool,
    /// Deadline of each login, replacing the provider's (at most 24h).
    #[arg(long, value_parser = crate::config_toml::parse_duration)]
    pub deadline: Option<Duration>,
    #[command(flatten)]
    pub window: super::ValidFor,
    /// The providers to log in.
    #[arg(required = true, value_name = "PROVIDER")]
    pub providers: Vec<String>,
}

pub async fn run(cli: &Cli, args: &LoginArgs) -> Result<i32, Failure> {
    let fleet = FleetArgs {
        inventory: args.inventory.clone(),
        inventory_format: args.inventory_format,
        limit: args.limit.clone(),
        shard: None,
        provider_filter: Vec::new(),
        jobs: args.jobs,
        format: FleetFormat::Table,
        no_input: args.no_input,
    };
    let Prepared {
        members,
        registry,
        transport,
    } = prepare(cli, &fleet)?;
    for name in &args.providers {
        let Some(p) = registry.get(name) else {
            return Err(Failure::usage(format!(
                "error: unknown provider `{name}`\n  = help: known providers: {}",
                registry.names().join(", ")
            )));
        };
        if p.login.is_none() {
            return Err(Failure::usage(format!(
                "error: {name} has no login flow fleetauth can relay (its definition has no [login])\n  = help: push a key instead: `fleetauth auth set {name}`, then `fleetauth provision`"
            )));
        }
    }
    let mode = if args.no_input {
        InputMode::Nothing
    } else if std::io::stdin().is_terminal() {
        InputMode::Terminal
    } else {
        InputMode::Lines
    };
    let broker = CodeBroker::spawn(mode);
    let (sink, mut events) = Sink::new();
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = cancel_tx.send(true);
                // Keep the sender: the logins are ending.
                std::future::pending::<()>().await;
            }
        });
    }
    let jsonl = args.format == LoginFormat::Jsonl;
    let printer = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            errln!("{}", e.human());
            if jsonl {
                outln!("{}", serde_json::to_string(&e).expect("events serialise"));
            }
        }
    });
    let opts = LoginOptions {
        providers: args.providers.clone(),
        deadline: args.deadline,
        audit_dir: Some(fleetauth_home()),
        jobs: super::in_flight(&fleet),
        valid_for: args.window.valid_for,
    };
    let progress = Progress::hidden();
    let relay = Relay {
        sink,
        broker,
        cancel,
    };
    let rows = login_fleet(transport, registry, members, opts, relay, &progress).await;
    let _ = printer.await;
    match args.format {
        LoginFormat::Json => out!("{}", report::to_json(&rows)),
        LoginFormat::Table => out!("{}", report::to_table(&rows, use_color(cli.color))),
        LoginFormat::Jsonl => out!("{}", report::jsonl::summary_line(&rows)),
    }
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(130);
    }
    Ok(report::exit_code(&rows))
}
