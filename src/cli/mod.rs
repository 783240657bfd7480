//! The command line: argument parsing and one file per command. Commands only wire library
//! pieces together; no SSH, parsing or decision logic lives here.
//!
//! Commands print only through [`out`] (`outln!` and friends), which ends quietly when stdout's
//! reader goes away (`| head -1`); `print!` would panic there, so it is denied.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod auth;
mod docs;
mod formats;
mod inventory_check;
mod login;
mod matrix;
pub mod out;
mod providers_list;
mod provision;
mod report_merge;
mod run;
mod sweep;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use crate::config_error::ConfigError;
use crate::inventory::{InventoryFormat, Member};
use crate::provider::Registry;
use crate::ssh::Transport;
use crate::ssh::{RusshTransport, Target, TransportOptions};

/// Members in flight at once (each holds one socket); `-j` bounds their handshakes.
pub const MAX_IN_FLIGHT: usize = 1024;

/// How many members may be in flight: `-j` bounds the CPU-heavy handshakes inside the
/// transport, so a member that never answers holds no slot; open sockets bound the rest.
pub fn in_flight(fleet: &FleetArgs) -> usize {
    let sockets = crate::fleet::raise_open_files_limit().saturating_sub(64) / 2;
    (fleet.jobs as usize).max(MAX_IN_FLIGHT.min(sockets))
}

/// Exit status for bad usage, inventory or provider files (nothing was contacted).
pub const EXIT_USAGE: i32 = 2;

/// The inventory used when `-i` is not given.
pub const INVENTORY_ENV: &str = "FLEETAUTH_INVENTORY";

/// The shells `fleetauth completions` writes for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Parser, Debug)]
#[command(
    name = "fleetauth",
    version,
    about = "Check and provision coding-agent CLI credentials across a fleet of machines over SSH",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Extra directory of provider definitions (*.toml); overrides built-ins by name. Repeatable.
    #[arg(long, global = true, value_name = "DIR")]
    pub providers_dir: Vec<PathBuf>,

    /// Colour in the table: auto (when stdout is a terminal), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// OpenSSH client configuration file for every member (replaces the inventory's
    /// `ssh_config`, default ~/.ssh/config), resolved with `ssh -G`.
    #[arg(short = 'F', long = "ssh-config", global = true, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// What `sweep`, `provision` and `run` print on stdout (see README.md for each format's
/// contract).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FleetFormat {
    /// `table` when stdout is a terminal, else `plain`.
    Auto,
    /// A table with borders and colour (the human view).
    Table,
    /// Aligned columns without borders or colour, one line per row.
    Plain,
    /// Tab-separated values: a header line, then one line per row (not for run).
    Tsv,
    /// One JSON document at the end.
    Json,
    /// JSON lines: each member's rows as it finishes, then a summary line.
    Jsonl,
    /// JUnit XML test report: one test case per member × provider (run: per member).
    Junit,
    /// Prometheus text exposition, for a node_exporter textfile collector (not for run).
    Prometheus,
}

/// Options shared by every command that contacts members.
#[derive(Args, Debug, Clone)]
pub struct FleetArgs {
    /// Inventory file: fleetauth TOML, or an Ansible INI/YAML inventory.
    #[arg(short, long, value_name = "FILE", env = INVENTORY_ENV)]
    pub inventory: PathBuf,

    /// How to read the inventory (auto: by content).
    #[arg(long, value_enum, default_value_t = InventoryFormat::Auto, value_name = "FMT")]
    pub inventory_format: InventoryFormat,

    /// Only these members: comma-separated names, globs or tags.
    #[arg(long, value_name = "SEL")]
    pub limit: Option<String>,

    /// Only shard K of N of the selected members (1 ≤ K ≤ N), split by member name so that
    /// N jobs together cover every member once; join their results with `fleetauth report merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::shard::Shard>,

    /// At most this many SSH handshakes computing at once (key exchange, host key check,
    /// signing: the CPU-heavy part); a handshake waiting on the network holds no slot, so any
    /// number of members far away are in flight together.
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub jobs: u32,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = FleetFormat::Auto, value_name = "FORMAT")]
    pub format: FleetFormat,

    /// Never prompt (identity passphrases, keys); fail instead.
    #[arg(long)]
    pub no_input: bool,

    /// Only these providers (repeatable, or a comma list): other providers' rows are left out,
    /// and members with none of them are not contacted.
    #[arg(
        long = "provider",
        id = "provider_filter",
        value_name = "P",
        value_delimiter = ','
    )]
    pub provider_filter: Vec<String>,
}

/// `--valid-for DUR` (sweep, provision).
#[derive(Args, Debug, Clone, Copy)]
pub struct ValidFor {
    /// How long a credential must stay usable to count as ready: a login that lapses sooner
    /// without a refresh, or a short-lived token, is needs_auth. At most 24h.
    #[arg(long = "valid-for", value_name = "DUR", default_value = "1h",
          value_parser = crate::config_toml::parse_duration)]
    pub valid_for: std::time::Duration,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read-only health sweep: installed, version, credential state (and with --deep, a real prompt).
    Sweep {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Also run each provider's minimal prompt with the env file sourced.
        #[arg(long)]
        deep: bool,
        #[command(flatten)]
        window: ValidFor,
    },
    /// Make every member × provider work: leave what works, else push a key and verify it.
    Provision {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Show the full plan (would_push, masked keys) and write nothing anywhere.
        #[arg(long)]
        check: bool,
        /// Where no key can be had, copy your own OAuth login for the same provider. Only logins
        /// whose refresh token does not rotate are copied (see `fleetauth matrix`).
        #[arg(long)]
        share_oauth: bool,
        /// With --share-oauth, also copy logins whose refresh token rotates (claude, codex): the
        /// first holder to refresh logs every other one out, your own login included.
        #[arg(long, requires = "share_oauth")]
        share_rotating_login: bool,
        /// Push this provider's key although its shape matches none of the provider's key
        /// patterns (a vendor's new key format). This run only; repeatable.
        #[arg(long, value_name = "PROVIDER")]
        allow_key_shape: Vec<String>,
        /// Keep the file a verified push replaced, as `<file>.fleetauth-prev` (0600) on the
        /// member. By default it is removed: it holds the previous key.
        #[arg(long)]
        keep_backup: bool,
        /// Where a pushed key would be shadowed (action `blocked`), remove what wins if it is
        /// safe: another variable in the env file, a JSON settings value in the CLI's own
        /// directory (gemini's selectedType). Done in the push's transaction, undone on failure.
        #[arg(long)]
        fix_shadowing: bool,
        /// Replace a working key in fleetauth's env file by the key collected now (store,
        /// environment, prompt), verify it, and restore the old one if it fails. Members whose
        /// working credential is their own login are left alone.
        #[arg(long)]
        rotate: bool,
        #[command(flatten)]
        window: ValidFor,
    },
    /// Run a command on every member with its env file sourced.
    Run {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Send fleetauth's stdin to every member (closed otherwise).
        #[arg(long)]
        stdin: bool,
        /// Deadline per member, at most 24h (default: the member's command_timeout).
        #[arg(long, value_parser = crate::config_toml::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run each member's own CLI login and relay its URL and code to you (device code,
    /// paste-back, browser); then verify every member with the minimal prompt.
    Login {
        #[command(flatten)]
        args: login::LoginArgs,
    },
    /// The operator's local credential store.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Operator provider × member provider → the strategy provisioning uses.
    Matrix {
        /// Inventory whose members' providers (and auth modes) the matrix covers; default: every
        /// known provider.
        #[arg(short, long, value_name = "FILE", env = INVENTORY_ENV)]
        inventory: Option<PathBuf>,
        /// Show the strategies with --share-oauth.
        #[arg(long)]
        share_oauth: bool,
        /// Show the strategies with --share-oauth --share-rotating-login.
        #[arg(long, requires = "share_oauth")]
        share_rotating_login: bool,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Shell completions for bash, zsh or fish, on stdout (e.g. `fleetauth completions bash >
    /// /etc/bash_completion.d/fleetauth`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// The manual page (roff) on stdout (`fleetauth man | man -l -`), or with --dir one page per
    /// command written there (fleetauth.1, fleetauth-sweep.1, …).
    Man {
        /// Write every command's page into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Inventory commands.
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
    },
    /// Provider definition commands.
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
    /// Reports written by earlier runs.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Store a key: from a hidden prompt on a terminal, else stdin, or --from-env VAR.
    Set {
        /// The provider the key is for (`fleetauth providers list`).
        provider: String,
        /// Read the key from this environment variable.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        /// What the key is: one of the provider's key kinds (`fleetauth providers list`), e.g.
        /// `api-key`, `oauth-token` (claude setup-token), `access-token` (codex). Default: the
        /// kind the key's shape matches.
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// Store a key whose shape matches none of the provider's key patterns (it is checked
        /// again, and refused, at each provision unless that run allows it too).
        #[arg(long)]
        allow_key_shape: bool,
    },
    /// Remove a stored key.
    Unset {
        /// The provider whose stored key is removed.
        provider: String,
    },
    /// Local credentials per provider: store, environment, own CLI logins.
    Status {
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum InventoryCommand {
    /// Validate an inventory and list its members.
    Check {
        /// Inventory file: fleetauth TOML, or an Ansible INI/YAML inventory.
        #[arg(short, long, value_name = "FILE", env = INVENTORY_ENV)]
        inventory: PathBuf,
        /// How to read the inventory (auto: by content).
        #[arg(long, value_enum, default_value_t = InventoryFormat::Auto, value_name = "FMT")]
        inventory_format: InventoryFormat,
        /// Only these members: comma-separated names, globs or tags.
        #[arg(long, value_name = "SEL")]
        limit: Option<String>,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Join the JSON documents or JSON lines of several runs (e.g. one per `--shard`) into one document,
    /// summary and exit status; a member × provider in two files is refused.
    Merge {
        /// The JSON documents (`--format json`) or JSON lines (`--format jsonl`) to join.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = FleetFormat::Auto)]
        format: FleetFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProvidersCommand {
    /// List known providers and where each definition comes from.
    List {
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

/// A command's failure: what to print and which status to exit with.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: e.to_string(),
        }
    }
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The command could not do its work (status 1).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

/// fleetauth's own directory on the operator's machine; one definition, in the store.
pub use crate::store::fleetauth_home;

/// Built-in providers, then the user's config dir, then each `--providers-dir`.
pub fn load_registry(cli: &Cli) -> Result<Registry, ConfigError> {
    let mut dirs = vec![fleetauth_home().join("providers")];
    dirs.extend(cli.providers_dir.iter().cloned());
    Registry::load(&dirs)
}

pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stdout().is_terminal() && colour_allowed(),
    }
}

/// Whether the environment lets a terminal have colour: not under `NO_COLOR` (no-color.org)
/// nor `TERM=dumb`. main.rs asks too, for log lines on stderr.
pub fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

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
    let inventory = crate::inventory::load_as(&fleet.inventory, &names, fleet.inventory_format)?;
    let mut members: Vec<Member> = inventory
        .select(fleet.limit.as_deref())?
        .into_iter()
        .cloned()
        .collect();
    only_providers(&mut members, &fleet.provider_filter, &names)?;
    if let Some(shard) = fleet.shard {
        let selected = members.len();
        members.retain(|m| shard.holds(&m.name));
        if members.is_empty() {
            out::errln!("shard {shard} holds none of the {selected} selected members");
        }
    }
    apply_ssh_config(cli, &inventory, &mut members)?;
    let targets: Vec<Target> = members.iter().map(Member::target).collect();
    let opts = TransportOptions {
        interactive: !fleet.no_input,
        max_handshakes: Some(fleet.jobs as usize),
        sessions: Some((fleet.jobs as usize, in_flight(fleet))),
        ..TransportOptions::default()
    };
    let transport = RusshTransport::new(&targets, opts).map_err(|e| Failure {
        code: EXIT_USAGE,
        message: e.to_string(),
    })?;
    Ok(Prepared {
        members,
        registry: Arc::new(registry),
        transport: Arc::new(transport),
    })
}

/// `--provider`: keep only the named providers on each member, and only members left with one.
/// An unknown name, or names no selected member has, is a usage error (nothing contacted).
pub fn only_providers(
    members: &mut Vec<Member>,
    wanted: &[String],
    known: &[&str],
) -> Result<(), Failure> {
    if wanted.is_empty() {
        return Ok(());
    }
    if let Some(unknown) = wanted.iter().find(|p| !known.contains(&p.as_str())) {
        return Err(Failure::usage(format!(
            "error: --provider {unknown}: unknown provider\n  = help: known providers: {}",
            known.join(", ")
        )));
    }
    for m in members.iter_mut() {
        m.providers.retain(|p| wanted.contains(p));
    }
    members.retain(|m| !m.providers.is_empty());
    if members.is_empty() {
        return Err(Failure::usage(format!(
            "error: --provider {}: no selected member has {}",
            wanted.join(","),
            if wanted.len() == 1 {
                "this provider"
            } else {
                "any of these providers"
            }
        )));
    }
    Ok(())
}

/// Resolve `members` through their ssh_config (or `-F`), printing any warning on stderr.
pub fn apply_ssh_config(
    cli: &Cli,
    inventory: &crate::inventory::Inventory,
    members: &mut [Member],
) -> Result<(), Failure> {
    for w in &inventory.warnings {
        out::errln!("{w}");
    }
    let warnings = crate::openssh_config::apply(
        members.iter_mut().map(|m| &mut m.ssh),
        &inventory.ssh_config,
        cli.ssh_config.as_deref(),
        &inventory.path,
    )?;
    for w in warnings {
        tracing::warn!("{w}");
        out::errln!("{w}");
    }
    Ok(())
}

/// Run the parsed command; returns the process exit status.
pub async fn run(cli: Cli) -> Result<i32, Failure> {
    match &cli.command {
        Command::Sweep {
            fleet,
            deep,
            window,
        } => sweep::run(&cli, fleet, *deep, window.valid_for).await,
        Command::Provision {
            fleet,
            check,
            share_oauth,
            share_rotating_login,
            allow_key_shape,
            keep_backup,
            fix_shadowing,
            rotate,
            window,
        } => {
            let opts = provision::Flags {
                check: *check,
                share_oauth: *share_oauth,
                share_rotating_login: *share_rotating_login,
                allow_key_shape: allow_key_shape.clone(),
                keep_backup: *keep_backup,
                fix_shadowing: *fix_shadowing,
                rotate: *rotate,
                valid_for: window.valid_for,
            };
            provision::run(&cli, fleet, opts).await
        }
        Command::Run {
            fleet,
            stdin,
            timeout,
            command,
        } => run::run(&cli, fleet, command, *stdin, *timeout).await,
        Command::Login { args } => login::run(&cli, args).await,
        Command::Auth { command } => match command {
            AuthCommand::Set {
                provider,
                from_env,
                kind,
                allow_key_shape,
            } => auth::set(
                &cli,
                provider,
                from_env.as_deref(),
                kind.as_deref(),
                *allow_key_shape,
            ),
            AuthCommand::Unset { provider } => auth::unset(&cli, provider),
            AuthCommand::Status { format } => auth::status(&cli, *format),
        },
        Command::Matrix {
            inventory,
            share_oauth,
            share_rotating_login,
            format,
        } => matrix::run(
            &cli,
            inventory.as_deref(),
            crate::plan::ShareFlags {
                oauth: *share_oauth,
                rotating: *share_rotating_login,
            },
            *format,
        ),
        Command::Inventory {
            command:
                InventoryCommand::Check {
                    inventory,
                    inventory_format,
                    limit,
                    format,
                },
        } => inventory_check::run(
            &cli,
            inventory,
            *inventory_format,
            limit.as_deref(),
            *format,
        ),
        Command::Providers {
            command: ProvidersCommand::List { format },
        } => providers_list::run(&cli, *format),
        Command::Report {
            command: ReportCommand::Merge { files, format },
        } => report_merge::run(&cli, files, *format),
        Command::Completions { shell } => docs::completions(*shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
    }
}
