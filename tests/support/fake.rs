//! Fake credentials: well-formed enough to pass every format check the real CLIs (and the stubs)
//! make, obviously fake to any human (`FAKE` right after the vendor prefix), and random per call
//! so that a test can search outputs and logs for the exact value it planted.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` random characters from `[0-9A-Za-z]`.
pub fn alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A Gemini API key: `AIza` + 35 characters.
pub fn gemini_key() -> String {
    format!("AIzaFAKE{}", alnum(31))
}

/// A Google OAuth access token (`ya29.`).
pub fn google_access_token() -> String {
    format!("ya29.FAKE{}", alnum(60))
}

/// A Google OAuth refresh token (`1//`).
pub fn google_refresh_token() -> String {
    format!("1//FAKE{}", alnum(40))
}

/// An Anthropic API key (`sk-ant-api03-`), for `ANTHROPIC_API_KEY`.
pub fn anthropic_api_key() -> String {
    format!("sk-ant-api03-FAKE{}", alnum(80))
}

/// A Claude OAuth access or setup token (`sk-ant-oat01-`), for `CLAUDE_CODE_OAUTH_TOKEN` or
/// `.credentials.json`.
pub fn claude_oauth_token() -> String {
    format!("sk-ant-oat01-FAKE{}", alnum(80))
}

/// A Claude OAuth refresh token (`sk-ant-ort01-`).
pub fn claude_refresh_token() -> String {
    format!("sk-ant-ort01-FAKE{}", alnum(80))
}

/// An OpenAI project key (`sk-proj-`).
pub fn openai_key() -> String {
    format!("sk-proj-FAKE{}", alnum(60))
}

/// A ChatGPT access token as codex stores it: a JWT whose `exp` claim is `exp` (seconds since
/// the epoch). The signature is garbage; nothing checks it offline.
pub fn chatgpt_access_token(exp: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        format!(
            r#"{{"exp":{exp},"sub":"FAKE-{}","email":"fake@example.invalid"}}"#,
            alnum(8)
        )
        .as_bytes(),
    );
    format!("{header}.{payload}.FAKE{}", alnum(40))
}

/// A ChatGPT refresh token as codex stores it (`rt_`).
pub fn chatgpt_refresh_token() -> String {
    format!("rt_FAKE{}", alnum(40))
}

/// A GitHub OAuth token (`gho_`), accepted by copilot.
pub fn github_oauth_token() -> String {
    format!("gho_FAKE{}", alnum(32))
}

/// A fine-grained GitHub personal access token (`github_pat_`), accepted by copilot.
pub fn github_pat() -> String {
    format!("github_pat_FAKE{}", alnum(70))
}

/// A Cursor API key (`CURSOR_API_KEY`; its real format is undocumented, `key_` + hex-like text).
pub fn cursor_api_key() -> String {
    format!("key_FAKE{}", alnum(60))
}

/// A Factory API key (`fk-`).
pub fn factory_api_key() -> String {
    format!("fk-FAKE{}", alnum(40))
}

/// An Amp API key (`sgamp_user_`).
pub fn amp_api_key() -> String {
    format!("sgamp_user_FAKE{}", alnum(40))
}

/// An opaque token (a Cursor or opencode OAuth access/refresh token, agy's token file).
pub fn opaque_token(prefix: &str) -> String {
    format!("{prefix}FAKE{}", alnum(48))
}

/// The usual API key for `provider` (what `State::EnvKey` plants).
pub fn api_key(provider: &str) -> String {
    match provider {
        "gemini" => gemini_key(),
        "claude" => anthropic_api_key(),
        "codex" => openai_key(),
        "copilot" => github_pat(),
        "opencode-anthropic" => anthropic_api_key(),
        "opencode-openai" | "qwen" => openai_key(),
        "cursor" => cursor_api_key(),
        "droid" => factory_api_key(),
        "amp" => amp_api_key(),
        other => {
            panic!(
                "no fake API key for provider {other:?}; known: gemini, claude, codex, copilot, opencode-anthropic, opencode-openai, cursor, droid, amp, qwen (agy takes none)"
            )
        }
    }
}

/// Seconds since the epoch, `offset` from now (negative = in the past).
pub fn epoch_s(offset_s: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now + offset_s) as u64
}

/// RFC 3339 timestamp `offset` from now.
pub fn rfc3339(offset_s: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(epoch_s(offset_s));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The masked form fleetauth may show: first 3 characters, `…`, last 4.
pub fn masked(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 7 {
        return "…".to_string();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}
