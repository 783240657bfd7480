//! What provisioning installs (phase 2's harvest): a key collected out of band or the
//! operator's own login, per provider, and how each is named in rows and the audit log.

use std::collections::BTreeMap;

use crate::keys::{CollectedKey, KeyError};
use crate::operator::{ShareError, SharedLogin};
use crate::provider::Provider;

/// What can be offered to a provider's members, known before any is needed.
#[derive(Debug, Clone, Default)]
pub(super) struct Offer {
    pub key: bool,
    pub share: bool,
    /// Why `--share-oauth` does not copy the operator's login (it rotates), if it does not.
    pub share_refused: Option<String>,
}

/// What phase 2 collected, per provider.
#[derive(Default)]
pub(super) struct Payloads {
    pub keys: BTreeMap<String, Result<CollectedKey, KeyError>>,
    pub logins: BTreeMap<String, Result<SharedLogin, ShareError>>,
}

/// What phase 3 installs on one member for one provider.
pub(super) enum Payload<'a> {
    Key(&'a CollectedKey),
    Login(&'a SharedLogin),
}

impl Payload<'_> {
    pub fn label(&self, provider: &Provider) -> String {
        match self {
            Payload::Key(k) => k.label(provider),
            Payload::Login(l) => format!("your own {} login ({})", provider.name, l.rel),
        }
    }
    pub fn source(&self) -> &'static str {
        match self {
            Payload::Key(k) => k.source.as_str(),
            Payload::Login(_) => "share_oauth",
        }
    }
    pub fn fingerprint(&self) -> String {
        match self {
            Payload::Key(k) => k.fingerprint(),
            Payload::Login(l) => l.fingerprint.clone(),
        }
    }
}
