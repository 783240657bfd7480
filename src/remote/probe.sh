# fleetauth member-side probe: every question fleetauth asks a member, in one script.
#
# Needs the prelude. Rust's header defines, from provider data, one function per provider
# (`fa_def_N`, setting the variables read below) and lists their numbers in FA_PROVIDERS; FA_ENV
# is the env file, FA_DEEP is 1 to run each provider's minimal prompt, FA_AWK_ENVFILE the env-file
# awk program. Values of environment variables never leave the member: only names are sent back.
# Credential files are sent back as records straight from the file: never staged in a temp file.
# shellcheck shell=sh
# shellcheck disable=SC2034,SC2153,SC2154 # variables come from the header and the provider definitions

# fa_find BIN DIR...: sets fa_bin to BIN on PATH (absolute), else to the first executable DIR/BIN;
# false when there is none.
fa_find() {
  fa_b=$1; shift
  if fa_bin=$(command -v -- "$fa_b" 2>/dev/null); then
    case $fa_bin in /*) return 0 ;; esac
  fi
  fa_bin=
  for fa_d in "$@"; do
    fa_resolve "$fa_d"
    if [ -f "$fa_rp/$fa_b" ] && [ -x "$fa_rp/$fa_b" ]; then fa_bin=$fa_rp/$fa_b; return 0; fi
  done
  return 1
}

# npm's global bin dir, once per member. `npm prefix -g` starts node (~0.1 s of CPU): when no npm
# config file sets `prefix`, npm's default is the prefix node is installed under, read here
# without starting anything; otherwise ask npm.
fa_npm_dir() {
  if [ -n "${fa_nd+x}" ]; then [ -n "$fa_nd" ]; return; fi
  fa_nd=
  command -v npm >/dev/null 2>&1 || return 1
  fa_np=${NPM_CONFIG_PREFIX:-${npm_config_prefix:-${PREFIX:-}}}
  if [ -z "$fa_np" ] && [ -z "${DESTDIR:-}" ] && fa_nn=$(command -v node 2>/dev/null); then
    fa_dp=${fa_nn%/bin/node}
    fa_nrc=$(readlink -f "$(command -v npm)" 2>/dev/null)
    if ! grep -qs '^[[:space:]]*prefix[[:space:]]*=' "${NPM_CONFIG_USERCONFIG:-$HOME/.npmrc}" \
      "${NPM_CONFIG_GLOBALCONFIG:-$fa_dp/etc/npmrc}" "${fa_nrc%/bin/*}/npmrc" ./.npmrc; then
      fa_np=$fa_dp
    fi
  fi
  [ -n "$fa_np" ] || fa_np=$(fa_to 10 npm prefix -g </dev/null 2>/dev/null) || fa_np=
  [ -n "$fa_np" ] && fa_nd=$fa_np/bin
}

# fa_npm_find BIN: sets fa_bin to BIN in npm's global bin dir, if it is there.
fa_npm_find() {
  [ -f "$fa_nd/$1" ] && [ -x "$fa_nd/$1" ] && fa_bin=$fa_nd/$1
}

# fa_file PROVIDER REL PATH: a credential file's contents, or that it is unreadable.
fa_file() {
  if [ -e "$3" ] || [ -L "$3" ]; then
    if [ -r "$3" ] && [ -f "$3" ]; then fa_recb "$1" "file:$2" <"$3"; else fa_rec "$1" "unreadable:$2" 1; fi
  fi
}

# fa_cred_path ITEM: sets fa_cp to where a credential file is. ITEM is FILE, VAR=FILE (VAR, set
# and non-empty on the member, is the full path instead) or VAR/=FILE (VAR is the file's
# directory: gh's GH_CONFIG_DIR); FILE `/...` is absolute, `~`/`~/...` the member's home, anything
# else relative to the config home $fa_h.
fa_cred_path() {
  case $1 in
    *=*)
      fa_pn=${1%%=*}
      fa_getenv "${fa_pn%/}"
      if [ -n "$fa_ge" ]; then
        case $fa_pn in
          */) fa_pf=${1#*=}; fa_cp=${fa_ge%/}/${fa_pf##*/} ;;
          *) fa_cp=$fa_ge ;;
        esac
        return 0
      fi
      set -- "${1#*=}" ;;
  esac
  # shellcheck disable=SC2088 # the patterns match a literal ~ from data
  case $1 in
    /* | '~' | '~/'*) fa_resolve "$1"; fa_cp=$fa_rp ;;
    *) fa_cp=$fa_h/$1 ;;
  esac
}

# fa_sha12 STRING: sets fa_sh to the first 12 hex digits of STRING's sha256, as fleetauth's
# fingerprints; fa_sha8 STRING to the first 8. Empty without a sha256 tool. printf is a builtin:
# the value is in no command line.
fa_sha() {
  fa_sh=
  if command -v sha256sum >/dev/null 2>&1; then
    fa_sh=$(printf %s "$1" | sha256sum 2>/dev/null) || fa_sh=
  elif command -v shasum >/dev/null 2>&1; then
    fa_sh=$(printf %s "$1" | shasum -a 256 2>/dev/null) || fa_sh=
  fi
  fa_sh=${fa_sh%%[!0-9a-f]*}
  [ "${#fa_sh}" = 64 ] || fa_sh=
}
fa_sha12() {
  fa_sha "$1"
  fa_sh=${fa_sh%"${fa_sh#????????????}"}
}
fa_sha8() {
  fa_sha "$1"
  fa_sh=${fa_sh%"${fa_sh#????????}"}
}

# fa_prefix_rec PROVIDER FIELD VALUE: a record naming the declared short-lived prefix (PREFIXES)
# VALUE starts with, if any. Only the prefix, which is data, is sent back.
fa_prefix_rec() {
  for fa_pre in $PREFIXES; do
    case $3 in "$fa_pre"*) fa_rec "$1" "$2" "$fa_pre"; return 0 ;; esac
  done
}

# fa_env_values: for each credential variable the env file assigns, the fingerprint of its value
# and any short-lived prefix. The file is sourced in a subshell with those variables unset first,
# so only what the file sets counts; nothing it prints is kept. Values never leave the member.
fa_env_values() {
  [ -n "$ENVS" ] && [ "$fa_env_safe" = 1 ] && [ -f "$fa_env_path" ] && [ -r "$fa_env_path" ] ||
    return 0
  (
    for fa_var in $ENVS; do unset "$fa_var" 2>/dev/null; done
    fa_load "$fa_env_path" </dev/null >/dev/null 2>&1
    for fa_var in $ENVS; do
      eval "fa_val=\${$fa_var:-}"
      [ -n "$fa_val" ] || continue
      fa_sha12 "$fa_val"
      [ -n "$fa_sh" ] && fa_rec "$P" "envfp:$fa_var" "$fa_sh"
      fa_prefix_rec "$P" "prefix_env:$fa_var" "$fa_val"
    done
  )
}

# fa_keychain PROVIDER ID:HASHVAR:SERVICE: whether the OS keychain holds SERVICE, never its secret.
# macOS `security find-generic-password -s` without -w prints attributes only: exit 0 present,
# 44 absent, 36 locked. libsecret's `secret-tool search` (only with a session bus, else it would
# try to start one) prints each item under a `[/path]` line: counted on the member, discarded.
fa_keychain() {
  fa_kid=${2%%:*}; fa_kr=${2#*:}; fa_kvar=${fa_kr%%:*}; fa_ks=${fa_kr#*:}
  if [ -n "$fa_kvar" ]; then
    fa_getenv "$fa_kvar"
    if [ -n "$fa_ge" ]; then fa_sha8 "$fa_ge"; [ -n "$fa_sh" ] && fa_ks="$fa_ks-$fa_sh"; fi
  fi
  if command -v security >/dev/null 2>&1; then
    fa_to 10 security find-generic-password -s "$fa_ks" </dev/null >/dev/null 2>&1
    fa_krc=$?
    case $fa_krc in 0) fa_kst=present ;; 44) fa_kst=absent ;; 36) fa_kst=locked ;; *) fa_kst="exit_$fa_krc" ;; esac
    fa_recs "$1" "keychain:$fa_kid" "$fa_kst security $fa_ks"
  elif command -v secret-tool >/dev/null 2>&1 && fa_whoami &&
    { [ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || [ -S "${XDG_RUNTIME_DIR:-/run/user/$fa_me}/bus" ]; }; then
    fa_kn=$(fa_to 10 secret-tool search service "$fa_ks" </dev/null 2>/dev/null | grep -c '^\[/')
    if [ "${fa_kn:-0}" -gt 0 ]; then fa_kst=present; else fa_kst=absent; fi
    fa_recs "$1" "keychain:$fa_kid" "$fa_kst secret-tool $fa_ks"
  else
    fa_kst=none
    fa_recs "$1" "keychain:$fa_kid" "none - $fa_ks"
  fi
}

# The env file: present or not, whether it may be sourced, and the names (never the values) it
# assigns, by the same parser the merge uses.
fa_probe_envfile() {
  fa_envnames=
  fa_resolve "$FA_ENV"
  fa_env_path=$fa_rp
  if [ -f "$fa_env_path" ]; then
    if [ -r "$fa_env_path" ]; then
      fa_rec - envfile present
      fa_envnames=$(LC_ALL=C awk -v mode=names -v st_bad_input="$FA_ST_BAD_INPUT" \
        -v st_shadowed="$FA_ST_SHADOWED" "$FA_AWK_ENVFILE" "$fa_env_path")
      # Names are identifiers: one line, space-separated, needs no encoding (fa_recs checks).
      fa_en1=
      set -f
      for fa_n in $fa_envnames; do fa_en1=$fa_en1${fa_en1:+ }$fa_n; done
      set +f
      fa_recs - envnames "$fa_en1"
    else
      fa_rec - envfile unreadable
    fi
  else
    fa_rec - envfile absent
  fi
  fa_env_safe=1
  fa_source_ok "$fa_env_path" || { fa_env_safe=0; fa_recs - envfile_unsafe "$fa_why"; }
}

# fa_ambient_where VAR: the startup and sshd files that seem to assign VAR (`VAR=`, `setenv VAR`,
# `set -gx VAR`, sshd `SetEnv VAR=`), one path a line: where a variable outside the env file comes
# from, for the remedy. grep -l prints names, never a line.
fa_ambient_where() {
  for fa_w in "$HOME/.ssh/environment" "$HOME/.pam_environment" "$HOME/.profile" "$HOME/.bash_profile" \
    "$HOME/.bash_login" "$HOME/.bashrc" "$HOME/.shrc" "$HOME/.zshenv" "$HOME/.zprofile" "$HOME/.zshrc" \
    "$HOME/.config/fish/config.fish" "$HOME/.cshrc" "$HOME/.tcshrc" /etc/environment /etc/profile \
    /etc/profile.d/*.sh /etc/bash.bashrc /etc/zsh/zshenv /etc/zshenv /etc/ssh/sshd_config \
    /etc/ssh/sshd_config.d/*.conf; do
    [ -f "$fa_w" ] || continue
    [ -r "$fa_w" ] || continue
    LC_ALL=C grep -l -E "^[^#]*(^|[^A-Za-z0-9_\$])$1([[:space:]]*=|[[:space:]]+[^=[:space:]])" -- "$fa_w" 2>/dev/null
  done
}

# fa_pkg_version BIN: sets fa_v to the version in the package.json of the npm package NPKG that
# BIN resolves into (fa_rt, .../node_modules/NPKG/...); false when there is none or it looks wrong in any way
# (another package's name, no plain "version"): then the CLI is asked.
fa_pkg_version() {
  [ -n "$NPKG" ] || return 1
  fa_t=$fa_rt
  [ -n "$fa_t" ] || return 1
  case $fa_t in */node_modules/"$NPKG"/*) ;; *) return 1 ;; esac
  fa_pj=${fa_t%/node_modules/"$NPKG"/*}/node_modules/$NPKG/package.json
  [ -f "$fa_pj" ] && [ -r "$fa_pj" ] || return 1
  fa_pv=$(LC_ALL=C awk -v ptrs='/name /version' -v values=1 "$FA_AWK_JSON" "$fa_pj" 2>/dev/null) ||
    return 1
  [ -n "${fa_tab:-}" ] || { fa_tab=$(printf '\tx'); fa_tab=${fa_tab%x}; }
  case $fa_pv in "S${fa_tab}$NPKG
S${fa_tab}"*) ;; *) return 1 ;; esac
  fa_v=${fa_pv#*"
S${fa_tab}"}
  case $fa_v in '' | *[!0-9A-Za-z.+-]* | [!0-9]*) return 1 ;; esac
  [ "${#fa_v}" -le 64 ]
}

# fa_vcache BIN: sets fa_vc (the cache entry for BIN) and fa_vkey ("SIZE MTIME", line 1 of the
# entry; line 2 is the resolved path fa_rt, the rest the version output). False when BIN is a script
# (its version may live in files beside it) or cannot be keyed: no cache then.
fa_vcache() {
  fa_vc='' fa_vkey=''
  fa_vt=${fa_rt:-$1}
  case $fa_vt in /*) ;; *) return 1 ;; esac
  case $(head -c 2 -- "$fa_vt" 2>/dev/null) in '#!' | '') return 1 ;; esac
  fa_vkey=$(stat -L -c '%s %Y' -- "$fa_vt" 2>/dev/null) ||
    fa_vkey=$(stat -L -f '%z %m' -- "$fa_vt" 2>/dev/null) || return 1
  case $fa_vkey in *[!0-9\ ]* | '') return 1 ;; esac
  fa_vd=${XDG_CACHE_HOME:-}
  case $fa_vd in /*) ;; *) fa_vd=$HOME/.cache ;; esac
  fa_vd=$fa_vd/fleetauth/versions
  fa_sha12 "$fa_vt"
  [ -n "$fa_sh" ] || return 1
  fa_vc=$fa_vd/$fa_sh
}

# fa_version: the version records of fa_bin, starting the CLI only when neither its npm
# package.json nor the cache answers.
# shellcheck disable=SC2120 # "$@" is VARGS, set inside
fa_version() {
  # Where the binary resolves to (once: both answers below need it). npm and native installers
  # link their bins into the package; a plain file is taken where it is found.
  if [ -L "$fa_bin" ]; then fa_rt=$(readlink -f -- "$fa_bin" 2>/dev/null) || fa_rt=; else fa_rt=$fa_bin; fi
  if fa_pkg_version "$fa_bin"; then
    fa_rec "$P" version_pkg "$fa_v"
    return 0
  fi
  fa_cached=0
  if fa_vcache "$fa_bin" && [ -f "$fa_vc" ] && {
    IFS= read -r fa_l1 && IFS= read -r fa_l2
  } <"$fa_vc" && [ "$fa_l1" = "$fa_vkey" ] && [ "$fa_l2" = "$fa_vt" ]; then
    fa_v=$(sed '1,2d' "$fa_vc") && fa_cached=1
  fi
  if [ "$fa_cached" = 1 ]; then
    fa_rec "$P" version_rc 0
    fa_rec "$P" version_cached 1
  else
    eval "set -- $VARGS"
    fa_v=$(fa_to 15 "$fa_bin" "$@" </dev/null 2>&1)
    fa_vrc=$?
    fa_rec "$P" version_rc "$fa_vrc"
    # Kept only when it answered and the resolved path fits on one line; written whole or not
    # at all (temp file, then rename), private to the user.
    if [ "$fa_vrc" = 0 ] && [ -n "${fa_vc:-}" ] && [ -n "${fa_vkey:-}" ]; then
      case $fa_vt in *"
"*) ;; *)
        (umask 077 && mkdir -p -- "$fa_vd" &&
          printf '%s\n%s\n%s\n' "$fa_vkey" "$fa_vt" "$fa_v" >"$fa_vc.$$" &&
          mv -f -- "$fa_vc.$$" "$fa_vc") 2>/dev/null || rm -f -- "$fa_vc.$$" 2>/dev/null
        ;;
      esac
    fi
  fi
  fa_recs "$P" version_out "$fa_v"
}

# fa_decides_file FILE PATH: whether credential file FILE (at PATH) is one of DFILES and, as it
# is, resolves for sure (unreadable, or a non-empty string at its token pointer): the status
# command is then not needed. Only the scanner's verdict letter is read, never a value.
fa_decides_file() {
  eval "set -- \"\$1\" \"\$2\" $DFILES"
  fa_df=$1 fa_dp=$2
  shift 2
  while [ $# -ge 2 ]; do
    if [ "$1" = "$fa_df" ]; then
      if [ -r "$fa_dp" ] && [ -f "$fa_dp" ]; then
        [ -n "$2" ] && [ "$(LC_ALL=C awk -v ptrs="$2" -v values=0 "$FA_AWK_JSON" "$fa_dp" 2>/dev/null)" = S ] &&
          return 0
      else
        return 0
      fi
    fi
    shift 2
  done
  return 1
}

# fa_in WORD LIST: whether WORD is one of LIST's quoted words.
fa_in() {
  eval "set -- \"\$1\" $2"
  fa_w=$1
  shift
  for fa_x in "$@"; do [ "$fa_x" = "$fa_w" ] && return 0; done
  return 1
}

# fa_probe_provider N: everything about provider N except its prompt; sets fa_bin. The status
# command runs last, and only when nothing seen so far decides the verdict (fa_dec; see
# probe::status_deciders): each credential found below is taken before the status command.
fa_probe_provider() {
  "fa_def_$1"
  fa_bin=
  fa_dec=0
  eval "set -- $DIRS"
  if fa_find "$B" "$@" || { [ "$NPM" = 1 ] && fa_npm_dir && fa_npm_find "$B"; }; then
    fa_recs "$P" bin "$fa_bin"
    fa_version
  else
    fa_bin=
    fa_rec "$P" missing 1
  fi
  for fa_var in $ENVS; do
    case "
$fa_envnames
" in *"
$fa_var
"*) fa_dec=1 ;; esac
    eval "fa_val=\${$fa_var:-}"
    [ -n "$fa_val" ] || continue
    fa_dec=1
    fa_rec "$P" ambient "$fa_var"
    fa_prefix_rec "$P" "prefix_ambient:$fa_var" "$fa_val"
    fa_where=$(fa_ambient_where "$fa_var")
    [ -n "$fa_where" ] && fa_recs "$P" "ambient_in:$fa_var" "$fa_where"
  done
  fa_val=
  fa_env_values
  fa_set_home "$HVAR" "$HDEF"
  eval "set -- $FILES"
  for fa_item in "$@"; do
    fa_cred_path "$fa_item"
    fa_file "$P" "${fa_item#*=}" "$fa_cp"
    if [ "$fa_dec" = 0 ] && [ -n "$DFILES" ] && { [ -e "$fa_cp" ] || [ -L "$fa_cp" ]; } &&
      fa_decides_file "${fa_item#*=}" "$fa_cp"; then
      fa_dec=1
    fi
  done
  eval "set -- $PFILES"
  for fa_item in "$@"; do
    fa_cred_path "$fa_item"
    if [ -e "$fa_cp" ]; then
      fa_rec "$P" "exists:${fa_item#*=}" 1
      fa_in "${fa_item#*=}" "$DPFILES" && fa_dec=1
    fi
  done
  eval "set -- $KCS"
  for fa_item in "$@"; do
    fa_keychain "$P" "$fa_item"
    case $fa_kst in absent | none) ;; *) fa_in "${fa_item%%:*}" "$DKCS" && fa_dec=1 ;; esac
  done
  if [ -n "$fa_bin" ] && [ "$HAS_STATUS" = 1 ]; then
    if [ "$fa_dec" = 1 ]; then
      fa_rec "$P" status_skipped 1
    else
      eval "set -- $SARGS"
      fa_to 15 "$fa_bin" "$@" </dev/null >/dev/null 2>&1
      fa_rec "$P" status_rc $?
    fi
  fi
}

# fa_probe_all: the probe proper. Without prompts every provider takes milliseconds, one after
# the other in this shell; with them (FA_DEEP=1) the prompts run in parallel and the member
# costs the slowest provider, not the sum. Their outputs wait in the private temp dir.
fa_probe_all() {
  fa_probe_envfile
  [ "$FA_DEEP" = 1 ] && fa_mktemp_dir
  for fa_i in $FA_PROVIDERS; do
    # fds 9 and 8 are a provisioning transaction's locks: no CLI (or daemon it leaves) may hold them.
    fa_probe_provider "$fa_i" 2>/dev/null 8>&- 9>&-
    if [ "$FA_DEEP" = 1 ] && [ -n "$fa_bin" ]; then
      (
        fa_prompt_bin=$fa_bin
        "fa_def_$fa_i"
        # An env file fa_source_ok refuses is not sourced (the record above says why).
        fa_source "$fa_env_path" || :
        cd "$HOME" 2>/dev/null || :
        eval "set -- $PENV"
        for fa_kv in "$@"; do export "${fa_kv?}"; done
        eval "set -- $PARGS"
        fa_to "$PTO" "$fa_prompt_bin" "$@"
        echo $? >"$fa_tmp/$fa_i.rc"
      ) </dev/null >"$fa_tmp/$fa_i.o" 2>"$fa_tmp/$fa_i.e" 8>&- 9>&- &
    fi
  done
  if [ "$FA_DEEP" = 1 ]; then
    wait
    for fa_i in $FA_PROVIDERS; do
      [ -f "$fa_tmp/$fa_i.rc" ] || continue
      "fa_def_$fa_i"
      fa_rec "$P" probe_rc "$(cat "$fa_tmp/$fa_i.rc")"
      fa_recb "$P" probe_out <"$fa_tmp/$fa_i.o"
      fa_recb "$P" probe_err <"$fa_tmp/$fa_i.e"
    done
  fi
}
