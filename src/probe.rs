//! The member-side probe: one POSIX sh script per member, one exec channel, every provider.
//!
//! Each exec costs the member a shell and each round trip costs the sweep latency, so all the
//! questions fleetauth asks a member — where is the CLI, what version, which credential
//! variables are set, what do the credential files say and, with `--deep`, does a minimal prompt
//! answer — go in one script sent on the channel's stdin (`sh -s`). Providers run in parallel
//! background subshells so a member costs the slowest provider, not the sum.
//!
//! The script answers in tagged lines, `@@FA<TAB>provider<TAB>field<TAB>value`, with every
//! free-form value base64-encoded; anything else the member prints (a chatty rc file, a motd)
//! is ignored. Values of environment variables never leave the member: only names are sent
//! back. Credential *files* are sent back (capped at 64 KiB) because their expiry lives behind
//! JSON pointers no member-side tool can read portably; they are held as secrets, parsed for
//! expiry and refresh-token presence only, and dropped.
//!
//! Every name, path and argument in the script comes from provider data and goes through
//! [`crate::shell::quote`]; variable names are checked to be identifiers before they are used
//! in a `${NAME:-}` expansion.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use secrecy::SecretSlice;

use crate::provider::{Credential, Provider};
use crate::shell::{quote, quote_remote_path};

/// Exit status of coreutils `timeout` when the deadline hit.
const TIMEOUT_STATUS: i32 = 124;

/// What to ask one member.
pub struct ProbeRequest<'a> {
    pub providers: Vec<&'a Provider>,
    /// The member's env file (remote path, `~/` allowed).
    pub env_file: &'a str,
    /// Run each provider's minimal prompt with the env file sourced.
    pub deep: bool,
    /// Overrides every provider's probe deadline.
    pub probe_timeout: Option<Duration>,
}

impl ProbeRequest<'_> {
    pub fn prompt_timeout(&self, provider: &Provider) -> Duration {
        self.probe_timeout.unwrap_or(provider.probe.timeout)
    }
}

/// The command that runs the script; the script itself goes on stdin.
pub const PROBE_COMMAND: &str = "sh -s";

/// Shell helpers shared by every provider block. `fa_recb` caps every value it sends back at
/// 64 KiB: a credential file or a CLI's output is never larger in practice, and a runaway one
/// must not cost the client memory.
const PRELUDE: &str = r#"umask 077
fa_rec() { printf '@@FA\t%s\t%s\t%s\n' "$1" "$2" "$3"; }
if [ "$(printf x | base64 -w 0 2>/dev/null)" = eA== ]; then fa_b64() { base64 -w 0; }; else fa_b64() { base64 | tr -d '\n'; }; fi
fa_recb() { printf '@@FA\t%s\t%s\t' "$1" "$2"; head -c 65536 | fa_b64; printf '\n'; }
fa_recs() { printf '@@FA\t%s\t%s\t' "$1" "$2"; printf %s "$3" | fa_b64; printf '\n'; }
if command -v timeout >/dev/null 2>&1; then fa_to() { timeout -k 2 "$@"; }; else fa_to() { shift; "$@"; }; fi
fa_find() {
  fa_b=$1; shift
  if fa_p=$(command -v -- "$fa_b" 2>/dev/null); then case $fa_p in /*) printf '%s' "$fa_p"; return 0;; esac; fi
  for fa_d in "$@"; do
    if [ -f "$fa_d/$fa_b" ] && [ -x "$fa_d/$fa_b" ]; then printf '%s' "$fa_d/$fa_b"; return 0; fi
  done
  return 1
}
# npm's global bin dir, once per member. `npm prefix -g` starts node (~0.1 s of CPU): when no
# npm config file sets `prefix`, npm's default is the prefix node is installed under, read here
# without starting anything; otherwise ask npm.
fa_npm_dir() {
  if [ -n "${fa_nd+x}" ]; then [ -n "$fa_nd" ]; return; fi
  fa_nd=
  command -v npm >/dev/null 2>&1 || return 1
  fa_np=${NPM_CONFIG_PREFIX:-${npm_config_prefix:-${PREFIX:-}}}
  if [ -z "$fa_np" ] && [ -z "${DESTDIR:-}" ] && fa_nn=$(command -v node 2>/dev/null); then
    fa_dp=${fa_nn%/bin/node}
    fa_nrc=$(readlink -f "$(command -v npm)" 2>/dev/null)
    if ! grep -qs '^[[:space:]]*prefix[[:space:]]*=' "${NPM_CONFIG_USERCONFIG:-$HOME/.npmrc}" "${NPM_CONFIG_GLOBALCONFIG:-$fa_dp/etc/npmrc}" "${fa_nrc%/bin/*}/npmrc" ./.npmrc; then fa_np=$fa_dp; fi
  fi
  [ -n "$fa_np" ] || fa_np=$(fa_to 10 npm prefix -g </dev/null 2>/dev/null) || fa_np=
  [ -n "$fa_np" ] && fa_nd=$fa_np/bin
}
fa_npm_find() {
  [ -f "$fa_nd/$1" ] && [ -x "$fa_nd/$1" ] && printf '%s' "$fa_nd/$1"
}
fa_file() {
  if [ -e "$3" ] || [ -L "$3" ]; then
    if [ -r "$3" ] && [ -f "$3" ]; then fa_recb "$1" "file:$2" < "$3"; else fa_rec "$1" "unreadable:$2" 1; fi
  fi
}
"#;

/// A private temp dir for the parallel deep probes' outputs.
const TEMP_DIR: &str = r#"fa_t=$(mktemp -d 2>/dev/null) || fa_t=$(mktemp -d -t fleetauth.XXXXXX) || { printf '@@FA\t-\tfatal\tmktemp failed\n'; exit 0; }
trap 'rm -rf "$fa_t"' EXIT
"#;

/// Build the whole probe script for one member.
pub fn build_script(req: &ProbeRequest<'_>) -> String {
    let mut s = String::with_capacity(4096);
    if req.deep {
        s.push_str(TEMP_DIR);
    }
    s.push_str(PRELUDE);
    let _ = writeln!(s, "fa_env={}", quote_remote_path(req.env_file));
    // The env file: present or not, and the names (never the values) it assigns.
    s.push_str(concat!(
        "if [ -f \"$fa_env\" ]; then\n",
        "  if [ -r \"$fa_env\" ]; then fa_rec - envfile present\n",
        "    sed -n 's/^[[:space:]]*\\(export[[:space:]][[:space:]]*\\)\\{0,1\\}\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\2/p' \"$fa_env\" | fa_recb - envnames\n",
        "  else fa_rec - envfile unreadable; fi\n",
        "else fa_rec - envfile absent; fi\n",
    ));
    if req.deep {
        for (i, p) in req.providers.iter().enumerate() {
            s.push_str("(\n");
            provider_block(&mut s, p, req);
            let _ = writeln!(s, ") >\"$fa_t/{i}.rec\" 2>/dev/null </dev/null &");
        }
        s.push_str(
            "wait\nfor fa_f in \"$fa_t\"/*.rec; do [ -f \"$fa_f\" ] && cat \"$fa_f\"; done\n",
        );
    } else {
        // Without prompts every provider takes milliseconds: one after the other, in this
        // shell, costs the member no subshells, temp files or `cat`.
        s.push_str("exec 3>&2 2>/dev/null\n");
        for p in &req.providers {
            provider_block(&mut s, p, req);
        }
        s.push_str("exec 2>&3 3>&-\n");
    }
    s.push_str("fa_rec - done 1\n");
    s
}

/// `VAR=<the provider's config home>` as a shell statement: its variable when set on the
/// member, else the default (`~/` = the member's `$HOME`).
pub fn config_home_assignment(shell_var: &str, p: &Provider) -> String {
    let default = quote_remote_path(&p.config_home.default);
    match p.config_home.env.as_deref().filter(|v| is_identifier(v)) {
        Some(var) => {
            format!("{shell_var}=${{{var}:-}}; [ -n \"${shell_var}\" ] || {shell_var}={default}")
        }
        None => format!("{shell_var}={default}"),
    }
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

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn provider_block(s: &mut String, p: &Provider, req: &ProbeRequest<'_>) {
    let name = quote(&p.name);
    let bin = quote(&p.binary);
    let dirs: Vec<String> = p
        .search_paths
        .iter()
        .map(|d| quote_remote_path(d))
        .collect();
    let _ = writeln!(s, "P={name}");
    let npm = if p.npm_global_bin {
        format!(" || {{ fa_npm_dir && fa_bin=$(fa_npm_find {bin}); }}")
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "if fa_bin=$(fa_find {bin} {}){npm}; then",
        dirs.join(" ")
    );
    s.push_str("  fa_recs \"$P\" bin \"$fa_bin\"\n");
    let _ = writeln!(
        s,
        "  fa_v=$(fa_to 15 \"$fa_bin\" {} </dev/null 2>&1); fa_rec \"$P\" version_rc $?",
        crate::shell::join(&p.version_args)
    );
    s.push_str("  printf '%s\\n' \"$fa_v\" | fa_recb \"$P\" version_out\n");
    if let Some(status) = &p.status {
        let _ = writeln!(
            s,
            "  fa_to 15 \"$fa_bin\" {} </dev/null >/dev/null 2>&1; fa_rec \"$P\" status_rc $?",
            crate::shell::join(&status.args)
        );
    }
    s.push_str("else fa_rec \"$P\" missing 1; fi\n");

    // Which credential variables the member's own environment sets (names only).
    for c in &p.credentials {
        if let Credential::Env { var, .. } = c
            && is_identifier(var)
        {
            let _ = writeln!(s, "[ -n \"${{{var}:-}}\" ] && fa_rec \"$P\" ambient {var}");
        }
    }

    // The CLI's config home, then each credential file under it.
    let _ = writeln!(s, "{}", config_home_assignment("fa_h", p));
    for file in credential_files(p) {
        let _ = writeln!(
            s,
            "fa_file \"$P\" {} \"$fa_h\"/{}",
            quote(file),
            quote(file)
        );
    }

    if req.deep {
        let secs = req.prompt_timeout(p).as_secs().max(1);
        let mut env = String::new();
        for (k, v) in &p.probe.env {
            if is_identifier(k) {
                let _ = write!(env, "export {k}={}; ", quote(v));
            }
        }
        let _ = writeln!(s, "if [ -n \"${{fa_bin:-}}\" ]; then");
        let _ = writeln!(
            s,
            "  ( if [ -f \"$fa_env\" ] && [ -r \"$fa_env\" ]; then set -a; . \"$fa_env\"; set +a; fi; cd \"$HOME\" 2>/dev/null; {env}fa_to {secs} \"$fa_bin\" {} ) </dev/null >\"$fa_t/$P.o\" 2>\"$fa_t/$P.e\"",
            crate::shell::join(&p.probe.args)
        );
        s.push_str("  fa_rec \"$P\" probe_rc $?\n");
        s.push_str("  fa_recb \"$P\" probe_out < \"$fa_t/$P.o\"\n");
        s.push_str("  fa_recb \"$P\" probe_err < \"$fa_t/$P.e\"\n");
        s.push_str("fi\n");
    }
}

/// What one member said about one provider.
#[derive(Debug, Default)]
pub struct ProviderObservation {
    /// Path of the binary, None when it was not found.
    pub binary: Option<String>,
    pub version_rc: Option<i32>,
    pub version_out: String,
    pub status_rc: Option<i32>,
    /// Credential variables set in the member's own environment.
    pub ambient: Vec<String>,
    /// Credential files by path (relative to the config home): contents, held as secrets.
    pub files: BTreeMap<String, FileObservation>,
    pub prompt: Option<PromptObservation>,
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
    pub providers: BTreeMap<String, ProviderObservation>,
    /// The script ran to its end (a truncated answer means the channel died).
    pub complete: bool,
    pub fatal: Option<String>,
}

fn decode(v: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .unwrap_or_default()
}

fn decode_text(v: &str) -> String {
    String::from_utf8_lossy(&decode(v)).into_owned()
}

/// Parse the script's answer. Lines that are not records are ignored.
pub fn parse_output(stdout: &[u8]) -> MemberObservation {
    let text = String::from_utf8_lossy(stdout);
    let mut obs = MemberObservation::default();
    let mut env_names = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("@@FA\t") else {
            continue;
        };
        let mut parts = rest.splitn(3, '\t');
        let (Some(provider), Some(field), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if provider == "-" {
            match field {
                "envfile" => {
                    obs.env_file = match value {
                        "present" => EnvFileObservation::Present(Vec::new()),
                        "unreadable" => EnvFileObservation::Unreadable,
                        _ => EnvFileObservation::Absent,
                    }
                }
                "envnames" => {
                    env_names = decode_text(value)
                        .lines()
                        .map(str::to_string)
                        .filter(|n| is_identifier(n))
                        .collect()
                }
                "done" => obs.complete = true,
                "fatal" => obs.fatal = Some(value.to_string()),
                _ => {}
            }
            continue;
        }
        let p = obs.providers.entry(provider.to_string()).or_default();
        let int = || value.trim().parse::<i32>().ok();
        match field {
            "bin" => p.binary = Some(decode_text(value)),
            "missing" => p.binary = None,
            "version_rc" => p.version_rc = int(),
            "version_out" => p.version_out = decode_text(value),
            "status_rc" => p.status_rc = int(),
            "ambient" if is_identifier(value) => p.ambient.push(value.to_string()),
            "probe_rc" => p.prompt.get_or_insert_with(Default::default).rc = int().unwrap_or(-1),
            "probe_out" => {
                p.prompt.get_or_insert_with(Default::default).stdout = decode_text(value)
            }
            "probe_err" => {
                p.prompt.get_or_insert_with(Default::default).stderr = decode_text(value)
            }
            f => {
                if let Some(path) = f.strip_prefix("file:") {
                    let bytes = decode(value);
                    p.files
                        .insert(path.to_string(), FileObservation::Present(bytes.into()));
                } else if let Some(path) = f.strip_prefix("unreadable:") {
                    p.files
                        .insert(path.to_string(), FileObservation::Unreadable);
                }
            }
        }
    }
    if let EnvFileObservation::Present(names) = &mut obs.env_file {
        *names = env_names;
    }
    obs
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

    #[test]
    fn parses_records_and_ignores_noise() {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let out = format!(
            "Welcome to host\n@@FA\t-\tenvfile\tpresent\n@@FA\t-\tenvnames\t{}\n\
             @@FA\tgemini\tbin\t{}\n@@FA\tgemini\tversion_rc\t0\n@@FA\tgemini\tversion_out\t{}\n\
             @@FA\tgemini\tambient\tGEMINI_API_KEY\n@@FA\tgemini\tambient\tbad name\n\
             @@FA\tgemini\tfile:.gemini/oauth_creds.json\t{}\n@@FA\tclaude\tmissing\t1\n\
             @@FA\tgemini\tprobe_rc\t41\n@@FA\t-\tdone\t1\n",
            b("FOO\nGEMINI_API_KEY\n"),
            b("/home/u/.local/bin/gemini"),
            b("0.61.0\n"),
            b("{\"expiry_date\": 1}"),
        );
        let obs = parse_output(out.as_bytes());
        assert!(obs.complete);
        assert_eq!(
            obs.env_file,
            EnvFileObservation::Present(vec!["FOO".into(), "GEMINI_API_KEY".into()])
        );
        let g = &obs.providers["gemini"];
        assert_eq!(g.binary.as_deref(), Some("/home/u/.local/bin/gemini"));
        assert_eq!(g.version_rc, Some(0));
        assert_eq!(g.version_out.trim(), "0.61.0");
        assert_eq!(g.ambient, vec!["GEMINI_API_KEY".to_string()]);
        assert!(matches!(
            g.files.get(".gemini/oauth_creds.json"),
            Some(FileObservation::Present(_))
        ));
        assert_eq!(g.prompt.as_ref().map(|p| p.rc), Some(41));
        assert!(obs.providers["claude"].binary.is_none());
    }

    #[test]
    fn truncated_answer_is_not_complete() {
        let obs = parse_output(b"@@FA\t-\tenvfile\tabsent\n");
        assert!(!obs.complete);
        assert_eq!(obs.env_file, EnvFileObservation::Absent);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("GEMINI_API_KEY"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("A-B"));
        assert!(!is_identifier("${X}"));
        assert!(!is_identifier(""));
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

    fn run(home: &Path, script: &str, extra_env: &[(&str, &str)]) -> MemberObservation {
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
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        parse_output(&out.stdout)
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
            providers: vec![gemini, claude],
            env_file: "~/.config/fleetauth/env",
            deep: false,
            probe_timeout: None,
        };
        let script = build_script(&req);
        assert!(!script.contains("SECRET"));
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
            providers: vec![gemini],
            env_file: "~/.config/fleetauth/env",
            deep: true,
            probe_timeout: Some(Duration::from_secs(5)),
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
            probe_timeout: Some(Duration::from_secs(1)),
            ..req
        };
        let started = std::time::Instant::now();
        let obs = run(h, &build_script(&req), &[]);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(obs.providers["gemini"].prompt.as_ref().unwrap().timed_out());
    }
}
