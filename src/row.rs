//! The row model: what fleetauth reports for one member × provider, as types.
//!
//! Every command's result is a list of [`Row`]s; `assess`, `plan`, `sweep`, `provision` and
//! `report` all speak it and none of them needs another to do so. The values that reach the JSON
//! contract — [`State`], [`Source`], [`Action`], [`Reason`] — are enums spelled once, by
//! [`spelled!`]: the same word in JSON, in the table, in messages and (for inventory enums) in
//! TOML, with `ALL` listing every value so README's contract table and the golden document can be
//! checked against the types.

use serde::{Deserialize, Serialize};

/// An enum whose every value has one spelling: `as_str`, `Display`, `FromStr`, `Serialize`,
/// `Deserialize` and `ALL` all come from the one list given here.
#[macro_export]
macro_rules! spelled {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Every spelling, for "accepted values" messages.
            pub fn spellings() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::row::UnknownSpelling;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::row::UnknownSpelling {
                        value: s.to_string(),
                        accepted: Self::spellings(),
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A word that is none of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of: {}", .accepted.join(", "))]
pub struct UnknownSpelling {
    pub value: String,
    pub accepted: Vec<&'static str>,
}

spelled! {
    /// A row's state (design §4).
    pub enum State {
        Ready = "ready",
        NeedsAuth = "needs_auth",
        NotInstalled = "not_installed",
        Unreachable = "unreachable",
        Error = "error",
    }
}

spelled! {
    /// What makes a row ready.
    pub enum Source {
        /// The prompt answered, and no credential fleetauth can see explains it (a keychain, a
        /// helper) — or the CLI needs none.
        Probe = "probe",
        /// An OAuth login file in the CLI's config home.
        OauthFile = "oauth_file",
        /// A key file the CLI keeps (codex `auth.json` with an API key).
        KeyFile = "key_file",
        /// A variable in fleetauth's env file on the member.
        EnvFile = "env_file",
        /// A variable in the member's own environment (sshd, rc files).
        Env = "env",
        /// The CLI's own status command reports a login (presence only, without `--deep`).
        Status = "status",
        /// A CLI setting that selects the credential.
        Setting = "setting",
        /// An OS keychain entry (macOS keychain, libsecret), seen present, never read.
        Keychain = "keychain",
        /// A key fleetauth pushed in this run and verified.
        PushedKey = "pushed_key",
        /// The operator's own OAuth login, copied by `--share-oauth` and verified.
        SharedOauth = "shared_oauth",
    }
}

spelled! {
    /// What provisioning did to a member × provider.
    pub enum Action {
        None = "none",
        Pushed = "pushed",
        Unchanged = "unchanged",
        WouldPush = "would_push",
        Failed = "failed",
    }
}

spelled! {
    /// Why a member was unreachable.
    pub enum Reason {
        /// Nothing listened, or the connection was refused.
        Refused = "refused",
        /// The connection or the command's deadline passed.
        Timeout = "timeout",
        /// The member refused every key offered.
        Auth = "auth",
        /// The host key was unknown, changed or revoked.
        HostKey = "host_key",
        /// The connection broke, or the SSH protocol failed.
        Network = "network",
        /// A jump host (ProxyJump) was down, refused fleetauth, or would not forward to the
        /// member; the detail names the hop. The member itself was not reached.
        Jump = "jump",
    }
}

/// Where the credential that made a probe succeed lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialHome {
    /// fleetauth's env file on the member (a key pushed earlier, or put there by the operator).
    EnvFile,
    /// The member's own login: an OAuth file, a key file, its own environment.
    MemberLogin,
    /// Unknown (nothing was found, yet the prompt answered — a keychain, a helper).
    Unknown,
}

/// One member × provider result. `Deserialize` reads results back (`fleetauth report merge`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Row {
    pub member: String,
    pub host: String,
    pub provider: String,
    pub state: State,
    /// What makes it ready, or null.
    pub source: Option<Source>,
    /// Only for `provision`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    pub version: Option<String>,
    pub detail: String,
    /// Only for `unreachable` rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Seconds from the check until the expiry of the credential the CLI uses (negative: it
    /// expired that long ago); only where that credential carries an expiry (an OAuth login).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

/// The member a row is about: what every row of it repeats.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub member: &'a str,
    pub host: &'a str,
}

impl Row {
    /// A row for `provider` of `subject` with just a state and a detail.
    pub fn new(subject: Subject<'_>, provider: &str, state: State, detail: String) -> Row {
        Row {
            member: subject.member.to_string(),
            host: subject.host.to_string(),
            provider: provider.to_string(),
            state,
            source: None,
            action: None,
            version: None,
            detail,
            reason: None,
            expires_in: None,
        }
    }

    /// One row per provider with the same state and detail.
    pub fn for_all<S: AsRef<str>>(
        subject: Subject<'_>,
        providers: &[S],
        state: State,
        detail: &str,
    ) -> Vec<Row> {
        providers
            .iter()
            .map(|p| Row::new(subject, p.as_ref(), state, detail.to_string()))
            .collect()
    }

    /// One `unreachable` row per provider.
    pub fn unreachable<S: AsRef<str>>(
        subject: Subject<'_>,
        providers: &[S],
        reason: Reason,
        detail: &str,
    ) -> Vec<Row> {
        let mut rows = Row::for_all(subject, providers, State::Unreachable, detail);
        for r in &mut rows {
            r.reason = Some(reason);
        }
        rows
    }

    /// The rows of a member whose task died (a bug: a panic), so the report still has one row
    /// per member × provider.
    pub fn internal_failure<S: AsRef<str>>(subject: Subject<'_>, providers: &[S]) -> Vec<Row> {
        Row::for_all(
            subject,
            providers,
            State::Error,
            "internal error: this member's task failed (a fleetauth bug; run with RUST_LOG=debug and report it)",
        )
    }
}

/// Counts over a list of rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub members: usize,
    pub rows: usize,
    pub ready: usize,
    pub needs_auth: usize,
    pub not_installed: usize,
    pub unreachable: usize,
    pub error: usize,
}

impl Summary {
    pub fn of(rows: &[Row]) -> Summary {
        let mut s = Summary {
            rows: rows.len(),
            ..Default::default()
        };
        let mut members: Vec<&str> = rows.iter().map(|r| r.member.as_str()).collect();
        members.sort_unstable();
        members.dedup();
        s.members = members.len();
        for r in rows {
            match r.state {
                State::Ready => s.ready += 1,
                State::NeedsAuth => s.needs_auth += 1,
                State::NotInstalled => s.not_installed += 1,
                State::Unreachable => s.unreachable += 1,
                State::Error => s.error += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips_through_json_and_from_str() {
        fn check<T: Serialize + std::str::FromStr + PartialEq + std::fmt::Debug + Copy>(
            all: &[T],
            text: impl Fn(T) -> &'static str,
        ) {
            for v in all {
                let json = serde_json::to_string(v).unwrap();
                assert_eq!(json, format!("\"{}\"", text(*v)));
                assert_eq!(text(*v).parse::<T>().ok(), Some(*v));
            }
        }
        check(State::ALL, State::as_str);
        check(Source::ALL, Source::as_str);
        check(Action::ALL, Action::as_str);
        check(Reason::ALL, Reason::as_str);
        let err = "nope".parse::<State>().unwrap_err().to_string();
        assert!(err.contains("ready, needs_auth"), "{err}");
    }

    /// README's contract table lists exactly the values the types have.
    #[test]
    fn readme_contract_table_lists_every_value() {
        let readme = include_str!("../README.md");
        let line = |field: &str| {
            readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{field}` |")))
                .unwrap_or_else(|| panic!("README has no contract row for `{field}`"))
        };
        let listed = |field: &str| -> Vec<String> {
            let l = line(field);
            let cell = l.splitn(3, '|').nth(2).unwrap_or_default();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let spelled = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(listed("state"), spelled(State::spellings()));
        assert_eq!(listed("source"), spelled(Source::spellings()));
        assert_eq!(listed("action"), spelled(Action::spellings()));
        assert_eq!(listed("reason"), spelled(Reason::spellings()));
    }

    #[test]
    fn rows_for_every_provider_carry_the_reason() {
        let subject = Subject {
            member: "m1",
            host: "10.0.0.1",
        };
        let rows = Row::unreachable(subject, &["a", "b"], Reason::Timeout, "gone");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.reason == Some(Reason::Timeout)
            && r.state == State::Unreachable
            && r.detail == "gone"));
        let s = Summary::of(&rows);
        assert_eq!((s.members, s.rows, s.unreachable), (1, 2, 2));
    }
}
