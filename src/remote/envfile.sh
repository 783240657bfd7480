# fleetauth member-side file transactions: the env file merge, a login command's credential files
# and a copied login file, each replaced atomically and undone exactly unless the client commits.
#
# Needs the prelude. Rules, whatever the target:
# - the directory written in must be owned by the SSH user and not writable by group or others,
#   else nothing is written (another local user could otherwise redirect our temp files or swap the
#   target); the target must be a regular file we own, not a symlink, not writable by others;
# - new contents go to a temp file created exclusively (noclobber) beside the target, synced, and
#   renamed over it: nobody ever sees a partial file;
# - the file replaced is kept, as the same inode (a hard link, so content and mode come back exactly)
#   under `<target>.fleetauth-txn` until the client's verdict: `commit` removes it (or keeps it as
#   `<target>.fleetauth-prev` when asked), anything else -- `restore`, end of input, a signal, an
#   error -- puts it back. A transaction found unfinished by the next run (the member's shell was
#   killed) is rolled back first.
# - one lock per directory serialises provisioners end to end: push, verification, restore.
# shellcheck shell=sh
# shellcheck disable=SC2034,SC2154 # variables come from the header and the prelude

fa_locked=
fa_lockdir=
fa_lockdir2=

# fa_check_dir DIR: DIR exists (created 0700 when missing), is ours and not writable by others.
fa_check_dir() {
  if [ ! -d "$1" ]; then
    mkdir -p -- "$1" 2>/dev/null || fa_fail "$FA_ST_IO" "cannot create the directory $1"
  fi
  fa_whoami
  # shellcheck disable=SC2046
  set -- "$1" $(LC_ALL=C ls -ldnL -- "$1" 2>/dev/null)
  if [ "${4:-}" != "$fa_me" ]; then
    fa_fail "$FA_ST_UNSAFE_DIR" "refusing to write in $1: it is owned by uid ${4:-?}, not by uid $fa_me"
  fi
  if fa_loose "${2:-}"; then
    fa_fail "$FA_ST_UNSAFE_DIR" "refusing to write in $1: it is writable by group or others (${2:-?}); another local user could redirect or replace files there -- chmod go-w it, or choose a private directory"
  fi
}

# fa_check_target FILE: FILE is absent, or a regular file we own that others cannot write.
fa_check_target() {
  if [ -L "$1" ]; then
    fa_fail "$FA_ST_SYMLINK" "refusing $1: it is a symbolic link; fleetauth replaces files atomically and will not follow it"
  fi
  [ -e "$1" ] || return 0
  [ -f "$1" ] || fa_fail "$FA_ST_NOT_REGULAR" "refusing $1: it is not a regular file"
  fa_stat "$1"
  fa_whoami
  if [ "$fa_uid" != "$fa_me" ]; then
    fa_fail "$FA_ST_FOREIGN_OWNER" "refusing $1: it is owned by uid $fa_uid, not by uid $fa_me"
  fi
  if fa_loose "$fa_mode"; then
    fa_fail "$FA_ST_UNSAFE_FILE" "refusing $1: it is writable by group or others ($fa_mode); chmod go-w it first"
  fi
}

# fa_lock FILE: the provisioning lock FILE, held until this script ends. flock(1) where it exists
# (released by the kernel whatever kills us); else a lock directory naming its holder's pid, taken
# over when that process is gone. The first lock is on fd 9; a second one (`--fix-shadowing`
# changing the env file before a login command's push) on fd 8. Always taken in that order --
# the env file's, then a config home's -- so two provisioners cannot deadlock.
fa_lock() {
  fa_lockfile=$1
  fa_fd=9
  [ -n "$fa_locked" ] && fa_fd=8
  if command -v flock >/dev/null 2>&1; then
    { : >>"$fa_lockfile"; } 2>/dev/null || fa_fail "$FA_ST_IO" "cannot open the lock file $fa_lockfile"
    if [ "$fa_fd" = 9 ]; then exec 9>>"$fa_lockfile"; else exec 8>>"$fa_lockfile"; fi
    flock -w "$FA_LOCK_TIMEOUT" "$fa_fd" ||
      fa_fail "$FA_ST_LOCK_TIMEOUT" "another fleetauth held the lock $1 for ${FA_LOCK_TIMEOUT}s; retry when it has finished"
  else
    fa_waited=0
    until mkdir -- "$fa_lockfile.d" 2>/dev/null; do
      fa_holder=$(cat -- "$fa_lockfile.d/pid" 2>/dev/null) || fa_holder=
      if [ -n "$fa_holder" ] && ! kill -0 "$fa_holder" 2>/dev/null; then
        rm -rf -- "$fa_lockfile.d"
        continue
      fi
      if [ "$fa_waited" -ge "$FA_LOCK_TIMEOUT" ]; then
        fa_fail "$FA_ST_LOCK_TIMEOUT" "another fleetauth held the lock $1 for ${FA_LOCK_TIMEOUT}s (pid ${fa_holder:-?}; remove $fa_lockfile.d if no fleetauth runs there)"
      fi
      sleep 1
      fa_waited=$((fa_waited + 1))
    done
    echo $$ >"$fa_lockfile.d/pid"
    if [ "$fa_fd" = 9 ]; then fa_lockdir=$fa_lockfile.d; else fa_lockdir2=$fa_lockfile.d; fi
    case " $fa_cleanups " in *" fa_unlock "*) ;; *) fa_cleanups="$fa_cleanups fa_unlock" ;; esac
  fi
  fa_locked=1
}
fa_unlock() {
  [ -n "$fa_lockdir2" ] && rm -rf -- "$fa_lockdir2"
  [ -n "$fa_lockdir" ] && rm -rf -- "$fa_lockdir"
  fa_lockdir=
  fa_lockdir2=
}

fa_fsync() { sync -- "$1" 2>/dev/null || sync; }

# fa_newtemp FILE: an exclusively created, empty temp file beside FILE; sets fa_t.
fa_newtemp() {
  fa_t=$1.fleetauth-tmp.$$
  rm -f -- "$fa_t"
  (set -C; : >"$fa_t") 2>/dev/null || fa_fail "$FA_ST_IO" "cannot create $fa_t"
  fa_temps="$fa_temps $fa_t"
}
fa_temps=
fa_rm_temps() {
  # shellcheck disable=SC2086 # names we made: no blanks in them but the directory's
  for fa_x in $fa_temps; do rm -f -- "$fa_x"; done
  fa_temps=
}

# fa_inode PATH: PATH's inode number (`test -ef` is not POSIX).
fa_inode() {
  # shellcheck disable=SC2046 # ls's first field is the point
  set -- $(LC_ALL=C ls -di -- "$1" 2>/dev/null)
  printf '%s' "${1:-none}"
}

# fa_recover FILE: roll back a transaction on FILE that a killed run left unfinished, and drop
# stale temp files.
fa_recover() {
  for fa_x in "$1".fleetauth-tmp.*; do [ -e "$fa_x" ] && rm -f -- "$fa_x"; done
  if [ -f "$1.fleetauth-txn" ] && [ "$(fa_inode "$1.fleetauth-txn")" = "$(fa_inode "$1")" ]; then
    # Killed between the link and the rename: the file is still the old one.
    rm -f -- "$1.fleetauth-txn"
  elif [ -f "$1.fleetauth-txn" ]; then
    mv -f -- "$1.fleetauth-txn" "$1"
  elif [ -e "$1.fleetauth-created" ]; then
    rm -f -- "$1"
  fi
  rm -f -- "$1.fleetauth-created"
}

# Files replaced by this transaction, and the state of the transaction.
fa_txn_files=
fa_txn_open=

# fa_swap TEMP FILE: TEMP replaces FILE atomically; the old FILE is kept for the verdict.
fa_swap() {
  if [ -e "$2" ]; then
    ln -- "$2" "$2.fleetauth-txn" 2>/dev/null || cp -p -- "$2" "$2.fleetauth-txn" ||
      fa_fail "$FA_ST_IO" "cannot keep the previous $2"
  else
    : >"$2.fleetauth-created" || fa_fail "$FA_ST_IO" "cannot write beside $2"
  fi
  fa_txn_add "$2"
  fa_fsync "$1"
  mv -f -- "$1" "$2" || fa_fail "$FA_ST_IO" "cannot rename $1 over $2"
}

# fa_backup FILE: keep a copy of FILE before a program we do not control rewrites it in place
# (a copy, not a link: an in-place write would change a link too).
fa_backup() {
  fa_check_target "$1"
  if [ -e "$1" ]; then
    rm -f -- "$1.fleetauth-txn"
    cp -p -- "$1" "$1.fleetauth-txn" || fa_fail "$FA_ST_IO" "cannot back up $1"
  else
    : >"$1.fleetauth-created" || fa_fail "$FA_ST_IO" "cannot write beside $1"
  fi
  fa_txn_add "$1"
}

fa_txn_add() {
  case " $fa_txn_files " in *" $1 "*) ;; *) fa_txn_files="$fa_txn_files $1" ;; esac
  fa_txn_open=1
  case " $fa_cleanups " in *" fa_txn_abort "*) ;; *) fa_cleanups="fa_rm_temps fa_txn_abort $fa_cleanups" ;; esac
}

# The verdict. Paths in fa_txn_files come from fleetauth's data and the member's own directories.
fa_txn_commit() {
  # shellcheck disable=SC2086
  for fa_x in $fa_txn_files; do
    if [ "$FA_KEEP_BACKUP" = 1 ] && [ -f "$fa_x.fleetauth-txn" ]; then
      mv -f -- "$fa_x.fleetauth-txn" "$fa_x.fleetauth-prev"
    else
      rm -f -- "$fa_x.fleetauth-txn"
    fi
    rm -f -- "$fa_x.fleetauth-created"
  done
  fa_txn_open=
}
fa_txn_abort() {
  [ -n "$fa_txn_open" ] || return 0
  fa_txn_open=
  # shellcheck disable=SC2086
  for fa_x in $fa_txn_files; do fa_recover "$fa_x"; done
}

# fa_txn_begin FILE: open a transaction that replaces FILE: its directory checked, the lock
# taken, an unfinished transaction rolled back, the previous run's backup dropped (unless kept),
# FILE checked, and an empty temp file beside it (fa_t). Sets fa_f.
fa_txn_begin() {
  fa_f=$1
  case $fa_f in
    '') fa_fail "$FA_ST_USAGE" "empty path" ;;
    /*) ;;
    *) fa_f=./$fa_f ;;
  esac
  fa_d=${fa_f%/*}
  [ -n "$fa_d" ] || fa_d=/
  fa_check_dir "$fa_d"
  fa_lock "$fa_f.fleetauth-lock"
  fa_recover "$fa_f"
  [ "$FA_KEEP_BACKUP" = 1 ] || rm -f -- "$fa_f.fleetauth-prev"
  fa_check_target "$fa_f"
  fa_newtemp "$fa_f"
}

# fa_txn_install: the temp file fa_t replaces fa_f, unless they are the same; records
# `install pushed|unchanged`.
fa_txn_install() {
  if [ -f "$fa_f" ] && cmp -s -- "$fa_t" "$fa_f"; then
    fa_rm_temps
    fa_rec - install unchanged
    return 0
  fi
  fa_swap "$fa_t" "$fa_f"
  fa_temps=
  fa_rec - install pushed
}

# fa_env_push: merge the assignments for FA_NAMES, read from stdin (one line each), into the env
# file, and remove those of FA_DROP (`--fix-shadowing`); records `install pushed|unchanged`. The new lines exist only in this shell's memory and in
# the new file.
fa_env_push() {
  fa_txn_begin "$(fa_path "$FA_ENV")"
  fa_new=
  for fa_n in $FA_NAMES; do
    IFS= read -r fa_line || fa_fail "$FA_ST_BAD_INPUT" "expected one assignment for each of: $FA_NAMES"
    fa_new="$fa_new$fa_line
"
  done
  if [ -f "$fa_f" ]; then fa_src=$fa_f; else fa_src=/dev/null; fi
  # A NUL byte is no shell text, and some awks would turn it into a line break. (Both ends of
  # this pipeline only read.)
  # shellcheck disable=SC2094
  if ! tr -d '\000' <"$fa_src" | cmp -s - "$fa_src"; then
    fa_fail "$FA_ST_NOT_REGULAR" "refusing $fa_f: it contains NUL bytes, which no shell file holds"
  fi
  fa_nonl=0
  if [ -s "$fa_src" ] && [ -n "$(tail -c 1 -- "$fa_src")" ]; then fa_nonl=1; fi
  # awk's stderr (names and line numbers only) is captured; its stdout is the new file.
  fa_err=$(printf '%s' "$fa_new" | LC_ALL=C awk -v mode=merge -v names="$FA_NAMES" -v drop="${FA_DROP:-}" -v nonl="$fa_nonl" \
    -v st_bad_input="$FA_ST_BAD_INPUT" -v st_shadowed="$FA_ST_SHADOWED" \
    "$FA_AWK_ENVFILE" phase=new - phase=old "$fa_src" 2>&1 >"$fa_t")
  fa_st=$?
  fa_new=
  case $fa_st in
    0) ;;
    "$FA_ST_BAD_INPUT") fa_fail "$FA_ST_BAD_INPUT" "stdin must carry one export NAME='...' line for each of: $FA_NAMES" ;;
    "$FA_ST_SHADOWED") fa_fail "$FA_ST_SHADOWED" "$fa_f: $fa_err" ;;
    *) fa_fail "$FA_ST_IO" "could not write $fa_t (awk exit $fa_st)" ;;
  esac
  fa_txn_install
}

# fa_login_push: provider FA_LOGIN_PROVIDER's login command (FA_LOGIN_ARGS) fed the key read from
# stdin, with the provider's credential files backed up first.
fa_login_push() {
  "fa_def_$FA_LOGIN_PROVIDER"
  fa_h=$(fa_config_home "$HVAR" "$HDEF")
  fa_check_dir "$fa_h"
  fa_lock "$fa_h/.fleetauth-lock"
  eval "set -- $FILES"
  for fa_rel in "$@"; do
    fa_recover "$fa_h/$fa_rel"
    [ "$FA_KEEP_BACKUP" = 1 ] || rm -f -- "$fa_h/$fa_rel.fleetauth-prev"
  done
  for fa_rel in "$@"; do fa_backup "$fa_h/$fa_rel"; done
  IFS= read -r fa_key || fa_fail "$FA_ST_BAD_INPUT" "no key on stdin"
  fa_bin=$FA_LOGIN_BIN
  fa_env_path=$(fa_path "$FA_ENV")
  fa_out=$(
    fa_source "$fa_env_path" || :
    cd "$HOME" 2>/dev/null || :
    eval "set -- $FA_LOGIN_ARGS"
    printf '%s\n' "$fa_key" | fa_to 60 "$fa_bin" "$@" 2>&1 8>&- 9>&-
  )
  fa_st=$?
  fa_key=
  fa_rec - login_rc "$fa_st"
  printf '%s\n' "$fa_out" | fa_recb - login_out
  fa_out=
  if [ "$fa_st" -ne 0 ]; then
    fa_txn_abort
    fa_rec - outcome restored
    return 1
  fi
  fa_rec - install pushed
}

# fa_file_push: replace the provider's file FA_FILE_REL (under its config home) with FA_FILE_SIZE
# bytes read from stdin.
fa_file_push() {
  "fa_def_$FA_FILE_PROVIDER"
  fa_txn_begin "$(fa_config_home "$HVAR" "$HDEF")/$FA_FILE_REL"
  dd bs=1 count="$FA_FILE_SIZE" 2>/dev/null >"$fa_t"
  if [ "$(wc -c <"$fa_t" | tr -d ' ')" != "$FA_FILE_SIZE" ]; then
    fa_fail "$FA_ST_BAD_INPUT" "the file's contents did not arrive whole"
  fi
  fa_txn_install
}

# fa_fix_file: `--fix-shadowing`'s settings change, in the install's transaction and under its
# lock: provider FA_FIX_PROVIDER's file FA_FIX_REL (under its config home) is replaced by the
# FA_FIX_NEW bytes read from stdin, once the FA_FIX_OLD bytes before them prove it still holds
# what the probe read. Undone with the install; records `fix pushed`.
fa_fix_file() {
  "fa_def_$FA_FIX_PROVIDER"
  fa_ff=$(fa_config_home "$HVAR" "$HDEF")/$FA_FIX_REL
  fa_check_dir "${fa_ff%/*}"
  fa_recover "$fa_ff"
  fa_check_target "$fa_ff"
  if ! { [ -f "$fa_ff" ] && dd bs=1 count="$FA_FIX_OLD" 2>/dev/null | cmp -s - "$fa_ff"; }; then
    fa_fail "$FA_ST_IO" "refusing to change $fa_ff: it changed since fleetauth read it; run provision again"
  fi
  fa_newtemp "$fa_ff"
  dd bs=1 count="$FA_FIX_NEW" 2>/dev/null >"$fa_t"
  if [ "$(wc -c <"$fa_t" | tr -d ' ')" != "$FA_FIX_NEW" ]; then
    fa_fail "$FA_ST_BAD_INPUT" "the new contents of $fa_ff did not arrive whole"
  fi
  fa_swap "$fa_t" "$fa_ff"
  fa_temps=
  fa_rec - fix pushed
}
