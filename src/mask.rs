//! The only two ways a secret may be shown: a masked form and a fingerprint.
//!
//! Operators need to tell keys apart ("is the key on build-01 the one I just set?") without
//! the key ever reaching a terminal, a log or an audit file. [`mask`] keeps just enough of the
//! ends for a human to recognise a key (`AIz…7x2f`), and only for keys long enough that those
//! seven characters leave most of it hidden; [`fingerprint`] is a short SHA-256 prefix that
//! machines (the audit log, the store's index) compare. Everything that would display a secret
//! goes through here, so the rule lives in one place.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Characters kept from the start of a secret by [`mask`].
const KEEP_HEAD: usize = 3;
/// Characters kept from the end of a secret by [`mask`].
const KEEP_TAIL: usize = 4;
/// Secrets shorter than this are masked completely: showing 7 characters of a short secret
/// would show most of it.
const MIN_LEN_TO_SHOW_ENDS: usize = 12;
/// Hex digits of the SHA-256 digest kept by [`fingerprint`] (48 bits: plenty to tell a
/// handful of keys apart, too few to be useful for anything else).
pub const FINGERPRINT_HEX: usize = 12;

/// A display form of `secret`: its first 3 and last 4 characters around `…`, e.g. `AIz…7x2f`.
///
/// Secrets shorter than 12 characters are shown as `…` alone. Characters, not bytes, are
/// counted, so a non-ASCII secret never yields a broken UTF-8 fragment.
pub fn mask(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let count = s.chars().count();
    if count < MIN_LEN_TO_SHOW_ENDS {
        return "…".to_string();
    }
    let head: String = s.chars().take(KEEP_HEAD).collect();
    let tail: String = s.chars().skip(count - KEEP_TAIL).collect();
    format!("{head}…{tail}")
}

/// A stable identifier of `secret`: `sha256:` followed by the first 12 hex digits of the
/// SHA-256 of its UTF-8 bytes. Equal secrets have equal fingerprints; the fingerprint reveals
/// nothing usable about a high-entropy key.
pub fn fingerprint(secret: &SecretString) -> String {
    fingerprint_bytes(secret.expose_secret().as_bytes())
}

/// [`fingerprint`] of raw bytes (a credential file).
pub fn fingerprint_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = hex::encode(digest);
    hex.truncate(FINGERPRINT_HEX);
    format!("sha256:{hex}")
}

/// `text` (anything that came back from a member: a CLI's message, a path, a login command's
/// output) with every occurrence of `key` and every match of the provider's key `pattern`
/// replaced by `[redacted]`. A member may echo what it was fed; nothing it says reaches a row, a
/// log, an error or the audit log without passing through here.
pub fn scrub(text: &str, key: Option<&SecretString>, pattern: Option<&regex::Regex>) -> String {
    let mut out = text.to_string();
    if let Some(k) = key.map(|k| k.expose_secret()).filter(|k| !k.is_empty()) {
        out = out.replace(k, REDACTED);
    }
    if let Some(re) = pattern.and_then(unanchored) {
        out = re.replace_all(&out, REDACTED).into_owned();
    }
    out
}

const REDACTED: &str = "[redacted]";

/// A key pattern (written anchored, `^…$`, to judge a whole key) as one that finds keys inside
/// text.
fn unanchored(re: &regex::Regex) -> Option<regex::Regex> {
    let src = re.as_str();
    let src = src.strip_prefix('^').unwrap_or(src);
    let src = src.strip_suffix('$').unwrap_or(src);
    regex::Regex::new(&format!("(?:{src})")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn scrub_removes_the_key_and_anything_shaped_like_one() {
        let key = secret("my-exact-key-123");
        let pattern = regex::Regex::new("^AIza[0-9A-Za-z_-]{35}$").unwrap();
        let other = format!("AIza{}", "x".repeat(35));
        let text = format!("echo: my-exact-key-123\nalso {other} here");
        let out = scrub(&text, Some(&key), Some(&pattern));
        assert!(!out.contains("my-exact-key-123"), "{out}");
        assert!(!out.contains(&other), "{out}");
        assert_eq!(out, "echo: [redacted]\nalso [redacted] here");
        assert_eq!(scrub("nothing", None, None), "nothing");
    }

    #[test]
    fn mask_keeps_first_three_and_last_four() {
        assert_eq!(mask(&secret("AIzaSyD-0123456789abcdef7x2f")), "AIz…7x2f");
        assert_eq!(mask(&secret("sk-ant-api03-abcdefgh")), "sk-…efgh");
    }

    #[test]
    fn mask_hides_short_secrets_entirely() {
        assert_eq!(mask(&secret("")), "…");
        assert_eq!(mask(&secret("short")), "…");
        assert_eq!(mask(&secret("elevenchars")), "…");
        assert_eq!(mask(&secret("twelve-chars")), "twe…hars");
    }

    #[test]
    fn mask_counts_characters_not_bytes() {
        assert_eq!(mask(&secret("ééé-middle-part-üüüü")), "ééé…üüüü");
    }

    #[test]
    fn fingerprint_is_a_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223…
        assert_eq!(fingerprint(&secret("abc")), "sha256:ba7816bf8f01");
        let a = fingerprint(&secret("AIzaSyD-key-one"));
        let b = fingerprint(&secret("AIzaSyD-key-two"));
        assert_ne!(a, b);
        assert_eq!(a, fingerprint(&secret("AIzaSyD-key-one")));
        assert_eq!(a.len(), "sha256:".len() + 12);
    }
}
