//! fleetauth: make sure every member of a fleet can run its coding-agent CLI before work is
//! dispatched to it. See README.md for the user-facing contract.

pub mod config_error;
mod config_toml;
pub mod inventory;
pub mod provider;
pub mod shell;
pub mod ssh;
