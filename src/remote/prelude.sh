# fleetauth member-side prelude: shared by every script fleetauth runs on a member.
#
# Runs under /bin/sh (dash, bash, busybox ash, BSD sh): POSIX only. Rust prepends a header that
# sets, from data: FA_NONCE (this run's frame marker), the FA_ST_* exit statuses and the script's
# own parameters. Nothing here prints anything but framed records on stdout: a login shell's
# start-up files may print around us, and the client reads only lines that carry the nonce.
# shellcheck shell=sh
# shellcheck disable=SC2034 # variables here are used by the scripts that include the prelude

umask 077

# fa_rec PROVIDER FIELD VALUE: one framed record (VALUE must be one line without tabs).
fa_rec() { printf '@@FA%s\t%s\t%s\t%s\n' "$FA_NONCE" "$1" "$2" "$3"; }

# fa_b64: stdin as base64 on one line. Whether `base64 -w 0` works (GNU, busybox) or the lines
# must be joined (BSD, macOS) is asked once, by fa_recb in this shell (a probe with nothing to
# encode starts no process for it); fa_b64 runs inside fa_recb's pipeline.
fa_b64w=
fa_b64() {
  if [ "$fa_b64w" = 1 ]; then base64 -w 0; else base64 | tr -d '\n'; fi
}

# fa_recb PROVIDER FIELD < DATA: a record whose value is stdin, base64, capped at 64 KiB (a runaway
# output must not cost the client memory).
fa_recb() {
  if [ -z "$fa_b64w" ]; then
    if [ "$(printf x | base64 -w 0 2>/dev/null)" = eA== ]; then fa_b64w=1; else fa_b64w=0; fi
  fi
  printf '@@FA%s\t%s\t%s\t' "$FA_NONCE" "$1" "$2"
  head -c 65536 | fa_b64
  printf '\n'
}

# fa_recs PROVIDER FIELD STRING: a record whose value is STRING: as it is after a `=` when it is
# one line of printable characters (no process started), else base64 like fa_recb.
fa_recs() {
  case $3 in
    *[![:print:]]*) printf %s "$3" | fa_recb "$1" "$2" ;;
    *) printf '@@FA%s\t%s\t%s\t=%s\n' "$FA_NONCE" "$1" "$2" "$3" ;;
  esac
}

# fa_fail STATUS MESSAGE: a framed `fatal` record (the client shows MESSAGE), then exit STATUS.
fa_fail() {
  fa_recs - fatal "$2"
  exit "$1"
}

# fa_to SECS CMD...: CMD with a deadline (coreutils/busybox timeout; without one, no deadline).
if command -v timeout >/dev/null 2>&1; then
  fa_to() { timeout -k 2 "$@"; }
else
  fa_to() { shift; "$@"; }
fi

# fa_resolve PATH: sets fa_rp to a remote path as fleetauth's data gives it: `~` and `~/...` are the
# member's $HOME, anything else is taken as is (relative paths are relative to the login
# directory). fa_path PATH prints it. (Helpers that set a variable spare the member the fork of
# a command substitution: a probe calls them dozens of times.)
# shellcheck disable=SC2088 # the patterns match a literal ~ from data
fa_resolve() {
  case $1 in
    '~') fa_rp=$HOME ;;
    '~/'*) fa_rp=$HOME/${1#??} ;;
    *) fa_rp=$1 ;;
  esac
}
fa_path() {
  fa_resolve "$1"
  printf '%s' "$fa_rp"
}

# fa_getenv NAME: sets fa_ge to the value of environment variable NAME (empty when unset or when
# NAME is not a variable name). Names come from provider data, which the loader checks are
# identifiers; the member scripts' own variables are all fa_*/FA_* or set by a provider's
# definition (remote::DEFINITION_VARS), names a provider may not use (remote::is_reserved_name).
fa_getenv() {
  fa_ge=
  case $1 in '' | [0-9]* | *[!A-Za-z0-9_]*) return 1 ;; esac
  eval "fa_ge=\${$1-}"
}

# fa_set_home VAR DEFAULT: sets fa_h to a CLI's config home: $VAR when set and non-empty on the
# member, else DEFAULT (through fa_resolve). VAR may be empty (no variable). fa_config_home VAR
# DEFAULT prints it.
fa_set_home() {
  fa_ge=
  [ -n "$1" ] && fa_getenv "$1"
  if [ -n "$fa_ge" ]; then fa_h=$fa_ge; else fa_resolve "$2"; fa_h=$fa_rp; fi
}
fa_config_home() {
  fa_set_home "$1" "$2"
  printf '%s' "$fa_h"
}

# fa_stat PATH: sets fa_mode (e.g. -rw-------) and fa_uid of PATH itself (symlinks not followed).
fa_stat() {
  # shellcheck disable=SC2046 # word splitting of ls's fields is the point
  set -- $(LC_ALL=C ls -ldn -- "$1" 2>/dev/null)
  fa_mode=${1:-} fa_uid=${3:-}
}

# fa_whoami: sets fa_me to the effective uid (asked once, only when needed).
fa_me=
fa_whoami() {
  [ -n "$fa_me" ] || fa_me=$(id -u)
}

# fa_loose MODE: true when MODE (ls form) lets group or others write.
fa_loose() {
  case $1 in
    ?????w*|????????w*) return 0 ;;
  esac
  return 1
}

# fa_source_ok FILE: true when FILE may be sourced: absent (nothing to source), or a regular file
# (a symlink is judged by its target) owned by us and not writable by group or others. Otherwise
# sets fa_why to the reason and returns false. A file another user can write is code that user
# would run as us.
fa_source_ok() {
  fa_why=
  [ -e "$1" ] || return 0
  # shellcheck disable=SC2046
  set -- "$1" $(LC_ALL=C ls -ldnL -- "$1" 2>/dev/null)
  if [ ! -f "$1" ]; then
    fa_why="$1 is not a regular file"
  elif [ ! -O "$1" ]; then
    fa_whoami
    fa_why="$1 is owned by uid ${4:-?}, not by uid $fa_me"
  elif fa_loose "${2:-}"; then
    fa_why="$1 is writable by group or others (${2:-?})"
  elif [ ! -r "$1" ]; then
    fa_why="$1 is not readable"
  fi
  [ -z "$fa_why" ]
}

# fa_load FILE: export FILE's variables into this shell, unchecked (the caller judged it with
# fa_source_ok).
fa_load() {
  set -a
  # shellcheck disable=SC1090 # the env file is the operator's, known only at run time
  . "$1"
  set +a
}

# fa_source FILE: export FILE's variables into this shell when fa_source_ok; true when sourced or
# absent, false (fa_why says why) when refused.
fa_source() {
  fa_source_ok "$1" || return 1
  if [ -f "$1" ]; then fa_load "$1"; fi
  return 0
}

# Private temporary directory, removed on every way out: normal exit, HUP (connection dropped
# with a pty), INT, TERM and PIPE (the client went away while we were writing). Never holds a
# credential's contents: only CLI outputs.
fa_tmp=
fa_cleanups=
fa_cleanup() {
  for fa_c in $fa_cleanups; do "$fa_c"; done
  fa_cleanups=
  if [ -n "$fa_tmp" ]; then rm -rf -- "$fa_tmp"; fa_tmp=; fi
  # A signal can land between mktemp creating the directory and `fa_tmp` being assigned: its
  # name carries this shell's pid, so it is found by that.
  for fa_d in "${TMPDIR:-/tmp}/fleetauth.$$."*; do
    if [ -d "$fa_d" ]; then rm -rf -- "$fa_d"; fi
  done
}
fa_on_signal() {
  trap '' HUP INT TERM PIPE
  fa_cleanup
  exit "$1"
}
trap 'fa_cleanup' EXIT
trap 'fa_on_signal 129' HUP
trap 'fa_on_signal 130' INT
trap 'fa_on_signal 143' TERM
trap 'fa_on_signal 141' PIPE

fa_mktemp_dir() {
  fa_tmp=$(mktemp -d "${TMPDIR:-/tmp}/fleetauth.$$.XXXXXX" 2>/dev/null) ||
    fa_fail "$FA_ST_IO" "cannot create a private temporary directory in ${TMPDIR:-/tmp}"
}
