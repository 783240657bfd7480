//! The russh client configuration: which algorithms fleetauth offers, keepalives, timeouts.
//!
//! Keepalives: every 15 s, giving up after 3 unanswered, unless ssh_config's
//! `ServerAliveInterval`/`ServerAliveCountMax` say otherwise for the target.
//!
//! **Algorithms are pinned** to what is both safe and cheap: ML-KEM/curve25519 key exchange
//! (no DH group exchange: an 8192-bit group costs ~0.6 s of CPU per host), ed25519-first host
//! keys, AEAD ciphers only. When known_hosts records only some key types for a member, those
//! types are asked for first (as OpenSSH does), so an `ecdsa`-only entry still verifies. The
//! only thing that varies is that host-key order, and whether host certificates are asked for
//! (only for members a known_hosts `@cert-authority` line covers: a certificate nobody can
//! verify is useless), so [`Configs`] builds one config per distinct combination (almost always
//! just one or two) and every connection shares it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use russh::Preferred;
use russh::client;
use russh::keys::ssh_key::{Algorithm, EcdsaCurve, HashAlg};

const KEX: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];
const HOST_KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
];
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(600);

/// The configs of one run, one per distinct host-key preference order.
#[derive(Default)]
pub(super) struct Configs(RwLock<HashMap<String, Arc<client::Config>>>);

impl Configs {
    /// The shared config asking first for the host key types in `recorded` (what known_hosts
    /// records for a member), and, when `certificates` (a `@cert-authority` line applies to the
    /// member), for host certificates ahead of plain keys.
    /// `server_alive`: the target's keepalive (`Target::server_alive`).
    pub(super) fn for_recorded(
        &self,
        recorded: &[Algorithm],
        certificates: bool,
        server_alive: Option<(Duration, usize)>,
    ) -> Arc<client::Config> {
        let order = host_key_order(recorded);
        let mut key = order
            .iter()
            .map(Algorithm::as_str)
            .collect::<Vec<_>>()
            .join(",");
        if certificates {
            key.push_str("+certificates");
        }
        let (keepalive_interval, keepalive_max) =
            server_alive.unwrap_or((KEEPALIVE_INTERVAL, KEEPALIVE_MAX));
        key.push_str(&format!("+alive:{keepalive_interval:?}x{keepalive_max}"));
        if let Some(config) = self.0.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return config.clone();
        }
        let mut config = build_config(order, certificates);
        config.keepalive_interval = Some(keepalive_interval);
        config.keepalive_max = keepalive_max;
        let config = Arc::new(config);
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(config)
            .clone()
    }
}

/// Host key algorithms to offer: the types known_hosts records for the member first, so the
/// server presents a key we can verify, then the rest in our default order.
fn host_key_order(recorded: &[Algorithm]) -> Vec<Algorithm> {
    let is_recorded = |a: &Algorithm| recorded.iter().any(|r| r == a || (is_rsa(r) && is_rsa(a)));
    let (mut order, rest): (Vec<Algorithm>, Vec<Algorithm>) =
        HOST_KEY_ALGORITHMS.iter().cloned().partition(is_recorded);
    order.extend(rest);
    order
}

pub(super) fn is_rsa(algorithm: &Algorithm) -> bool {
    matches!(algorithm, Algorithm::Rsa { .. })
}

/// `certificates`: also advertise the certificate form of every host key algorithm (russh puts
/// them ahead of the plain ones), so a server with a `HostCertificate` presents it.
fn build_config(host_keys: Vec<Algorithm>, certificates: bool) -> client::Config {
    let host_key_certificates = if certificates {
        Cow::Owned(host_keys.clone())
    } else {
        Cow::Borrowed(&[][..])
    };
    client::Config {
        preferred: Preferred {
            kex: Cow::Borrowed(KEX),
            key: Cow::Owned(host_keys),
            host_key_certificates,
            cipher: Cow::Borrowed(CIPHERS),
            mac: Preferred::DEFAULT.mac,
            compression: Cow::Borrowed(&[russh::compression::NONE]),
        },
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: Some(INACTIVITY_TIMEOUT),
        nodelay: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_order_puts_recorded_types_first() {
        let ecdsa = Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        };
        assert_eq!(host_key_order(&[]), HOST_KEY_ALGORITHMS.to_vec());
        let order = host_key_order(std::slice::from_ref(&ecdsa));
        assert_eq!(order[0], ecdsa);
        assert_eq!(order[1], Algorithm::Ed25519);
        assert_eq!(order.len(), HOST_KEY_ALGORITHMS.len());
        // A recorded `ssh-rsa` key is verified by either rsa-sha2 signature.
        let order = host_key_order(&[Algorithm::Rsa { hash: None }]);
        assert!(is_rsa(&order[0]) && is_rsa(&order[1]), "{order:?}");
        assert!(!order.contains(&Algorithm::Rsa { hash: None }));
    }

    #[test]
    fn config_pins_safe_cheap_algorithms() {
        let config = build_config(host_key_order(&[]), false);
        let kex: Vec<&str> = config.preferred.kex.iter().map(|k| k.as_ref()).collect();
        assert_eq!(
            kex,
            [
                "mlkem768x25519-sha256",
                "curve25519-sha256",
                "curve25519-sha256@libssh.org",
                "ext-info-c",
                "kex-strict-c-v00@openssh.com"
            ]
        );
        assert!(!kex.iter().any(|k| k.contains("group-exchange")));
        assert_eq!(config.preferred.key[0], Algorithm::Ed25519);
        let ciphers: Vec<&str> = config.preferred.cipher.iter().map(|c| c.as_ref()).collect();
        assert!(
            ciphers
                .iter()
                .all(|c| c.contains("gcm") || c.contains("chacha20"))
        );
        assert!(config.nodelay);
        assert!(config.keepalive_interval.is_some() && config.inactivity_timeout.is_some());
    }

    #[test]
    fn configs_are_shared_per_host_key_order() {
        let configs = Configs::default();
        let ecdsa = Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        };
        let a = configs.for_recorded(&[], false, None);
        assert!(Arc::ptr_eq(
            &a,
            &configs.for_recorded(&[Algorithm::Ed25519], false, None)
        ));
        assert!(a.preferred.host_key_certificates.is_empty());
        let b = configs.for_recorded(std::slice::from_ref(&ecdsa), false, None);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(b.preferred.key[0], ecdsa);
        // A member under a @cert-authority line: certificates of every type, plain keys too.
        let c = configs.for_recorded(&[], true, None);
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(Arc::ptr_eq(&c, &configs.for_recorded(&[], true, None)));
        let certs: Vec<String> = c
            .preferred
            .host_key_certificates
            .iter()
            .map(Algorithm::to_certificate_type)
            .collect();
        assert_eq!(certs[0], "ssh-ed25519-cert-v01@openssh.com");
        assert_eq!(certs.len(), HOST_KEY_ALGORITHMS.len());
        assert_eq!(c.preferred.key, a.preferred.key);
        // ssh_config's ServerAliveInterval/CountMax: a config of its own.
        assert_eq!(a.keepalive_interval, Some(KEEPALIVE_INTERVAL));
        let alive = Some((Duration::from_secs(40), 7));
        let d = configs.for_recorded(&[], false, alive);
        assert!(!Arc::ptr_eq(&a, &d));
        assert!(Arc::ptr_eq(&d, &configs.for_recorded(&[], false, alive)));
        assert_eq!(
            (d.keepalive_interval, d.keepalive_max),
            (Some(Duration::from_secs(40)), 7)
        );
    }
}
