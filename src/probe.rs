//! The member-side probe: one script per member, one exec channel, every provider.
//!
//! Each exec costs the member a shell and each round trip costs the sweep latency, so all the
//! questions fleetauth asks a member — where is the CLI, what version, which credential
//! variables are set, what do the credential files say, may the env file be sourced and, with
//! `--deep`, does a minimal prompt answer — go in one script (`src/remote/probe.sh`) sent on the
//! channel's stdin (`sh -s`). With `--deep` the prompts run in parallel so a member costs the
//! slowest provider, not the sum.
//!
//! This module turns provider definitions into the script's header of data (one `fa_def_N`
//! function per provider, every value quoted) and the script's framed records back into a
//! [`MemberObservation`]. Values of environment variables never leave the member: only names
//! are sent back. Credential *files* are sent back (capped at 64 KiB) because their expiry lives
//! behind JSON pointers no member-side tool can read portably; they are held as secrets, parsed
//! for expiry and refresh-token presence only, and dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use secrecy::SecretSlice;

use crate::provider::{Credential, Provider};
use crate::remote::{self, Nonce, Script};
use crate::shell::{is_identifier, join, quote};

/// Exit status of coreutils `timeout` when the deadline hit.
const TIMEOUT_STATUS: i32 = 124;

/// What to ask one member.
pub struct ProbeRequest<'a> {
    /// Each provider with its prompt's deadline ([`crate::sweep::prompt_deadline`]: the same
    /// figure the verdict reports a hang against).
    pub providers: Vec<(&'a Provider, Duration)>,
    /// The member's env file (remote path, `~/` allowed).
    pub env_file: &'a str,
    /// Run each provider's minimal prompt with the env file sourced.
    pub deep: bool,
}

/// The probe's header: the env file, the mode, and one definition per provider.
pub fn probe_header(req: &ProbeRequest<'_>) -> Script {
    // The awk programs are most of the header and the same for every member: quoted once.
    static AWK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "FA_AWK_ENVFILE={}\nFA_AWK_JSON={}",
            crate::shell::quote(&remote::ENVFILE_AWK),
            crate::shell::quote(&remote::JSON_AWK)
        )
    });
    let mut script = Script::new();
    script
        .raw_header(&AWK)
        .set("FA_ENV", req.env_file)
        .set("FA_DEEP", if req.deep { "1" } else { "0" });
    let numbers: Vec<String> = (0..req.providers.len()).map(|i| i.to_string()).collect();
    script.set("FA_PROVIDERS", &numbers.join(" "));
    for (i, (p, deadline)) in req.providers.iter().enumerate() {
        script.raw_header(&provider_definition(i, p, *deadline));
    }
    script
}

/// Build the whole probe script for one member (run it with [`Script::command_whole_stdin`]).
pub fn build_script(req: &ProbeRequest<'_>) -> Script {
    probe_header(req).finish(&[&remote::PROBE, &remote::SWEEP_MAIN])
}

/// `fa_def_N() { … }`: provider `p`'s data as the variables `probe.sh` reads. Every value is
/// quoted; lists are quoted words (`eval "set -- $LIST"` on the member); variable names that are
/// not identifiers are left out (the provider loader refuses them anyway).
pub(crate) fn provider_definition(i: usize, p: &Provider, prompt_timeout: Duration) -> String {
    let envs: Vec<&str> = p
        .credentials
        .iter()
        .filter_map(|c| match c {
            Credential::Env { var, .. } if is_identifier(var) => Some(var.as_str()),
            _ => None,
        })
        .collect();
    let home_var = p
        .config_home
        .env
        .as_deref()
        .filter(|v| is_identifier(v))
        .unwrap_or("");
    let probe_env: Vec<String> = p
        .probe
        .env
        .iter()
        .filter(|(k, _)| is_identifier(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let prefixes: Vec<&str> = p
        .credentials
        .iter()
        .flat_map(|c| c.short_lived())
        .map(|s| s.prefix.as_str())
        .collect();
    let status = p.status.as_ref().map(|s| s.args.as_slice()).unwrap_or(&[]);
    let mut def = String::new();
    let _ = writeln!(def, "fa_def_{i}() {{");
    let _ = writeln!(def, "  P={} B={}", quote(&p.name), quote(&p.binary));
    let _ = writeln!(def, "  NPM={}", u8::from(p.npm_global_bin));
    let _ = writeln!(
        def,
        "  NPKG={}",
        quote(p.npm_package.as_deref().unwrap_or(""))
    );
    let _ = writeln!(def, "  DIRS={}", quote(&join(&p.search_paths)));
    let _ = writeln!(def, "  VARGS={}", quote(&join(&p.version_args)));
    let _ = writeln!(def, "  HAS_STATUS={}", u8::from(p.status.is_some()));
    let _ = writeln!(def, "  SARGS={}", quote(&join(status)));
    let deciders = status_deciders(p);
    let _ = writeln!(def, "  DFILES={}", quote(&join(&deciders.files)));
    let _ = writeln!(def, "  DPFILES={}", quote(&join(&deciders.present_files)));
    let _ = writeln!(def, "  DKCS={}", quote(&join(&deciders.keychains)));
    let _ = writeln!(def, "  ENVS={}", quote(&envs.join(" ")));
    let _ = writeln!(def, "  PREFIXES={}", quote(&join(&prefixes)));
    let _ = writeln!(def, "  HVAR={}", quote(home_var));
    let _ = writeln!(def, "  HDEF={}", quote(&p.config_home.default));
    let _ = writeln!(
        def,
        "  FILES={}",
        quote(&join(file_items(p, Credential::file)))
    );
    let _ = writeln!(
        def,
        "  PFILES={}",
        quote(&join(file_items(p, Credential::presence_file)))
    );
    let _ = writeln!(def, "  KCS={}", quote(&join(keychain_items(p))));
    let _ = writeln!(def, "  PENV={}", quote(&join(&probe_env)));
    let _ = writeln!(def, "  PARGS={}", quote(&join(&p.probe.args)));
    let _ = writeln!(def, "  PTO={}", prompt_timeout.as_secs().max(1));
    def.push_str("}\n");
    def
}

/// What, found on a member, makes the provider's status command pointless: the verdict only
/// consults `status_rc` when no credential resolves ([`crate::assess`]), and each of these is a
/// credential that always resolves when the probe sees it (an env credential — every one in
/// `ENVS` — set; these files unreadable or holding a non-empty string at their token pointer;
/// these presence files existing; these keychain entries present, locked or failing). Left out:
/// credentials that need a setting to select them and key files guarded by `unless_exists` (a
/// later file can make the CLI ignore them). Empty for a provider without a status command.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StatusDeciders {
    /// `FILE POINTER` pairs, flat; POINTER empty when only unreadability decides (not JSON, or
    /// a pointer the member-side scanner does not read: `~` escapes, blanks).
    pub files: Vec<String>,
    pub present_files: Vec<String>,
    pub keychains: Vec<String>,
}

pub(crate) fn status_deciders(p: &Provider) -> StatusDeciders {
    let mut d = StatusDeciders::default();
    if p.status.is_none() {
        return d;
    }
    // The pointer when the member's scanner can follow it, else empty.
    let scannable = |ptr: &str, json: bool| {
        let ok = json
            && ptr.starts_with('/')
            && !ptr.contains(['~', '\\'])
            && !ptr.chars().any(char::is_whitespace);
        if ok { ptr.to_string() } else { String::new() }
    };
    for c in &p.credentials {
        if c.requires_selection() {
            continue;
        }
        match c {
            Credential::OauthFile {
                file,
                token_pointer,
                ..
            } => {
                d.files.push(file.clone());
                d.files.push(scannable(token_pointer, true));
            }
            Credential::KeyFile {
                file,
                pointer,
                format,
                unless_exists: None,
                ..
            } => {
                d.files.push(file.clone());
                let json = *format == crate::provider::FileFormat::Json;
                d.files.push(scannable(pointer, json));
            }
            Credential::PresentFile { file, .. } => d.present_files.push(file.clone()),
            Credential::Keychain { id, .. } => d.keychains.push(id.clone()),
            _ => {}
        }
    }
    d
}

/// The distinct credential files of a provider, relative to its config home.
pub fn credential_files(p: &Provider) -> Vec<&str> {
    let mut files: Vec<&str> = Vec::new();
    for f in p.credentials.iter().filter_map(Credential::file) {
        if !files.contains(&f) {
            files.push(f);
        }
    }
    files
}

/// The probe's file list: each distinct file once, as `VAR=FILE` when a variable set on the
/// member names its full path instead, `VAR/=FILE` when it names its directory (the record still
/// says FILE). `=` never occurs in a file.
fn file_items<'p>(p: &'p Provider, which: fn(&Credential) -> Option<&str>) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut seen: Vec<&'p str> = Vec::new();
    for c in &p.credentials {
        let Some(f) = which(c) else { continue };
        if seen.contains(&f) {
            continue;
        }
        seen.push(f);
        let path_var = c.path_env().filter(|v| is_identifier(v));
        let dir_var = c.dir_env().filter(|v| is_identifier(v));
        match (path_var, dir_var) {
            (Some(var), _) => items.push(format!("{var}={f}")),
            (None, Some(var)) => items.push(format!("{var}/={f}")),
            (None, None) => items.push(f.to_string()),
        }
    }
    items
}

/// The probe's keychain list: `ID:HASHVAR:SERVICE` (HASHVAR empty when the service is fixed).
fn keychain_items(p: &Provider) -> Vec<String> {
    p.credentials
        .iter()
        .filter_map(|c| match c {
            Credential::Keychain {
                id,
                service,
                service_hash_env,
                ..
            } => Some(format!(
                "{id}:{}:{service}",
                service_hash_env
                    .as_deref()
                    .filter(|v| is_identifier(v))
                    .unwrap_or("")
            )),
            _ => None,
        })
        .collect()
}

/// What a keychain answered about one entry (its secret is never read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeychainStatus {
    Present,
    Absent,
    /// macOS `security` exit 36: the keychain is locked (normal in an SSH session).
    Locked,
    /// No keychain tool on the member (no `security`, no `secret-tool` with a session bus).
    Unavailable,
    /// Another answer: the tool's exit status.
    Failed(String),
}

/// One keychain entry as the member saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeychainObservation {
    pub status: KeychainStatus,
    /// The service looked up (with claude's config-dir hash when one applied).
    pub service: String,
    /// `security` (macOS) or `secret-tool` (libsecret).
    pub tool: String,
}

/// What one member said about one provider.
#[derive(Debug, Default)]
pub struct ProviderObservation {
    /// Path of the binary, None when it was not found.
    pub binary: Option<String>,
    pub version_rc: Option<i32>,
    pub version_out: String,
    /// The version read from the npm package's `package.json` (no CLI started; the
    /// provider's version regex does not apply).
    pub version_pkg: Option<String>,
    /// `version_out` came from the member's version cache (no CLI started).
    pub version_cached: bool,
    pub status_rc: Option<i32>,
    /// The status command was not run: a credential the probe saw decides the verdict
    /// ([`status_deciders`]).
    pub status_skipped: bool,
    /// Credential variables set in the member's own environment.
    pub ambient: Vec<String>,
    /// Per ambient variable, the startup or sshd files on the member that seem to assign it
    /// (paths only, never a value; a hint for the remedy of a `blocked` push).
    pub ambient_in: BTreeMap<String, Vec<String>>,
    /// Credential files by path (relative to the config home): contents, held as secrets.
    pub files: BTreeMap<String, FileObservation>,
    /// `present_file` credentials that exist (as written in the provider's data).
    pub present_files: Vec<String>,
    /// Keychain entries by credential id.
    pub keychains: BTreeMap<String, KeychainObservation>,
    pub prompt: Option<PromptObservation>,
    /// Per credential variable the env file assigns: the `sha256:` fingerprint prefix of its
    /// value, computed on the member (the value never leaves it).
    pub env_fingerprints: BTreeMap<String, String>,
    /// Per credential variable: the declared short-lived prefix its value starts with, in the
    /// env file and in the member's own environment.
    pub env_file_prefixes: BTreeMap<String, String>,
    pub ambient_prefixes: BTreeMap<String, String>,
}

#[derive(Debug)]
pub enum FileObservation {
    Present(SecretSlice<u8>),
    Unreadable,
}

#[derive(Debug, Default, Clone)]
pub struct PromptObservation {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

impl PromptObservation {
    pub fn timed_out(&self) -> bool {
        // coreutils timeout: 124 on TERM, 137 when it had to KILL after -k.
        self.rc == TIMEOUT_STATUS || self.rc == 137
    }
}

/// The member's env file as the probe saw it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum EnvFileObservation {
    #[default]
    Absent,
    Unreadable,
    /// Present, with the variable names it assigns.
    Present(Vec<String>),
}

/// Everything one member said.
#[derive(Debug, Default)]
pub struct MemberObservation {
    pub env_file: EnvFileObservation,
    /// Why the env file may not be sourced (owned by another user, writable by others): it was
    /// not sourced for any prompt, and `run` refuses to source it.
    pub env_file_unsafe: Option<String>,
    pub providers: BTreeMap<String, ProviderObservation>,
    /// The script ran to its end (a truncated answer means the channel died).
    pub complete: bool,
    pub fatal: Option<String>,
}

/// Parse the script's answer: the records framed with `nonce`; every other line is ignored.
pub fn parse_output(stdout: &[u8], nonce: &Nonce) -> MemberObservation {
    let mut obs = MemberObservation::default();
    let mut env_names = Vec::new();
    for r in remote::records(stdout, nonce) {
        let value = r.value;
        if r.provider == "-" {
            match r.field {
                "envfile" => {
                    obs.env_file = match value {
                        "present" => EnvFileObservation::Present(Vec::new()),
                        "unreadable" => EnvFileObservation::Unreadable,
                        _ => EnvFileObservation::Absent,
                    }
                }
                "envnames" => {
                    // One line of space-separated names (older probes: base64, one a line).
                    env_names = r
                        .text()
                        .split_whitespace()
                        .map(str::to_string)
                        .filter(|n| is_identifier(n))
                        .collect()
                }
                "envfile_unsafe" => obs.env_file_unsafe = Some(r.text()),
                "done" => obs.complete = true,
                "fatal" => obs.fatal = Some(r.text()),
                _ => {}
            }
            continue;
        }
        let p = obs.providers.entry(r.provider.to_string()).or_default();
        let int = || value.trim().parse::<i32>().ok();
        match r.field {
            "bin" => p.binary = Some(r.text()),
            "missing" => p.binary = None,
            "version_rc" => p.version_rc = int(),
            "version_out" => p.version_out = r.text(),
            "status_rc" => p.status_rc = int(),
            "version_pkg" => p.version_pkg = Some(value.trim().to_string()),
            "version_cached" => p.version_cached = value == "1",
            "status_skipped" => p.status_skipped = value == "1",
            "ambient" if is_identifier(value) => p.ambient.push(value.to_string()),
            "probe_rc" => p.prompt.get_or_insert_with(Default::default).rc = int().unwrap_or(-1),
            "probe_out" => p.prompt.get_or_insert_with(Default::default).stdout = r.text(),
            "probe_err" => p.prompt.get_or_insert_with(Default::default).stderr = r.text(),
            f => {
                if let Some(path) = f.strip_prefix("file:") {
                    p.files
                        .insert(path.to_string(), FileObservation::Present(r.bytes().into()));
                } else if let Some(path) = f.strip_prefix("unreadable:") {
                    p.files
                        .insert(path.to_string(), FileObservation::Unreadable);
                } else if let Some(var) = f.strip_prefix("ambient_in:")
                    && is_identifier(var)
                {
                    let files = r.text().lines().map(str::to_string).collect();
                    p.ambient_in.insert(var.to_string(), files);
                } else if let Some(path) = f.strip_prefix("exists:") {
                    p.present_files.push(path.to_string());
                } else if let Some(var) = f.strip_prefix("envfp:") {
                    let hex = value.trim();
                    if is_identifier(var)
                        && hex.len() == crate::mask::FINGERPRINT_HEX
                        && hex.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        p.env_fingerprints
                            .insert(var.to_string(), format!("sha256:{hex}"));
                    }
                } else if let Some(var) = f.strip_prefix("prefix_env:") {
                    p.env_file_prefixes
                        .insert(var.to_string(), value.to_string());
                } else if let Some(var) = f.strip_prefix("prefix_ambient:") {
                    p.ambient_prefixes
                        .insert(var.to_string(), value.to_string());
                } else if let Some(id) = f.strip_prefix("keychain:") {
                    // "STATUS TOOL SERVICE…"
                    let text = r.text();
                    let mut parts = text.splitn(3, ' ');
                    let status = match parts.next().unwrap_or_default() {
                        "present" => KeychainStatus::Present,
                        "absent" => KeychainStatus::Absent,
                        "locked" => KeychainStatus::Locked,
                        "none" => KeychainStatus::Unavailable,
                        other => KeychainStatus::Failed(other.to_string()),
                    };
                    let tool = parts.next().unwrap_or_default().to_string();
                    let service = parts.next().unwrap_or_default().to_string();
                    p.keychains.insert(
                        id.to_string(),
                        KeychainObservation {
                            status,
                            service,
                            tool,
                        },
                    );
                }
            }
        }
    }
    if let EnvFileObservation::Present(names) = &mut obs.env_file {
        *names = env_names;
    }
    obs
}

/// The version a member reported: its npm `package.json`'s, else the provider's regex applied
/// to the `--version` output (run or cached).
pub fn observed_version(provider: &Provider, obs: &ProviderObservation) -> Option<String> {
    obs.version_pkg
        .clone()
        .filter(|v| !v.is_empty())
        .or_else(|| parse_version(provider, &obs.version_out))
}

/// Pull the version out of `--version` output with the provider's regex.
pub fn parse_version(provider: &Provider, out: &str) -> Option<String> {
    provider
        .version_regex
        .captures(out)
        .and_then(|c| c.get(1).or_else(|| c.get(0)))
        .map(|m| m.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn reserved_names_are_the_variables_a_definition_sets() {
        // What `fa_def_N` sets, asked of a real sh: the variables `set` lists after it ran that
        // it did not list before.
        let names = |script: &str| -> std::collections::BTreeSet<String> {
            let out = std::process::Command::new("sh")
                .args(["-c", script])
                .env_clear()
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
                .filter(|k| crate::shell::is_identifier(k))
                .collect()
        };
        let registry = crate::provider::Registry::builtin().unwrap();
        let want: std::collections::BTreeSet<String> = remote::DEFINITION_VARS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (p, _) in registry.iter() {
            let def = provider_definition(0, p, Duration::from_secs(30));
            let before = names(&format!("{def}set"));
            let after = names(&format!("{def}fa_def_0\nset"));
            let set: std::collections::BTreeSet<String> =
                after.difference(&before).cloned().collect();
            assert_eq!(set, want, "{}", p.name);
        }
        assert!(
            remote::DEFINITION_VARS
                .iter()
                .all(|k| remote::is_reserved_name(k))
        );
        assert!(remote::is_reserved_name("fa_bin") && remote::is_reserved_name("FA_NONCE"));
        assert!(!remote::is_reserved_name("GEMINI_API_KEY") && !remote::is_reserved_name("PATH"));
    }

    #[test]
    fn parses_records_and_ignores_noise() {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let out = format!(
            "Welcome to host\n@@FA\t-\tenvfile\tpresent\n@@FA\t-\tenvnames\t{}\n\
             @@FA\tgemini\tbin\t{}\n@@FA\tgemini\tversion_rc\t0\n@@FA\tgemini\tversion_out\t{}\n\
             @@FA\tgemini\tambient\tGEMINI_API_KEY\n@@FA\tgemini\tambient\tbad name\n\
             @@FA\tgemini\tfile:.gemini/oauth_creds.json\t{}\n@@FA\tclaude\tmissing\t1\n\
             @@FA\tgemini\tprobe_rc\t41\n@@FA\t-\tdone\t1\n\
             @@FA\tgemini\tenvfp:GEMINI_API_KEY\t0123456789ab\n@@FA\tgemini\tenvfp:FOO\tnot-hex-at-all\n\
             @@FA\tgemini\tprefix_env:GEMINI_API_KEY\tAIza\n@@FA\tgemini\tprefix_ambient:GH_TOKEN\tghu_\n",
            b("FOO\nGEMINI_API_KEY\n"),
            b("/home/u/.local/bin/gemini"),
            b("0.61.0\n"),
            b("{\"expiry_date\": 1}"),
        );
        let nonce = Nonce::new();
        let mut out = out.replace("@@FA\t", &format!("@@FA{}\t", nonce.as_str()));
        // A line printed by something else on the member (a ~/.bashrc) carries no nonce.
        out.push_str("@@FA\tgemini\tbin\tZm9yZ2Vk\n@@FA\t-\tfatal\tZm9yZ2Vk\n");
        let obs = parse_output(out.as_bytes(), &nonce);
        assert!(obs.complete);
        assert!(obs.fatal.is_none());
        assert_eq!(
            obs.env_file,
            EnvFileObservation::Present(vec!["FOO".into(), "GEMINI_API_KEY".into()])
        );
        let g = &obs.providers["gemini"];
        assert_eq!(g.binary.as_deref(), Some("/home/u/.local/bin/gemini"));
        assert_eq!(g.version_rc, Some(0));
        assert_eq!(g.version_out.trim(), "0.61.0");
        assert_eq!(g.ambient, vec!["GEMINI_API_KEY".to_string()]);
        // Fingerprints are taken only in their exact form; prefixes as named.
        assert_eq!(
            g.env_fingerprints.iter().collect::<Vec<_>>(),
            [(
                &"GEMINI_API_KEY".to_string(),
                &"sha256:0123456789ab".to_string()
            )]
        );
        assert_eq!(g.env_file_prefixes["GEMINI_API_KEY"], "AIza");
        assert_eq!(g.ambient_prefixes["GH_TOKEN"], "ghu_");
        assert!(matches!(
            g.files.get(".gemini/oauth_creds.json"),
            Some(FileObservation::Present(_))
        ));
        assert_eq!(g.prompt.as_ref().map(|p| p.rc), Some(41));
        assert!(obs.providers["claude"].binary.is_none());
    }

    #[test]
    fn truncated_answer_is_not_complete() {
        let nonce = Nonce::new();
        let out = format!("@@FA{}\t-\tenvfile\tabsent\n", nonce.as_str());
        let obs = parse_output(out.as_bytes(), &nonce);
        assert!(!obs.complete);
        assert_eq!(obs.env_file, EnvFileObservation::Absent);
    }
}

/// The script run for real, locally, by `sh` — the same shell a member uses.
#[cfg(test)]
mod script_tests {
    use super::*;
    use crate::provider::Registry;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn write(path: &Path, text: &str, exec: bool) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        if exec {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn run(home: &Path, script: &Script, extra_env: &[(&str, &str)]) -> MemberObservation {
        use std::io::Write;
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-s")
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.text().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        parse_output(&out.stdout, script.nonce())
    }

    #[test]
    fn script_reports_binary_version_env_names_and_files() {
        let reg = Registry::builtin().unwrap();
        let gemini = reg.get("gemini").unwrap();
        let claude = reg.get("claude").unwrap();
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        write(
            &h.join(".local/bin/gemini"),
            "#!/bin/sh\necho 0.61.0\n",
            true,
        );
        write(
            &h.join(".config/fleetauth/env"),
            "# operator line\nFOO=bar\nexport GEMINI_API_KEY='AIzaSECRETSECRET'\n",
            false,
        );
        write(
            &h.join(".gemini/oauth_creds.json"),
            "{\"expiry_date\": 5}",
            false,
        );
        let req = ProbeRequest {
            providers: vec![
                (gemini, Duration::from_secs(5)),
                (claude, Duration::from_secs(5)),
            ],
            env_file: "~/.config/fleetauth/env",
            deep: false,
        };
        let script = build_script(&req);
        assert!(!script.text().contains("SECRET"));
        let obs = run(h, &script, &[("ANTHROPIC_API_KEY", "sk-ant-api03-secret")]);
        assert!(obs.complete, "script did not finish");
        assert_eq!(
            obs.env_file,
            EnvFileObservation::Present(vec!["FOO".into(), "GEMINI_API_KEY".into()])
        );
        let g = &obs.providers["gemini"];
        assert_eq!(
            g.binary.as_deref(),
            Some(h.join(".local/bin/gemini").to_str().unwrap())
        );
        assert_eq!(
            parse_version(gemini, &g.version_out).as_deref(),
            Some("0.61.0")
        );
        match g.files.get(".gemini/oauth_creds.json") {
            Some(FileObservation::Present(b)) => {
                assert_eq!(b.expose_secret(), b"{\"expiry_date\": 5}")
            }
            other => panic!("oauth file not reported: {other:?}"),
        }
        let c = &obs.providers["claude"];
        assert!(c.binary.is_none());
        assert_eq!(c.ambient, vec!["ANTHROPIC_API_KEY".to_string()]);
    }

    #[test]
    fn deep_probe_sources_env_file_closes_stdin_and_times_out() {
        let reg = Registry::builtin().unwrap();
        let gemini = reg.get("gemini").unwrap();
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        // Answers only when the env file was sourced and the trust variable is set; a
        // stdin that is not closed would make `cat` wait.
        write(
            &h.join(".local/bin/gemini"),
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo 0.61.0; exit 0; }\ncat >/dev/null\n\
             [ \"$GEMINI_CLI_TRUST_WORKSPACE\" = true ] || exit 55\n\
             [ -n \"$GEMINI_API_KEY\" ] && { echo '{\"response\":\"OK\"}'; exit 0; }\nexit 41\n",
            true,
        );
        write(
            &h.join(".config/fleetauth/env"),
            "GEMINI_API_KEY='AIzaX'\n",
            false,
        );
        let req = ProbeRequest {
            providers: vec![(gemini, Duration::from_secs(5))],
            env_file: "~/.config/fleetauth/env",
            deep: true,
        };
        let obs = run(h, &build_script(&req), &[]);
        let p = obs.providers["gemini"].prompt.as_ref().expect("prompt ran");
        assert_eq!(p.rc, 0, "stderr: {}", p.stderr);
        assert!(p.stdout.contains("\"response\""));

        // A CLI that never answers is cut off by the prompt deadline.
        write(
            &h.join(".local/bin/gemini"),
            "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\nexec sleep 60\n",
            true,
        );
        let req = ProbeRequest {
            providers: vec![(gemini, Duration::from_secs(1))],
            ..req
        };
        let started = std::time::Instant::now();
        let obs = run(h, &build_script(&req), &[]);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(obs.providers["gemini"].prompt.as_ref().unwrap().timed_out());
    }

    #[test]
    fn script_reports_keychains_presence_files_and_moved_files_without_secrets() {
        let reg = Registry::builtin().unwrap();
        let gemini = reg.get("gemini").unwrap();
        let claude = reg.get("claude").unwrap();
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let bin = h.join("bin");
        // A secret-tool that prints a secret: it must not leave the member.
        write(
            &bin.join("secret-tool"),
            "#!/bin/sh\n[ \"$1 $2 $3\" = 'search service gemini-cli-api-key' ] || exit 0\nprintf '[/org/freedesktop/secrets/collection/login/1]\\nsecret = KEYCHAINSECRET\\n'\n",
            true,
        );
        write(
            &h.join(".gemini/gemini-credentials.json"),
            "ENCRYPTEDSECRET",
            false,
        );
        let moved = h.join("elsewhere/system-settings.json");
        write(
            &moved,
            "{\"security\":{\"auth\":{\"selectedType\":\"gemini-api-key\"}}}",
            false,
        );
        let req = ProbeRequest {
            providers: vec![
                (gemini, Duration::from_secs(5)),
                (claude, Duration::from_secs(5)),
            ],
            env_file: "~/.config/fleetauth/env",
            deep: false,
        };
        let script = build_script(&req);
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let obs = run(
            h,
            &script,
            &[
                ("PATH", path.as_str()),
                ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent"),
                ("GEMINI_CLI_SYSTEM_SETTINGS_PATH", moved.to_str().unwrap()),
                ("CLAUDE_CONFIG_DIR", "/srv/claude"),
            ],
        );
        assert!(obs.complete, "script did not finish");
        let g = &obs.providers["gemini"];
        assert_eq!(g.present_files, [".gemini/gemini-credentials.json"]);
        assert!(!g.files.contains_key(".gemini/gemini-credentials.json"));
        assert_eq!(
            g.keychains["keychain_api_key"],
            KeychainObservation {
                status: KeychainStatus::Present,
                service: "gemini-cli-api-key".into(),
                tool: "secret-tool".into(),
            }
        );
        assert_eq!(g.keychains["keychain_oauth"].status, KeychainStatus::Absent);
        // The system settings file, moved by its variable, is recorded under its data name.
        assert!(matches!(
            g.files.get("/etc/gemini-cli/settings.json"),
            Some(FileObservation::Present(b)) if b.expose_secret().starts_with(b"{\"security\"")
        ));
        // claude's service follows CLAUDE_CONFIG_DIR.
        let c = &obs.providers["claude"];
        let service = &c.keychains["keychain"].service;
        let hash = std::process::Command::new("sh")
            .args(["-c", "printf %s /srv/claude | sha256sum | cut -c1-8"])
            .output()
            .unwrap();
        assert_eq!(
            service,
            &format!(
                "Claude Code-credentials-{}",
                String::from_utf8_lossy(&hash.stdout).trim()
            )
        );
        // Without any keychain tool: unavailable, not absent.
        let obs = run(h, &script, &[]);
        assert_eq!(
            obs.providers["gemini"].keychains["keychain_api_key"].status,
            KeychainStatus::Unavailable
        );
    }
}
