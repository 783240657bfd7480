//! The member's env file: rendering the lines fleetauth manages, and the remote commands that
//! merge them in, restore the previous file, and list which names a file assigns.
//!
//! The env file (`~/.config/fleetauth/env` by default) is sourced before every probe and every
//! dispatched command. It is the operator's file as much as ours: it may hold other secrets,
//! comments, CRLF line ends or a last line without a newline, and all of that must survive a
//! push byte for byte. Two constraints shape this module:
//!
//! - **The client never reads the file back.** It holds other secrets, and a member never echoes
//!   any part of a key to us. So the merge runs *on the member*, in POSIX `sh` and `awk` (mawk,
//!   busybox and BSD awk included), driven by one constant script built here. The new
//!   assignments travel on the channel's stdin; the command line carries only the path and the
//!   variable names, each quoted with [`crate::shell`].
//! - **Nobody ever sees a partial file.** The merged file is written to a temporary file beside
//!   the target (umask 077, so 0600), synced, and renamed over it; the previous file is kept as
//!   `<file>.fleetauth-prev` (0600) so a push whose verification fails can be undone with
//!   [`restore_command`]. A lock beside the file (`flock(1)` with a timeout, else a `mkdir`
//!   lock) serialises concurrent provisioners on one member.
//!
//! The remote script reports through one word on stdout (`pushed`, `unchanged`, `restored`,
//! `nothing-to-restore`) and, on failure, a distinct exit status ([`EXIT_SYMLINK`] …) with a
//! message on stderr; [`push_outcome`] and [`restore_outcome`] turn those into Rust values.
//!
//! The member's login shell must accept POSIX quoting (sh, bash, dash, zsh, ksh): the command
//! line is `sh -c '<script>' fleetauth-envfile MODE PATH NAMES…`.

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::shell;
use crate::ssh::ExecOutput;

/// How long a push or restore waits for another provisioner's lock on the same file.
pub const LOCK_TIMEOUT_SECS: u32 = 30;

/// Exit status: the script was invoked wrongly (a fleetauth bug, e.g. a bad variable name).
pub const EXIT_USAGE: u32 = 64;
/// Exit status: stdin did not carry exactly one assignment for each managed variable.
pub const EXIT_BAD_INPUT: u32 = 65;
/// Exit status: the target (or its backup) is a symbolic link.
pub const EXIT_SYMLINK: u32 = 66;
/// Exit status: the target is owned by another user.
pub const EXIT_FOREIGN_OWNER: u32 = 67;
/// Exit status: the target (or its backup) exists but is not a regular file.
pub const EXIT_NOT_REGULAR: u32 = 68;
/// Exit status: another provisioner held the lock for [`LOCK_TIMEOUT_SECS`].
pub const EXIT_LOCK_TIMEOUT: u32 = 69;
/// Exit status: creating the directory, writing, syncing or renaming failed.
pub const EXIT_IO: u32 = 70;

/// Suffixes of the files fleetauth keeps beside the env file.
pub const BACKUP_SUFFIX: &str = ".fleetauth-prev";
pub const LOCK_SUFFIX: &str = ".fleetauth-lock";

/// Why a value cannot be rendered as an env-file line. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    #[error(
        "`{0}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
    )]
    InvalidName(String),
    #[error("the value for {0} is empty; nothing to install")]
    EmptyValue(String),
    #[error(
        "the value for {0} contains a newline; a key is one line — paste it again without line breaks"
    )]
    Newline(String),
    #[error(
        "the value for {0} contains a carriage return (a Windows line end pasted with it?); remove it and try again"
    )]
    CarriageReturn(String),
    #[error("the value for {0} contains a NUL byte, which a shell variable cannot hold")]
    Nul(String),
}

/// `export VAR='value'\n`: one line that, sourced by any POSIX shell, sets `VAR` to exactly the
/// bytes of `value` (single quotes, each `'` written `'\''`).
///
/// Refused: a `var` that is not a shell identifier; an empty value; a value containing a
/// newline or NUL (a shell variable cannot hold NUL, and a newline would break the one-line-per
/// variable merge); and a value containing a carriage return — a key never legitimately
/// contains one, it is the trace of a CRLF paste, and installing it would produce a key that
/// fails at the vendor with no visible cause.
pub fn render_assignment(var: &str, value: &SecretString) -> Result<SecretString, EnvFileError> {
    if !is_identifier(var) {
        return Err(EnvFileError::InvalidName(var.to_string()));
    }
    let v = value.expose_secret();
    if v.is_empty() {
        return Err(EnvFileError::EmptyValue(var.to_string()));
    }
    if v.contains('\n') {
        return Err(EnvFileError::Newline(var.to_string()));
    }
    if v.contains('\r') {
        return Err(EnvFileError::CarriageReturn(var.to_string()));
    }
    if v.contains('\0') {
        return Err(EnvFileError::Nul(var.to_string()));
    }
    let mut line = String::with_capacity(var.len() + v.len() + 16);
    line.push_str("export ");
    line.push_str(var);
    line.push_str("='");
    for c in v.chars() {
        if c == '\'' {
            line.push_str("'\\''");
        } else {
            line.push(c);
        }
    }
    line.push_str("'\n");
    Ok(SecretString::from(line))
}

/// The stdin for [`push_command`]: one [`render_assignment`] line per `(var, value)`, in order.
pub fn push_input(assignments: &[(&str, &SecretString)]) -> Result<SecretSlice<u8>, EnvFileError> {
    let mut bytes = Vec::new();
    for (var, value) in assignments {
        let line = render_assignment(var, value)?;
        bytes.extend_from_slice(line.expose_secret().as_bytes());
    }
    Ok(SecretSlice::from(bytes))
}

/// The complete remote command line that merges the assignments read on stdin (see
/// [`push_input`]) into `env_file` and prints `pushed` or `unchanged`.
///
/// `env_file` may start with `~/` (the member's `$HOME`); a relative path is relative to the
/// login directory. `vars` are the names fleetauth manages in this push: stdin must carry
/// exactly one `export VAR='…'` line for each (else [`EXIT_BAD_INPUT`]). Every line of the file
/// that assigns one of them (`VAR=…` or `export VAR=…`) is replaced in place by the new line —
/// the first occurrence; later duplicates are dropped — missing ones are appended, and every
/// other line is kept byte for byte. An identical result writes nothing — not even a mode
/// change — and prints `unchanged`; a written file is always 0600. The backup
/// (`<file>.fleetauth-prev`, 0600) keeps the previous key on the member until the next push.
/// Refusals and failures exit with the `EXIT_*` statuses of this module.
///
/// Names that are not shell identifiers make the script exit [`EXIT_USAGE`]; they are quoted,
/// so they can never become shell syntax.
pub fn push_command(env_file: &str, vars: &[&str]) -> String {
    build_command("push", env_file, vars, LOCK_TIMEOUT_SECS)
}

/// The remote command line that puts `<env_file>.fleetauth-prev` back in place of `env_file`
/// (atomically, under the same lock as a push) and prints `restored`, or `nothing-to-restore`
/// when there is no backup.
///
/// Call it only after a push of the same run printed `pushed`: the backup of an older push
/// stays in place after a successful one, and restoring it then would undo that older push. A
/// push that created the file leaves an empty backup, so restoring it leaves an empty file
/// (which sources to nothing, where a missing file would make `. FILE` fail).
pub fn restore_command(env_file: &str) -> String {
    build_command("restore", env_file, &[], LOCK_TIMEOUT_SECS)
}

/// The remote command line that prints, for each variable `env_file` assigns, `NAME=` on its
/// own line — the names only, never a value. Prints nothing when the file does not exist.
/// Parse its output with [`names_in`].
pub fn names_command(env_file: &str) -> String {
    build_command("names", env_file, &[], LOCK_TIMEOUT_SECS)
}

/// Shell statements that export the env file's variables into the current shell (`set -a; .`),
/// as every probe, install and dispatched command does; a missing or unreadable file is skipped.
pub fn source_command(env_file: &str) -> String {
    format!(
        "f={}; if [ -f \"$f\" ] && [ -r \"$f\" ]; then set -a; . \"$f\"; set +a; fi",
        shell::quote_remote_path(env_file)
    )
}

/// The names assigned in `text` (an env file, or the output of [`names_command`]), each once,
/// in order of first appearance. A line assigns `NAME` when, after leading blanks and an
/// optional `export `, it starts with `NAME=`; comments and other lines assign nothing. This is
/// the same rule the remote merge uses to decide which lines to replace.
pub fn names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.split('\n') {
        if let Some(name) = assigned_name(line)
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }
    names
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The file was replaced; the previous one is the backup.
    Pushed,
    /// The file already had exactly these lines; nothing was written.
    Unchanged,
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOutcome {
    Restored,
    NothingToRestore,
}

/// Why a remote push, restore or listing failed, from the script's exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteFailure {
    #[error(
        "the env file is a symbolic link; fleetauth replaces files atomically and will not follow it — make it a regular file or point env_file at the link's target ({0})"
    )]
    Symlink(String),
    #[error(
        "the env file is owned by another user; fix its ownership or choose another env_file ({0})"
    )]
    ForeignOwner(String),
    #[error(
        "the env file (or its backup) is not a regular file; move it aside or choose another env_file ({0})"
    )]
    NotRegular(String),
    #[error(
        "another provisioner held the env file's lock for {LOCK_TIMEOUT_SECS}s; retry when it has finished ({0})"
    )]
    LockTimeout(String),
    #[error("writing the env file failed ({0})")]
    Io(String),
    #[error("the new assignments were malformed (a fleetauth bug): {0}")]
    BadInput(String),
    #[error("the env-file script failed unexpectedly (exit {exit:?}, signal {signal:?}): {stderr}")]
    Unexpected {
        exit: Option<u32>,
        signal: Option<String>,
        stderr: String,
    },
}

/// Interpret the result of running [`push_command`].
pub fn push_outcome(out: &ExecOutput) -> Result<PushOutcome, RemoteFailure> {
    match classify(out)? {
        "pushed" => Ok(PushOutcome::Pushed),
        "unchanged" => Ok(PushOutcome::Unchanged),
        _ => Err(unexpected(out)),
    }
}

/// Interpret the result of running [`restore_command`].
pub fn restore_outcome(out: &ExecOutput) -> Result<RestoreOutcome, RemoteFailure> {
    match classify(out)? {
        "restored" => Ok(RestoreOutcome::Restored),
        "nothing-to-restore" => Ok(RestoreOutcome::NothingToRestore),
        _ => Err(unexpected(out)),
    }
}

/// The stdout word of a successful run, or the failure its exit status names.
fn classify(out: &ExecOutput) -> Result<&str, RemoteFailure> {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.exit {
        Some(0) => Ok(std::str::from_utf8(&out.stdout).unwrap_or("").trim()),
        Some(EXIT_SYMLINK) => Err(RemoteFailure::Symlink(stderr)),
        Some(EXIT_FOREIGN_OWNER) => Err(RemoteFailure::ForeignOwner(stderr)),
        Some(EXIT_NOT_REGULAR) => Err(RemoteFailure::NotRegular(stderr)),
        Some(EXIT_LOCK_TIMEOUT) => Err(RemoteFailure::LockTimeout(stderr)),
        Some(EXIT_IO) => Err(RemoteFailure::Io(stderr)),
        Some(EXIT_BAD_INPUT) | Some(EXIT_USAGE) => Err(RemoteFailure::BadInput(stderr)),
        _ => Err(unexpected(out)),
    }
}

fn unexpected(out: &ExecOutput) -> RemoteFailure {
    RemoteFailure::Unexpected {
        exit: out.exit,
        signal: out.signal.clone(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The name `line` assigns, by the rule of [`names_in`] (and of the awk `assigned` below).
fn assigned_name(line: &str) -> Option<&str> {
    let s = line.trim_start_matches([' ', '\t']);
    let s = match s.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start_matches([' ', '\t']),
        _ => s,
    };
    let (name, _) = s.split_once('=')?;
    is_identifier(name).then_some(name)
}

fn build_command(mode: &str, env_file: &str, vars: &[&str], lock_timeout_secs: u32) -> String {
    let mut unique: Vec<&str> = Vec::with_capacity(vars.len());
    for v in vars {
        if !unique.contains(v) {
            unique.push(v);
        }
    }
    let script = format!(
        "timeout={lock_timeout_secs}\nmerge_awk={}\nnames_awk={}\n{SCRIPT}",
        shell::quote(&format!("{AWK_ASSIGNED}{AWK_MERGE}")),
        shell::quote(&format!("{AWK_ASSIGNED}{AWK_NAMES}")),
    );
    let mut cmd = format!(
        "sh -c {} fleetauth-envfile {} {}",
        shell::quote(&script),
        shell::quote(mode),
        shell::quote_remote_path(env_file)
    );
    for v in unique {
        cmd.push(' ');
        cmd.push_str(&shell::quote(v));
    }
    cmd
}

/// `assigned(line)`: the name a line assigns, or "". Must match [`assigned_name`].
const AWK_ASSIGNED: &str = r#"
function assigned(s) {
    sub(/^[ \t]+/, "", s)
    if (s ~ /^export[ \t]/) sub(/^export[ \t]+/, "", s)
    if (match(s, /^[A-Za-z_][A-Za-z0-9_]*=/)) return substr(s, 1, RLENGTH - 1)
    return ""
}
"#;

/// The merge. Input: `phase=new -` (the new lines on stdin), then `phase=old FILE`.
/// Variables: `names` (space-separated managed names), `nonl` (1 when FILE's last line has no
/// newline). Output: the merged file. Exit 65 when stdin is not one line per managed name.
/// Never prints a stdin line anywhere but the output.
const AWK_MERGE: &str = r#"
BEGIN {
    n = split(names, order, " ")
    for (i = 1; i <= n; i++) want[order[i]] = 1
    m = 0; bad = 0; last_kept = 0
}
phase == "new" {
    v = assigned($0)
    if (!(v in want) || (v in repl)) { bad = 1; exit }
    repl[v] = $0
    next
}
{
    v = assigned($0)
    if (v in want) {
        if (!(v in done)) { out[++m] = repl[v]; done[v] = 1 }
        last_kept = 0
        next
    }
    out[++m] = $0
    last_kept = 1
}
END {
    if (bad) exit 65
    appending = 0
    for (i = 1; i <= n; i++) {
        if (!(order[i] in repl)) exit 65
        if (!(order[i] in done)) appending = 1
    }
    for (i = 1; i <= m; i++) {
        if (i == m && last_kept && nonl == 1 && !appending) printf "%s", out[i]
        else printf "%s\n", out[i]
    }
    for (i = 1; i <= n; i++) if (!(order[i] in done)) printf "%s\n", repl[order[i]]
}
"#;

/// Prints `NAME=` for each name assigned, once, in order.
const AWK_NAMES: &str = r#"
{ v = assigned($0); if (v != "" && !(v in seen)) { seen[v] = 1; print v "=" } }
"#;

/// The remote script. Positional parameters: MODE FILE [NAMES…]. Prepended by Rust:
/// `timeout`, `merge_awk`, `names_awk`. Exit statuses: see the `EXIT_*` constants.
const SCRIPT: &str = r#"set -u
mode=$1 f=$2
shift 2
case $f in
    '') echo "fleetauth: empty env file path" >&2; exit 64 ;;
    /*) ;;
    *) f=./$f ;;
esac
for v in "$@"; do
    case $v in
        ''|[0-9]*|*[!A-Za-z0-9_]*) echo "fleetauth: not a variable name: $v" >&2; exit 64 ;;
    esac
done
d=${f%/*}
[ -n "$d" ] || d=/
lock=$f.fleetauth-lock
tmp=$f.fleetauth-tmp
prev=$f.fleetauth-prev
prevtmp=$f.fleetauth-prev-tmp
lockdir=
umask 077

fsync() { sync -- "$1" 2>/dev/null || sync; }

cleanup() {
    rm -f "$tmp" "$prevtmp"
    if [ -n "$lockdir" ]; then rmdir "$lockdir" 2>/dev/null; fi
}

take_lock() {
    if command -v flock >/dev/null 2>&1; then
        if ! (: >>"$lock") 2>/dev/null; then
            echo "fleetauth: cannot open the lock file $lock" >&2
            exit 70
        fi
        exec 9>>"$lock"
        flock -w "$timeout" 9 || {
            echo "fleetauth: timed out after ${timeout}s waiting for the lock on $f (another fleetauth is changing it)" >&2
            exit 69
        }
    else
        waited=0
        until mkdir "$f.fleetauth-lockdir" 2>/dev/null; do
            if [ "$waited" -ge "$timeout" ]; then
                echo "fleetauth: timed out after ${timeout}s waiting for the lock on $f; if no fleetauth is running on this member, remove $f.fleetauth-lockdir" >&2
                exit 69
            fi
            sleep 1
            waited=$((waited + 1))
        done
        lockdir=$f.fleetauth-lockdir
    fi
    trap cleanup EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

check_target() {
    for p in "$f" "$prev"; do
        if [ -L "$p" ]; then
            echo "fleetauth: refusing $p: it is a symbolic link" >&2
            exit 66
        fi
        if [ -e "$p" ] && [ ! -f "$p" ]; then
            echo "fleetauth: refusing $p: it is not a regular file" >&2
            exit 68
        fi
    done
    if [ -e "$f" ]; then
        owner=$(ls -ldn -- "$f" | awk '{ print $3 }')
        if [ "$owner" != "$(id -u)" ]; then
            echo "fleetauth: refusing $f: it is owned by uid $owner, not by $(id -un) (uid $(id -u))" >&2
            exit 67
        fi
    fi
}

do_push() {
    check_target
    rm -f "$tmp" "$prevtmp"
    if [ -f "$f" ]; then src=$f; else src=/dev/null; fi
    nonl=0
    if [ -s "$src" ] && [ -n "$(tail -c 1 "$src")" ]; then nonl=1; fi
    awk -v names="$*" -v nonl="$nonl" "$merge_awk" phase=new - phase=old "$src" >"$tmp"
    st=$?
    if [ "$st" -eq 65 ]; then
        echo "fleetauth: stdin must carry exactly one export NAME='...' line for each of: $*" >&2
        exit 65
    elif [ "$st" -ne 0 ]; then
        echo "fleetauth: could not write $tmp (awk exit $st)" >&2
        exit 70
    fi
    if [ "$src" = "$f" ] && cmp -s "$tmp" "$f"; then
        rm -f "$tmp"
        echo unchanged
        return 0
    fi
    if [ "$src" = "$f" ]; then
        cat -- "$f" >"$prevtmp" || { echo "fleetauth: could not back up $f" >&2; exit 70; }
    else
        : >"$prevtmp" || { echo "fleetauth: could not write $prevtmp" >&2; exit 70; }
    fi
    fsync "$prevtmp"
    mv -f -- "$prevtmp" "$prev" || { echo "fleetauth: could not keep the backup $prev" >&2; exit 70; }
    fsync "$tmp"
    mv -f -- "$tmp" "$f" || { echo "fleetauth: could not rename $tmp over $f" >&2; exit 70; }
    fsync "$d"
    echo pushed
}

do_restore() {
    check_target
    if [ ! -f "$prev" ]; then
        echo nothing-to-restore
        return 0
    fi
    mv -f -- "$prev" "$f" || { echo "fleetauth: could not rename $prev over $f" >&2; exit 70; }
    fsync "$d"
    echo restored
}

case $mode in
    push)
        if [ ! -d "$d" ]; then
            mkdir -p -- "$d" || { echo "fleetauth: cannot create directory $d" >&2; exit 70; }
        fi
        take_lock
        do_push "$@"
        ;;
    restore)
        if [ ! -d "$d" ]; then echo nothing-to-restore; exit 0; fi
        take_lock
        do_restore
        ;;
    names)
        if [ -f "$f" ]; then awk "$names_awk" "$f" || exit 70; fi
        ;;
    *)
        echo "fleetauth: unknown mode $mode" >&2
        exit 64
        ;;
esac
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    const VAR: &str = "GEMINI_API_KEY";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    /// A throwaway `$HOME` for the commands, and helpers to run them with `sh -c`.
    struct Member {
        home: tempfile::TempDir,
        /// Replaces PATH when set (to hide `flock`).
        path: Option<PathBuf>,
    }

    impl Member {
        fn new() -> Member {
            Member {
                home: tempfile::tempdir().unwrap(),
                path: None,
            }
        }

        fn file(&self) -> PathBuf {
            self.home.path().join(".config/fleetauth/env")
        }

        fn spawn(&self, command: &str, stdin: &[u8]) -> std::process::Child {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(command)
                .current_dir(self.home.path())
                .env("HOME", self.home.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(p) = &self.path {
                cmd.env("PATH", p);
            }
            let mut child = cmd.spawn().unwrap();
            child.stdin.take().unwrap().write_all(stdin).unwrap();
            child
        }

        fn run(&self, command: &str, stdin: &[u8]) -> Output {
            self.spawn(command, stdin).wait_with_output().unwrap()
        }

        fn push(&self, pairs: &[(&str, &str)]) -> Output {
            let vars: Vec<&str> = pairs.iter().map(|(v, _)| *v).collect();
            let secrets: Vec<SecretString> = pairs.iter().map(|(_, s)| secret(s)).collect();
            let input: Vec<(&str, &SecretString)> =
                vars.iter().copied().zip(secrets.iter()).collect();
            let stdin = push_input(&input).unwrap();
            self.run(
                &push_command("~/.config/fleetauth/env", &vars),
                stdin.expose_secret(),
            )
        }

        fn restore(&self) -> Output {
            self.run(&restore_command("~/.config/fleetauth/env"), b"")
        }

        /// The value `var` has after sourcing the env file, as a dispatched command sees it.
        fn sourced(&self, var: &str) -> Vec<u8> {
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("set -a; . \"$1\"; set +a; printf %s \"${var}\""))
                .arg("sh")
                .arg(self.file())
                .output()
                .unwrap();
            assert!(out.status.success(), "sourcing failed: {}", stderr(&out));
            out.stdout
        }
    }

    fn stdout(out: &Output) -> String {
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn stderr(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    fn exec_output(out: &Output) -> ExecOutput {
        ExecOutput {
            stdout: out.stdout.clone(),
            stderr: out.stderr.clone(),
            exit: out.status.code().map(|c| c as u32),
            signal: None,
        }
    }

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn assignment_is_single_quoted_with_escaped_quotes() {
        let line = render_assignment("K", &secret("it's")).unwrap();
        assert_eq!(line.expose_secret(), "export K='it'\\''s'\n");
    }

    #[test]
    fn assignment_refuses_bad_names_and_values() {
        let ok = secret("AIzaSyD-abcdefghijkl");
        for bad in ["", "1ABC", "A-B", "A B", "A=B", "Ä"] {
            assert_eq!(
                render_assignment(bad, &ok).unwrap_err(),
                EnvFileError::InvalidName(bad.to_string())
            );
        }
        let v = |s: &str| render_assignment("K", &secret(s)).unwrap_err();
        assert_eq!(v(""), EnvFileError::EmptyValue("K".into()));
        assert_eq!(v("abc\ndef"), EnvFileError::Newline("K".into()));
        assert_eq!(v("abcdef\r"), EnvFileError::CarriageReturn("K".into()));
        assert_eq!(v("abc\0def"), EnvFileError::Nul("K".into()));
        // The error text names the variable, never the value.
        let msg = render_assignment("K", &secret("sekrit\nvalue"))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("sekrit"), "{msg}");
    }

    #[test]
    fn names_in_follows_the_assignment_rule() {
        let text = "# GEMINI_API_KEY=commented\nexport A=1\n  B=2\r\n\texport\tC='x'\nD\nexport E\nA=again\nexport=x\n1X=y\nF=\nX-Y=1\n";
        // `export=x` assigns a variable named `export`, as it does in sh.
        assert_eq!(names_in(text), ["A", "B", "C", "export", "F"]);
        assert_eq!(names_in(""), Vec::<String>::new());
        // The member-side awk applies the same rule.
        let m = Member::new();
        write_mode(&m.file(), text.as_bytes(), 0o600);
        let out = m.run(&names_command("~/.config/fleetauth/env"), b"");
        assert_eq!(
            names_in(&String::from_utf8(out.stdout).unwrap()),
            names_in(text)
        );
    }

    #[test]
    fn awkward_values_source_back_exactly() {
        let m = Member::new();
        for value in [
            "it's a 'key'",
            "double \"quotes\"",
            "$(touch pwned) and `touch pwned2` and $HOME",
            "back\\slash\\\\ and \\n and \\'",
            "  leading and trailing spaces  ",
            "ключ-🔑-ünïcödé",
            "tab\there;semi|pipe&amp*glob?[x]~",
            "%s%n%d printf",
            "'",
        ] {
            let out = m.push(&[(VAR, value)]);
            assert_eq!(stdout(&out), "pushed", "{}", stderr(&out));
            assert_eq!(m.sourced(VAR), value.as_bytes());
        }
        assert!(!m.home.path().join("pwned").exists());
        assert!(!m.home.path().join("pwned2").exists());
    }

    #[test]
    fn other_lines_are_kept_byte_for_byte() {
        let m = Member::new();
        let before = "# my env\n\nFOO=bar\r\nexport GEMINI_API_KEY='old'\n  # GEMINI_API_KEY=in a comment\nBAR='x y'\nGEMINI_API_KEY=duplicate\nexport OTHER=1\r\nlast line without newline";
        write_mode(&m.file(), before.as_bytes(), 0o600);
        let out = m.push(&[
            (VAR, "AIzaNEW"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-x"),
        ]);
        assert_eq!(stdout(&out), "pushed", "{}", stderr(&out));
        let expected = "# my env\n\nFOO=bar\r\nexport GEMINI_API_KEY='AIzaNEW'\n  # GEMINI_API_KEY=in a comment\nBAR='x y'\nexport OTHER=1\r\nlast line without newline\nexport CLAUDE_CODE_OAUTH_TOKEN='sk-ant-oat01-x'\n";
        assert_eq!(fs::read_to_string(m.file()).unwrap(), expected);
        // The backup is the file as it was.
        let prev = m.file().with_file_name("env.fleetauth-prev");
        assert_eq!(fs::read_to_string(&prev).unwrap(), before);
        assert_eq!(mode(&prev), 0o600);
    }

    #[test]
    fn a_last_line_without_newline_stays_so_when_nothing_is_appended() {
        let m = Member::new();
        write_mode(&m.file(), b"export GEMINI_API_KEY=old\nTAIL=1", 0o600);
        assert_eq!(stdout(&m.push(&[(VAR, "new-key")])), "pushed");
        assert_eq!(
            fs::read(m.file()).unwrap(),
            b"export GEMINI_API_KEY='new-key'\nTAIL=1"
        );
        // A replaced last line gets our newline.
        write_mode(&m.file(), b"A=1\nGEMINI_API_KEY=old", 0o600);
        assert_eq!(stdout(&m.push(&[(VAR, "new-key")])), "pushed");
        assert_eq!(
            fs::read(m.file()).unwrap(),
            b"A=1\nexport GEMINI_API_KEY='new-key'\n"
        );
    }

    #[test]
    fn a_new_file_is_0600_in_new_0700_directories() {
        let m = Member::new();
        let out = m.push(&[(VAR, "AIza-first")]);
        assert_eq!(stdout(&out), "pushed", "{}", stderr(&out));
        assert_eq!(
            fs::read_to_string(m.file()).unwrap(),
            "export GEMINI_API_KEY='AIza-first'\n"
        );
        assert_eq!(mode(&m.file()), 0o600);
        assert_eq!(mode(&m.home.path().join(".config/fleetauth")), 0o700);
        assert_eq!(mode(&m.home.path().join(".config")), 0o700);
        // Nothing left behind but the file, its (empty) backup and the lock.
        let mut names: Vec<String> = fs::read_dir(m.file().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["env", "env.fleetauth-lock", "env.fleetauth-prev"]);
    }

    #[test]
    fn a_loose_existing_file_becomes_0600() {
        let m = Member::new();
        write_mode(&m.file(), b"FOO=1\n", 0o644);
        assert_eq!(stdout(&m.push(&[(VAR, "k")])), "pushed");
        assert_eq!(mode(&m.file()), 0o600);
    }

    #[test]
    fn a_second_identical_push_writes_nothing() {
        let m = Member::new();
        write_mode(&m.file(), b"# keep\nFOO=bar", 0o600);
        assert_eq!(stdout(&m.push(&[(VAR, "AIza-same")])), "pushed");
        let before = fs::metadata(m.file()).unwrap();
        let prev_before = fs::read(m.file().with_file_name("env.fleetauth-prev")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let out = m.push(&[(VAR, "AIza-same")]);
        assert_eq!(stdout(&out), "unchanged", "{}", stderr(&out));
        assert_eq!(push_outcome(&exec_output(&out)), Ok(PushOutcome::Unchanged));
        let after = fs::metadata(m.file()).unwrap();
        assert_eq!(before.ino(), after.ino());
        assert_eq!(before.mtime_nsec(), after.mtime_nsec());
        assert_eq!(before.mtime(), after.mtime());
        // The backup still holds the state before the real push.
        assert_eq!(
            fs::read(m.file().with_file_name("env.fleetauth-prev")).unwrap(),
            prev_before
        );
        assert!(!m.file().with_file_name("env.fleetauth-tmp").exists());
    }

    #[test]
    fn a_symlinked_target_is_refused() {
        let m = Member::new();
        let real = m.home.path().join("real-env");
        fs::write(&real, "FOO=1\n").unwrap();
        fs::create_dir_all(m.file().parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&real, m.file()).unwrap();
        let out = m.push(&[(VAR, "AIza-x")]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_SYMLINK as i32),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("symbolic link"));
        assert!(matches!(
            push_outcome(&exec_output(&out)),
            Err(RemoteFailure::Symlink(_))
        ));
        assert_eq!(fs::read_to_string(&real).unwrap(), "FOO=1\n");
        assert!(
            fs::symlink_metadata(m.file())
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_directory_at_the_target_is_refused() {
        let m = Member::new();
        fs::create_dir_all(m.file()).unwrap();
        let out = m.push(&[(VAR, "AIza-x")]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_NOT_REGULAR as i32),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_foreign_owned_target_is_refused() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to give a file to another user");
            return;
        }
        let m = Member::new();
        write_mode(&m.file(), b"FOO=1\n", 0o600);
        std::os::unix::fs::chown(m.file(), Some(54321), Some(54321)).unwrap();
        let out = m.push(&[(VAR, "AIza-x")]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_FOREIGN_OWNER as i32),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("owned by uid 54321"),
            "{}",
            stderr(&out)
        );
        assert_eq!(fs::read_to_string(m.file()).unwrap(), "FOO=1\n");
    }

    #[test]
    fn restore_puts_the_previous_file_back_once() {
        let m = Member::new();
        write_mode(&m.file(), b"FOO=1\n", 0o600);
        assert_eq!(stdout(&m.push(&[(VAR, "AIza-good")])), "pushed");
        let good = fs::read(m.file()).unwrap();
        assert_eq!(stdout(&m.push(&[(VAR, "AIza-rejected")])), "pushed");
        let out = m.restore();
        assert_eq!(
            restore_outcome(&exec_output(&out)),
            Ok(RestoreOutcome::Restored)
        );
        assert_eq!(fs::read(m.file()).unwrap(), good);
        assert_eq!(mode(&m.file()), 0o600);
        let out = m.restore();
        assert_eq!(
            restore_outcome(&exec_output(&out)),
            Ok(RestoreOutcome::NothingToRestore)
        );
        assert_eq!(fs::read(m.file()).unwrap(), good);
    }

    #[test]
    fn restoring_a_first_push_leaves_an_empty_file() {
        let m = Member::new();
        assert_eq!(stdout(&m.restore()), "nothing-to-restore");
        assert_eq!(stdout(&m.push(&[(VAR, "AIza-first")])), "pushed");
        assert_eq!(stdout(&m.restore()), "restored");
        assert_eq!(fs::read(m.file()).unwrap(), b"");
        assert_eq!(m.sourced(VAR), b"");
    }

    #[test]
    fn stdin_must_match_the_managed_names() {
        let m = Member::new();
        write_mode(&m.file(), b"FOO=1\n", 0o600);
        let cmd = push_command("~/.config/fleetauth/env", &[VAR]);
        for stdin in [
            &b""[..],
            b"export OTHER='x'\n",
            b"export GEMINI_API_KEY='a'\nexport GEMINI_API_KEY='b'\n",
            b"garbage\n",
        ] {
            let out = m.run(&cmd, stdin);
            assert_eq!(
                out.status.code(),
                Some(EXIT_BAD_INPUT as i32),
                "{}",
                stderr(&out)
            );
            assert!(!stderr(&out).contains("'a'"));
        }
        assert_eq!(fs::read_to_string(m.file()).unwrap(), "FOO=1\n");
        assert!(!m.file().with_file_name("env.fleetauth-tmp").exists());
    }

    #[test]
    fn bad_names_on_the_command_line_are_refused() {
        let m = Member::new();
        let out = m.run(
            &push_command("~/.config/fleetauth/env", &["A;rm -rf /"]),
            b"",
        );
        assert_eq!(
            out.status.code(),
            Some(EXIT_USAGE as i32),
            "{}",
            stderr(&out)
        );
        assert!(!m.file().exists());
    }

    #[test]
    fn the_key_is_never_on_the_command_line() {
        let key = "AIzaSyD-the-key-itself-0123456789";
        let cmd = push_command("~/.config/fleetauth/env", &[VAR]);
        assert!(!cmd.contains(key));
        // The command is exactly a function of path and names.
        assert_eq!(cmd, push_command("~/.config/fleetauth/env", &[VAR, VAR]));
        let m = Member::new();
        // Record the argv of every process the push starts: shadow the tools it runs.
        let bin = m.home.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let log = m.home.path().join("argv.log");
        for tool in [
            "awk", "cat", "cmp", "mv", "rm", "mkdir", "tail", "sync", "ls", "id", "flock",
        ] {
            let real = which(tool);
            let wrapper = format!(
                "#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >> {}\nexec {} \"$@\"\n",
                shell::quote(log.to_str().unwrap()),
                shell::quote(real.to_str().unwrap())
            );
            write_mode(&bin.join(tool), wrapper.as_bytes(), 0o755);
        }
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let stdin = push_input(&[(VAR, &secret(key))]).unwrap();
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .env("HOME", m.home.path())
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.expose_secret())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pushed");
        let argv = fs::read_to_string(&log).unwrap();
        assert!(argv.contains("awk"), "the wrappers ran: {argv}");
        assert!(!argv.contains(key));
        assert!(!argv.contains("the-key"));
        assert_eq!(m.sourced(VAR), key.as_bytes());
    }

    #[test]
    fn names_command_lists_names_not_values() {
        let m = Member::new();
        let out = m.run(&names_command("~/.config/fleetauth/env"), b"");
        assert!(out.status.success());
        assert_eq!(stdout(&out), "");
        write_mode(
            &m.file(),
            b"# c\nexport GEMINI_API_KEY='AIza-secret'\nFOO=bar\r\nFOO=again\n",
            0o600,
        );
        let out = m.run(&names_command("~/.config/fleetauth/env"), b"");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, "GEMINI_API_KEY=\nFOO=\n");
        assert_eq!(names_in(&text), ["GEMINI_API_KEY", "FOO"]);
    }

    #[test]
    fn concurrent_pushes_of_different_vars_both_land() {
        race(&Member::new());
    }

    #[test]
    fn concurrent_pushes_serialise_without_flock_too() {
        let mut m = Member::new();
        // A PATH with every tool the script uses except flock: the mkdir lock takes over.
        let bin = m.home.path().join("bin-no-flock");
        fs::create_dir(&bin).unwrap();
        for tool in [
            "sh", "awk", "cat", "cmp", "mv", "rm", "mkdir", "rmdir", "tail", "sync", "ls", "id",
            "sleep",
        ] {
            std::os::unix::fs::symlink(which(tool), bin.join(tool)).unwrap();
        }
        m.path = Some(bin);
        race(&m);
        assert!(!m.file().with_file_name("env.fleetauth-lockdir").exists());
    }

    fn race(m: &Member) {
        write_mode(&m.file(), b"# operator's line\n", 0o600);
        for round in 0..5 {
            let names = [format!("RACE_A_{round}"), format!("RACE_B_{round}")];
            let children: Vec<_> = names
                .iter()
                .map(|name| {
                    let stdin = push_input(&[(name, &secret("value-of-race"))]).unwrap();
                    m.spawn(
                        &push_command("~/.config/fleetauth/env", &[name]),
                        stdin.expose_secret(),
                    )
                })
                .collect();
            for child in children {
                let out = child.wait_with_output().unwrap();
                assert_eq!(stdout(&out), "pushed", "{}", stderr(&out));
            }
        }
        let text = fs::read_to_string(m.file()).unwrap();
        assert!(text.starts_with("# operator's line\n"));
        for round in 0..5 {
            for name in [format!("RACE_A_{round}"), format!("RACE_B_{round}")] {
                assert!(
                    text.contains(&format!("export {name}='value-of-race'\n")),
                    "{name} lost:\n{text}"
                );
            }
        }
    }

    #[test]
    fn a_held_lock_times_out_with_its_own_status() {
        let m = Member::new();
        write_mode(&m.file(), b"FOO=1\n", 0o600);
        let lock = m.file().with_file_name("env.fleetauth-lock");
        let mut holder = Command::new("flock")
            .arg(&lock)
            .args(["sleep", "3"])
            .spawn()
            .unwrap();
        // Wait until the holder has the lock.
        while !lock.exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let stdin = push_input(&[(VAR, &secret("AIza-x"))]).unwrap();
        let cmd = build_command("push", "~/.config/fleetauth/env", &[VAR], 1);
        let out = m.run(&cmd, stdin.expose_secret());
        holder.kill().unwrap();
        holder.wait().unwrap();
        assert_eq!(
            out.status.code(),
            Some(EXIT_LOCK_TIMEOUT as i32),
            "{}",
            stderr(&out)
        );
        assert!(matches!(
            push_outcome(&exec_output(&out)),
            Err(RemoteFailure::LockTimeout(_))
        ));
        assert_eq!(fs::read_to_string(m.file()).unwrap(), "FOO=1\n");
    }

    #[test]
    fn absolute_and_relative_paths_work() {
        let m = Member::new();
        let abs = m.home.path().join("abs dir/env file");
        let stdin = push_input(&[(VAR, &secret("AIza-abs"))]).unwrap();
        let out = m.run(
            &push_command(abs.to_str().unwrap(), &[VAR]),
            stdin.expose_secret(),
        );
        assert_eq!(stdout(&out), "pushed", "{}", stderr(&out));
        assert_eq!(
            fs::read_to_string(&abs).unwrap(),
            "export GEMINI_API_KEY='AIza-abs'\n"
        );
        // Relative to the login directory (the test runs it from HOME), even with `=` in it.
        let out = m.run(&push_command("a=b", &[VAR]), stdin.expose_secret());
        assert_eq!(stdout(&out), "pushed", "{}", stderr(&out));
        assert!(m.home.path().join("a=b").is_file());
    }

    #[test]
    fn unknown_output_is_not_mistaken_for_success() {
        let out = ExecOutput {
            stdout: b"huh\n".to_vec(),
            exit: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            push_outcome(&out),
            Err(RemoteFailure::Unexpected { .. })
        ));
        let out = ExecOutput {
            exit: Some(127),
            ..Default::default()
        };
        assert!(matches!(
            restore_outcome(&out),
            Err(RemoteFailure::Unexpected { .. })
        ));
        let out = ExecOutput {
            stdout: b"pushed\n".to_vec(),
            exit: Some(0),
            ..Default::default()
        };
        assert_eq!(push_outcome(&out), Ok(PushOutcome::Pushed));
    }

    fn which(tool: &str) -> PathBuf {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .unwrap();
        let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(path.starts_with('/'), "{tool} not found");
        PathBuf::from(path)
    }
}
