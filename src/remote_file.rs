//! Replacing one whole file on a member atomically: used to copy the operator's own OAuth login
//! to a member (`provision --share-oauth`).
//!
//! Same rules as the env file ([`crate::envfile`]): the content travels on stdin, never in a
//! command line; it is written to a temporary file beside the target (umask 077), synced and
//! renamed over it, so nobody ever sees a partial file; the previous file is kept as
//! `<file>.fleetauth-prev` so a copy that does not verify can be undone; a symlinked target is
//! refused. The path is resolved on the member the way the CLI resolves it: its config-home
//! variable when set, else the default.

use crate::shell;
use crate::ssh::ExecOutput;

const SCRIPT: &str = r#"set -u
mode=$1 var=$2 default=$3 rel=$4
h=""
[ -n "$var" ] && h=$(printenv -- "$var" 2>/dev/null)
[ -n "$h" ] || h=$default
p="$h/$rel"; b="$p.fleetauth-prev"; d=$(dirname -- "$p")
case $mode in
push)
  umask 077
  mkdir -p -- "$d" || exit 70
  if [ -L "$p" ]; then echo "$p is a symbolic link; refusing to replace it" >&2; exit 66; fi
  t=$(mktemp "$d/.fleetauth.XXXXXX") || exit 70
  if ! cat > "$t"; then rm -f -- "$t"; exit 70; fi
  if [ -f "$p" ] && cmp -s -- "$t" "$p"; then rm -f -- "$t"; echo unchanged; exit 0; fi
  sync -- "$t" 2>/dev/null || sync
  if [ -f "$p" ]; then cp -p -- "$p" "$b" || { rm -f -- "$t"; exit 70; }; else rm -f -- "$b"; fi
  mv -f -- "$t" "$p" || { rm -f -- "$t"; exit 70; }
  echo pushed ;;
restore)
  if [ -f "$b" ]; then mv -f -- "$b" "$p" && echo restored; else rm -f -- "$p" && echo removed; fi ;;
*) exit 64 ;;
esac
"#;

fn command(mode: &str, home_env: Option<&str>, home_default: &str, rel: &str) -> String {
    format!(
        "sh -c {} fleetauth-file {mode} {} {} {}",
        shell::quote(SCRIPT),
        shell::quote(home_env.unwrap_or("")),
        shell::quote_remote_path(home_default),
        shell::quote(rel)
    )
}

/// Replace `<config home>/<rel>` with the bytes on stdin; prints `pushed` or `unchanged`.
pub fn push_command(home_env: Option<&str>, home_default: &str, rel: &str) -> String {
    command("push", home_env, home_default, rel)
}

/// Undo the last push: put the backup back, or remove a file the push created.
pub fn restore_command(home_env: Option<&str>, home_default: &str, rel: &str) -> String {
    command("restore", home_env, home_default, rel)
}

/// `Ok(true)` when written, `Ok(false)` when identical, else the member's complaint.
pub fn push_outcome(out: &ExecOutput) -> Result<bool, String> {
    match (out.exit, String::from_utf8_lossy(&out.stdout).trim()) {
        (Some(0), "pushed") => Ok(true),
        (Some(0), "unchanged") => Ok(false),
        (code, _) => Err(format!(
            "copying the file failed (exit {code:?}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn run(home: &std::path::Path, cmd: &str, stdin: &[u8], env: &[(&str, &str)]) -> (String, i32) {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .env("HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            out.status.code().unwrap_or(-1),
        )
    }

    #[test]
    fn push_unchanged_restore_and_config_home_variable() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let push = push_command(Some("CLAUDE_CONFIG_DIR"), "~/.claude", ".credentials.json");
        assert_eq!(run(h, &push, b"one", &[]), ("pushed".into(), 0));
        let file = h.join(".claude/.credentials.json");
        assert_eq!(std::fs::read(&file).unwrap(), b"one");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(run(h, &push, b"one", &[]), ("unchanged".into(), 0));
        assert_eq!(run(h, &push, b"two", &[]), ("pushed".into(), 0));
        let restore = restore_command(Some("CLAUDE_CONFIG_DIR"), "~/.claude", ".credentials.json");
        assert_eq!(run(h, &restore, b"", &[]).0, "restored");
        assert_eq!(std::fs::read(&file).unwrap(), b"one");

        let other = h.join("elsewhere");
        let env = [("CLAUDE_CONFIG_DIR", other.to_str().unwrap())];
        assert_eq!(run(h, &push, b"x", &env).0, "pushed");
        assert_eq!(
            std::fs::read(other.join(".credentials.json")).unwrap(),
            b"x"
        );
        assert_eq!(run(h, &restore, b"", &env).0, "removed");
        assert!(!other.join(".credentials.json").exists());
    }

    #[test]
    fn symlinked_target_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        std::fs::create_dir_all(h.join(".codex")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", h.join(".codex/auth.json")).unwrap();
        let (_, code) = run(
            h,
            &push_command(Some("CODEX_HOME"), "~/.codex", "auth.json"),
            b"x",
            &[],
        );
        assert_eq!(code, 66);
    }
}
