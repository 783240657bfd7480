//! The provisioning decision for one member × provider, as plain data.
//!
//! Provisioning tries three strategies in a fixed order — the CLI already works, the member's
//! own login works, or an API key collected out of band is pushed — narrowed by the member's
//! `auth_mode`. Keeping the decision a pure function of what was observed (no SSH, no I/O) makes
//! every orchestrator → member combination a unit test, and keeps `provision` and `matrix`
//! telling the same story.

use serde::Serialize;

use crate::inventory::AuthMode;
pub use crate::row::CredentialHome;
use crate::row::{Action, Row, State};

/// What the deep probe found before anything was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Before {
    pub state: State,
    pub home: CredentialHome,
}

/// Which strategy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// (a) the prompt already works with the env file sourced: leave it.
    PreAuthenticated,
    /// (b) the member's own login works: leave it.
    MemberLogin,
}

/// The decision for one member × provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do; it works.
    Leave(Strategy),
    /// Push the provider's key and verify it.
    Push,
    /// Copy the operator's own OAuth login and verify it (`--share-oauth` only).
    ShareOauth,
    /// No strategy applies; the operator must act (the remedy says how).
    NeedsAuth(String),
    /// Nothing can be decided: the CLI is missing, the member unreachable, the probe hung.
    Skip(State),
}

impl Decision {
    /// Whether the member must be changed (and then verified).
    pub fn acts(&self) -> bool {
        matches!(self, Decision::Push | Decision::ShareOauth)
    }

    /// The final row of a decision that changes nothing: the observed `row` with its action
    /// (`none`) and, where the decision says more than the probe did, its state and detail.
    pub fn settle(&self, mut row: Row) -> Row {
        row.action = Some(Action::None);
        match self {
            Decision::Leave(strategy) => {
                let how = match strategy {
                    Strategy::PreAuthenticated => "already works",
                    Strategy::MemberLogin => "member's own login works",
                };
                row.detail = format!("{how}: {}", row.detail);
            }
            Decision::NeedsAuth(remedy) => {
                row.state = State::NeedsAuth;
                row.detail = format!("{}; {remedy}", row.detail);
            }
            Decision::Skip(_) | Decision::Push | Decision::ShareOauth => {}
        }
        row
    }
}

/// Decide for one member × provider. `key_available` says whether a key can be had for the
/// provider (store, environment, or a prompt the operator will be asked); `share_available`
/// whether `--share-oauth` was given and the operator has an OAuth login for it. An API key is
/// preferred over a shared login: refresh tokens rotate, and two hosts sharing one break each
/// other.
pub fn decide(
    provider: &str,
    mode: AuthMode,
    before: Before,
    key_available: bool,
    share_available: bool,
    key_env: &str,
) -> Decision {
    let left = |home: CredentialHome| match home {
        CredentialHome::EnvFile => Strategy::PreAuthenticated,
        CredentialHome::MemberLogin | CredentialHome::Unknown => Strategy::MemberLogin,
    };
    let no_key = || {
        Decision::NeedsAuth(format!(
            "no {provider} key to push: run `fleetauth auth set {provider}` or `export {key_env}=…` and provision again"
        ))
    };
    match before.state {
        State::NotInstalled | State::Unreachable | State::Error => {
            return Decision::Skip(before.state);
        }
        State::Ready | State::NeedsAuth => {}
    }
    let ready = before.state == State::Ready;
    match mode {
        AuthMode::Oauth if ready => Decision::Leave(left(before.home)),
        AuthMode::Oauth if share_available => Decision::ShareOauth,
        AuthMode::Oauth => Decision::NeedsAuth(format!(
            "auth_mode = oauth: fleetauth pushes no key; log in to {provider} on the member (or use --share-oauth)"
        )),
        AuthMode::Auto if ready => Decision::Leave(left(before.home)),
        AuthMode::Auto | AuthMode::ApiKey if key_available => Decision::Push,
        AuthMode::Auto if share_available => Decision::ShareOauth,
        // api_key mode ignores member logins, but a key already in the env file that works is
        // exactly what it asks for.
        AuthMode::ApiKey if ready && before.home == CredentialHome::EnvFile => {
            Decision::Leave(Strategy::PreAuthenticated)
        }
        AuthMode::Auto | AuthMode::ApiKey => no_key(),
    }
}

/// What the operator holds for a provider, for `fleetauth matrix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperatorHolds {
    /// An API key in the store or the environment.
    pub api_key: bool,
    /// The operator's own CLI login for this provider.
    pub own_login: bool,
}

/// One cell of the matrix: what `provision` can do for a member of `member_provider` with the
/// credentials the operator holds for `operator_provider`. Credentials never cross providers:
/// a Claude login authenticates Claude Code only.
pub fn matrix_cell(
    operator_provider: &str,
    member_provider: &str,
    holds: OperatorHolds,
    share_oauth: bool,
) -> String {
    let first = "member's own login if it works";
    if operator_provider != member_provider {
        return format!(
            "{first}; the operator's {operator_provider} credentials cannot authenticate {member_provider}: \
             needs a {member_provider} key (`fleetauth auth set {member_provider}`)"
        );
    }
    if holds.api_key {
        format!("{first}, else push the operator's {member_provider} API key and verify it")
    } else if holds.own_login && share_oauth {
        format!(
            "{first}, else copy the operator's own OAuth login (--share-oauth; refresh tokens rotate)"
        )
    } else if holds.own_login {
        format!(
            "{first}, else needs_auth: the operator's own login is shared only with --share-oauth; \
             or `fleetauth auth set {member_provider}`"
        )
    } else {
        format!("{first}, else needs_auth: `fleetauth auth set {member_provider}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthMode::*;
    use CredentialHome::*;

    fn before(state: State, home: CredentialHome) -> Before {
        Before { state, home }
    }

    fn d(mode: AuthMode, b: Before, key: bool) -> Decision {
        decide("gemini", mode, b, key, false, "GEMINI_API_KEY")
    }

    fn share(mode: AuthMode, b: Before, key: bool) -> Decision {
        decide("claude", mode, b, key, true, "ANTHROPIC_API_KEY")
    }

    #[test]
    fn shared_login_only_when_opted_in_and_no_key() {
        let broken = before(State::NeedsAuth, Unknown);
        assert_eq!(share(Auto, broken, false), Decision::ShareOauth);
        assert_eq!(
            share(Auto, broken, true),
            Decision::Push,
            "a key is preferred"
        );
        assert_eq!(
            share(Oauth, broken, true),
            Decision::ShareOauth,
            "oauth mode never pushes keys"
        );
        assert!(matches!(
            share(ApiKey, broken, false),
            Decision::NeedsAuth(_)
        ));
        assert_eq!(
            share(Auto, before(State::Ready, MemberLogin), false),
            Decision::Leave(Strategy::MemberLogin)
        );
        assert!(
            matches!(d(Auto, broken, false), Decision::NeedsAuth(_)),
            "not without --share-oauth"
        );
    }

    #[test]
    fn auto_leaves_what_works() {
        assert_eq!(
            d(Auto, before(State::Ready, EnvFile), true),
            Decision::Leave(Strategy::PreAuthenticated)
        );
        assert_eq!(
            d(Auto, before(State::Ready, MemberLogin), true),
            Decision::Leave(Strategy::MemberLogin)
        );
    }

    #[test]
    fn auto_pushes_only_when_needed_and_possible() {
        assert_eq!(
            d(Auto, before(State::NeedsAuth, MemberLogin), true),
            Decision::Push
        );
        match d(Auto, before(State::NeedsAuth, Unknown), false) {
            Decision::NeedsAuth(r) => {
                assert!(r.contains("fleetauth auth set gemini"), "{r}");
                assert!(r.contains("export GEMINI_API_KEY="), "{r}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn api_key_mode_ignores_member_login() {
        assert_eq!(
            d(ApiKey, before(State::Ready, MemberLogin), true),
            Decision::Push
        );
        assert_eq!(
            d(ApiKey, before(State::Ready, EnvFile), false),
            Decision::Leave(Strategy::PreAuthenticated)
        );
        assert!(matches!(
            d(ApiKey, before(State::Ready, MemberLogin), false),
            Decision::NeedsAuth(_)
        ));
    }

    #[test]
    fn oauth_mode_never_pushes() {
        assert_eq!(
            d(Oauth, before(State::Ready, MemberLogin), true),
            Decision::Leave(Strategy::MemberLogin)
        );
        match d(Oauth, before(State::NeedsAuth, Unknown), true) {
            Decision::NeedsAuth(r) => assert!(r.contains("auth_mode = oauth"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nothing_is_pushed_where_nothing_can_be_verified() {
        for s in [State::NotInstalled, State::Unreachable, State::Error] {
            for mode in [Auto, ApiKey, Oauth] {
                assert_eq!(d(mode, before(s, Unknown), true), Decision::Skip(s));
            }
        }
    }

    /// Every orchestrator → member combination of the shipped providers.
    #[test]
    fn matrix_cells_cover_cross_and_symmetric() {
        let providers = ["claude", "gemini", "codex", "copilot"];
        let key = OperatorHolds {
            api_key: true,
            own_login: false,
        };
        let login = OperatorHolds {
            api_key: false,
            own_login: true,
        };
        for o in providers {
            for m in providers {
                let with_key = matrix_cell(o, m, key, false);
                let shared = matrix_cell(o, m, login, true);
                if o == m {
                    assert!(
                        with_key.contains("push the operator's"),
                        "{o}->{m}: {with_key}"
                    );
                    assert!(
                        shared.contains("copy the operator's own OAuth login"),
                        "{shared}"
                    );
                    let unshared = matrix_cell(o, m, login, false);
                    assert!(unshared.contains("only with --share-oauth"), "{unshared}");
                } else {
                    for cell in [&with_key, &shared] {
                        assert!(cell.contains("cannot authenticate"), "{o}->{m}: {cell}");
                        assert!(cell.contains(&format!("fleetauth auth set {m}")), "{cell}");
                    }
                }
            }
        }
    }
}
