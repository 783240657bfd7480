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
    /// `--rotate`: replace the working key in fleetauth's env file by the key collected now,
    /// verify it, restore the old one on failure.
    Rotate,
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
        matches!(
            self,
            Decision::Push | Decision::Rotate | Decision::ShareOauth
        )
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
            Decision::Skip(_) | Decision::Push | Decision::Rotate | Decision::ShareOauth => {}
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
    exports: &str,
) -> Decision {
    let left = |home: CredentialHome| match home {
        CredentialHome::EnvFile => Strategy::PreAuthenticated,
        CredentialHome::MemberLogin | CredentialHome::Unknown => Strategy::MemberLogin,
    };
    let no_key = || {
        Decision::NeedsAuth(match exports {
            "" => format!(
                "fleetauth has nothing to push for {provider}: log in with its CLI on the member"
            ),
            _ => format!(
                "no {provider} key to push: run `fleetauth auth set {provider}` or {exports} and provision again"
            ),
        })
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

impl Decision {
    /// A `NeedsAuth` decision names why `--share-oauth` did not copy the operator's login
    /// (see [`share_refusal`]); other decisions are unchanged.
    pub fn with_share_refusal(self, why: Option<&str>) -> Decision {
        match (self, why) {
            (Decision::NeedsAuth(remedy), Some(why)) => {
                Decision::NeedsAuth(format!("{remedy}; {why}"))
            }
            (d, _) => d,
        }
    }
}

/// `--rotate` applied to a decision: a working key fleetauth can replace (`replaceable`: in its
/// env file, or the key file a provider's login command writes) is replaced by the key collected
/// now when one can be had (`key_available`); a member whose working credential is its own login
/// is left alone, and `auth_mode = oauth` never gets a key. The note (when some) goes into the
/// row's detail and says why nothing is rotated.
pub fn rotation(
    provider: &str,
    decision: Decision,
    mode: AuthMode,
    before: Before,
    replaceable: bool,
    key_available: bool,
) -> (Decision, Option<String>) {
    let key_in_env_file = before.state == State::Ready && replaceable;
    match decision {
        // api_key mode pushes over a working key anyway: with --rotate that push is a rotation.
        Decision::Leave(_) | Decision::Push
            if key_in_env_file && mode != AuthMode::Oauth && key_available =>
        {
            (Decision::Rotate, None)
        }
        Decision::Leave(_) if key_in_env_file => {
            let why = match mode {
                AuthMode::Oauth => "auth_mode = oauth: fleetauth pushes no key".to_string(),
                _ => format!(
                    "no new {provider} key to rotate to: store one with `fleetauth auth set {provider}`"
                ),
            };
            (decision, Some(format!("--rotate: not rotated: {why}")))
        }
        Decision::Leave(Strategy::MemberLogin) => (
            decision,
            Some(
                "--rotate: left alone: the working credential is the member's own login, not a key fleetauth installed"
                    .to_string(),
            ),
        ),
        other => (other, None),
    }
}

/// Whether `--share-oauth` may copy the operator's `provider` login, given whether its refresh
/// token rotates (`rotates` on the provider's `oauth_file` credentials; `None` = unknown) and
/// whether `--share-rotating-login` was given. `Some(why)` = refused: a rotating refresh token
/// is single-use, so a second holder of the same login logs the first out — the operator's own
/// login included. An unknown rotation is treated as rotating.
pub fn share_refusal(
    provider: &str,
    rotates: Option<bool>,
    share_rotating: bool,
) -> Option<String> {
    if share_rotating {
        return None;
    }
    let why = match rotates {
        Some(false) => return None,
        Some(true) => "its refresh token rotates",
        None => "whether its refresh token rotates is unknown",
    };
    Some(format!(
        "--share-oauth did not copy your {provider} login: {why}, and a second holder logs the first out \
         (your own login included); push a non-rotating credential (`fleetauth auth set {provider}`), or add \
         --share-rotating-login to copy it anyway"
    ))
}

/// The matrix's rotation column: can the provider's login be shared safely?
pub fn rotation_label(rotates: Option<bool>) -> &'static str {
    match rotates {
        Some(true) => "rotates: not safe to share",
        Some(false) => "does not rotate: safe to share",
        None => "unknown: treated as rotating",
    }
}

/// What the operator holds for a provider, for `fleetauth matrix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperatorHolds {
    /// An API key in the store or the environment.
    pub api_key: bool,
    /// The operator's own CLI login for this provider.
    pub own_login: bool,
    /// Whether that login's refresh token rotates (`None`: unknown, or no login file).
    pub login_rotates: Option<bool>,
}

/// The sharing flags `matrix` shows the strategies for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShareFlags {
    /// `--share-oauth`
    pub oauth: bool,
    /// `--share-rotating-login`
    pub rotating: bool,
}

/// One cell of the matrix: what `provision` can do for a member of `member_provider` with the
/// credentials the operator holds for `operator_provider`. Credentials never cross providers:
/// a Claude login authenticates Claude Code only.
pub fn matrix_cell(
    operator_provider: &str,
    member_provider: &str,
    holds: OperatorHolds,
    share: ShareFlags,
) -> String {
    let first = "member's own login if it works";
    if operator_provider != member_provider {
        return format!(
            "{first}; the operator's {operator_provider} credentials cannot authenticate {member_provider}: \
             needs a key for {member_provider} (`fleetauth auth set {member_provider}`)"
        );
    }
    if holds.api_key {
        format!("{first}, else push the operator's {member_provider} key and verify it")
    } else if holds.own_login && share.oauth {
        match share_refusal(member_provider, holds.login_rotates, share.rotating) {
            Some(_) => format!(
                "{first}, else needs_auth: the operator's own login is not copied ({}): \
                 only with --share-rotating-login; or `fleetauth auth set {member_provider}`",
                rotation_label(holds.login_rotates)
            ),
            None if holds.login_rotates == Some(false) => format!(
                "{first}, else copy the operator's own OAuth login (--share-oauth; it does not rotate)"
            ),
            None => format!(
                "{first}, else copy the operator's own OAuth login (--share-rotating-login: a second holder logs the first out)"
            ),
        }
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
        decide("gemini", mode, b, key, false, "`export GEMINI_API_KEY=…`")
    }

    fn share(mode: AuthMode, b: Before, key: bool) -> Decision {
        decide("claude", mode, b, key, true, "`export ANTHROPIC_API_KEY=…`")
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
            ..Default::default()
        };
        let login = OperatorHolds {
            api_key: false,
            own_login: true,
            login_rotates: Some(false),
        };
        let (none, oauth) = (
            ShareFlags::default(),
            ShareFlags {
                oauth: true,
                rotating: false,
            },
        );
        for o in providers {
            for m in providers {
                let with_key = matrix_cell(o, m, key, none);
                let shared = matrix_cell(o, m, login, oauth);
                if o == m {
                    assert!(
                        with_key.contains("push the operator's"),
                        "{o}->{m}: {with_key}"
                    );
                    assert!(
                        shared.contains("copy the operator's own OAuth login"),
                        "{shared}"
                    );
                    let unshared = matrix_cell(o, m, login, none);
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

    #[test]
    fn rotate_replaces_only_a_working_env_file_key() {
        let rot = |mode, b: Before, key| {
            let decided = decide("gemini", mode, b, key, false, "`export GEMINI_API_KEY=…`");
            rotation("gemini", decided, mode, b, b.home == EnvFile, key)
        };
        let env_key = before(State::Ready, EnvFile);
        assert_eq!(rot(Auto, env_key, true), (Decision::Rotate, None));
        assert_eq!(rot(ApiKey, env_key, true), (Decision::Rotate, None));
        let (d, note) = rot(Auto, env_key, false);
        assert_eq!(d, Decision::Leave(Strategy::PreAuthenticated));
        assert!(
            note.as_deref()
                .is_some_and(|n| n.contains("no new gemini key") && n.contains("auth set gemini")),
            "{note:?}"
        );
        let (d, note) = rot(Oauth, env_key, true);
        assert_eq!(d, Decision::Leave(Strategy::PreAuthenticated));
        assert!(note.unwrap().contains("auth_mode = oauth"));
        // The member's own login is not fleetauth's to replace.
        let (d, note) = rot(Auto, before(State::Ready, MemberLogin), true);
        assert_eq!(d, Decision::Leave(Strategy::MemberLogin));
        assert!(note.unwrap().contains("member's own login"));
        // What does not work is pushed as without --rotate; what cannot be judged is skipped.
        assert_eq!(
            rot(Auto, before(State::NeedsAuth, EnvFile), true),
            (Decision::Push, None)
        );
        assert_eq!(
            rot(Auto, before(State::Error, EnvFile), true),
            (Decision::Skip(State::Error), None)
        );
        assert!(Decision::Rotate.acts());
        // A key a login command installed (codex auth.json) counts as a member login for the
        // strategies, but is fleetauth's to replace.
        let codex = before(State::Ready, MemberLogin);
        let decided = decide("codex", Auto, codex, true, false, "");
        assert_eq!(
            rotation("codex", decided, Auto, codex, true, true),
            (Decision::Rotate, None)
        );
    }

    #[test]
    fn rotating_logins_are_shared_only_with_the_second_flag() {
        let r = share_refusal("claude", Some(true), false).expect("refused");
        assert!(r.contains("refresh token rotates"), "{r}");
        assert!(r.contains("--share-rotating-login"), "{r}");
        assert!(r.contains("logs the first out"), "{r}");
        assert_eq!(share_refusal("claude", Some(true), true), None);
        assert_eq!(share_refusal("gemini", Some(false), false), None);
        let unknown = share_refusal("x", None, false).expect("unknown counts as rotating");
        assert!(unknown.contains("unknown"), "{unknown}");
        assert_eq!(share_refusal("x", None, true), None);
        // The refusal is appended to a needs_auth remedy and to nothing else.
        let d = Decision::NeedsAuth("no key".into()).with_share_refusal(Some(&r));
        assert!(
            matches!(&d, Decision::NeedsAuth(t) if t.starts_with("no key; --share-oauth did not copy"))
        );
        assert_eq!(Decision::Push.with_share_refusal(Some(&r)), Decision::Push);
    }

    #[test]
    fn matrix_cells_say_which_logins_share_safely() {
        let holds = |rotates| OperatorHolds {
            api_key: false,
            own_login: true,
            login_rotates: rotates,
        };
        let oauth = ShareFlags {
            oauth: true,
            rotating: false,
        };
        let both = ShareFlags {
            oauth: true,
            rotating: true,
        };
        let c = matrix_cell("claude", "claude", holds(Some(true)), oauth);
        assert!(
            c.contains("needs_auth") && c.contains("only with --share-rotating-login"),
            "{c}"
        );
        let c = matrix_cell("claude", "claude", holds(Some(true)), both);
        assert!(
            c.contains("copy the operator's own OAuth login") && c.contains("logs the first out"),
            "{c}"
        );
        let c = matrix_cell("gemini", "gemini", holds(Some(false)), oauth);
        assert!(
            c.contains("copy the operator's own OAuth login") && c.contains("does not rotate"),
            "{c}"
        );
        assert_eq!(rotation_label(Some(true)), "rotates: not safe to share");
        assert_eq!(
            rotation_label(Some(false)),
            "does not rotate: safe to share"
        );
    }
}
