//! The inventory: which members make up the fleet and how to reach them.
//!
//! One TOML file: a `[defaults]` table and one `[members.NAME]` table per member. Every member
//! key may be set in `[defaults]`; a member's own value wins. Parsing turns the file into typed
//! [`Member`]s once (durations, paths, enums), so nothing downstream re-validates. Every error
//! names the file, line and column, the offending key and the keys that are accepted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// A validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// In file order.
    pub members: Vec<Member>,
}

/// One member machine, with defaults applied.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Local path, `~` expanded. None → ssh-agent.
    pub identity_file: Option<PathBuf>,
    /// Local known_hosts file, `~` expanded (default `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    pub host_key_checking: HostKeyChecking,
    /// Remote path of the member's environment file (`~/` = the member's HOME).
    pub env_file: String,
    pub providers: Vec<String>,
    pub tags: Vec<String>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Overrides every provider's probe deadline for this member.
    pub probe_timeout: Option<Duration>,
    /// Per provider; missing = `auto`.
    pub auth_mode: BTreeMap<String, AuthMode>,
}

impl Member {
    pub fn auth_mode(&self, provider: &str) -> AuthMode {
        self.auth_mode.get(provider).copied().unwrap_or(AuthMode::Auto)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    #[default]
    Strict,
    AcceptNew,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    Auto,
    ApiKey,
    Oauth,
}
