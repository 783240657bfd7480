//! fleetauth: make sure every member of a fleet can run its coding-agent CLI before work is
//! dispatched to it. See README.md for the user-facing contract.

mod ansible;
pub mod assess;
pub mod audit;
pub mod cli;
pub mod config_error;
mod config_toml;
pub mod dispatch;
pub mod envfile;
pub mod fleet;
pub mod inventory;
pub mod keys;
pub mod login;
pub mod login_flow;
pub mod mask;
pub mod openssh_config;
pub mod operator;
pub mod plan;
pub mod probe;
pub mod provider;
pub mod provision;
pub mod remote;
pub mod report;
pub mod row;
pub mod shadowing;
pub mod shard;
pub mod shell;
pub mod ssh;
pub mod store;
pub mod sweep;

#[cfg(test)]
pub(crate) mod fake;
