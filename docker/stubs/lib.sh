# shellcheck shell=sh
# Shared helpers for the stub agent CLIs (gemini, claude, codex, copilot).
#
# Sourced, never run. Plain POSIX sh for dash on a minimal Debian: coreutils, grep, sed, mawk;
# no jq, no python, no node. The stubs reproduce what the real CLIs print offline and simulate the
# vendor from the directory $FLEETAUTH_STUB_VENDOR (see docs/stubs.md).
#
# Credentials are handled only inside the shell: compared with `case` and `=`, read from files
# through pipes, written with the `printf` builtin. None ever becomes an argument of an external
# command (visible in ps), a log line or output; the only trace printed is the vendors' own
# masked form where the real CLI prints one (`codex login status`).

STUB_VENDOR=${FLEETAUTH_STUB_VENDOR:-/etc/fleetauth-stub}
STUB_CLI=

# stub_init NAME ARGS...: remember which CLI this is and log the call.
stub_init() {
    STUB_CLI=$1
    shift
    stub_log_call "$@"
    stub_startup_cost
    stub_fault_gate "$@"
}

# What starting the real CLI costs the member, off by default (tests stay fast). Switched on by
# $FLEETAUTH_STUB_STARTUP or the first line of $STUB_VENDOR/startup: `node` (the CLI's own
# figure from stub_node_cpu_ms: a Node runtime loading its bundle) or a number of milliseconds.
# Every invocation pays it, as every start of a Node program does. See docs/stubs.md, "Start-up cost".
stub_startup_cost() {
    _cost=${FLEETAUTH_STUB_STARTUP:-}
    if [ -z "$_cost" ] && [ -r "$STUB_VENDOR/startup" ]; then
        IFS= read -r _cost <"$STUB_VENDOR/startup" || true
    fi
    case $_cost in
        '') return 0 ;;
        node) stub_burn_cpu "$(stub_node_cpu_ms)" ;;
        *[!0-9]*) return 0 ;;
        *) stub_burn_cpu "$_cost" ;;
    esac
}

# The CPU one start of the real CLI costs, in ms (assumption, docs/stubs.md "Start-up cost"):
# claude, gemini, copilot and the other Node CLIs load a bundle of megabytes into node, ~300 ms;
# codex's npm package is a small Node launcher in front of a native binary, ~60 ms (a bare
# `node -e 0`).
stub_node_cpu_ms() {
    case $STUB_CLI in
        codex) echo 60 ;;
        *) echo 300 ;;
    esac
}

# stub_burn_cpu MS: spin until this shell has used MS more milliseconds of CPU, as the kernel
# counts it (/proc/$$/stat utime + stime, in clock ticks): calibrated by the accounting itself,
# whatever the machine's speed. Without /proc, a fixed loop of about that length on a 2020s core.
stub_burn_cpu() {
    _hz=100
    _want=$(($1 * _hz / 1000))
    if ! stub_cpu_ticks; then
        _n=0
        while [ "$_n" -lt $(($1 * 1000)) ]; do _n=$((_n + 1)); done
        return 0
    fi
    _c0=$_ct
    while [ $((_ct - _c0)) -lt "$_want" ]; do
        _n=0
        while [ "$_n" -lt 1000 ]; do _n=$((_n + 1)); done
        stub_cpu_ticks || return 0
    done
}

# stub_cpu_ticks: sets _ct to this shell's CPU time so far (utime + stime, clock ticks); false
# without /proc. A builtin read: no process is started.
stub_cpu_ticks() {
    IFS= read -r _st <"/proc/$$/stat" 2>/dev/null || return 1
    _st=${_st##*) }
    # shellcheck disable=SC2086 # the fields after the command name are words
    set -- $_st
    _ct=$((${12} + ${13}))
}

# Fault injection (docker/fault-hooks, test members only): inside a provisioning transaction the
# member's ForceCommand exports FLEETAUTH_FAULT_VERIFY, the gate tool's path; a prompt — the
# transaction's verification (`-p`/`--print`/`--prompt` first, or codex's `exec`) — then waits at
# the `verify` gate before it starts, while the test does its damage. Unset everywhere else (the
# local test harness, sweeps, `fleetauth run`): no effect. Only the first argument is looked at,
# with `case`: no argument reaches the gate tool.
stub_fault_gate() {
    [ -n "${FLEETAUTH_FAULT_VERIFY:-}" ] || return 0
    case ${1:-} in
        -p | --print | --prompt | exec) "$FLEETAUTH_FAULT_VERIFY" gate verify ;;
    esac
    return 0
}

# Append "cli arg arg…" to $STUB_VENDOR/calls.log when that directory is writable. Arguments that
# look like a credential (a vendor's key or token prefix, alone or after `=`) are replaced by
# <redacted>; newlines become spaces (one line per call).
stub_log_call() {
    [ -d "$STUB_VENDOR" ] && [ -w "$STUB_VENDOR" ] || return 0
    _line=$STUB_CLI
    for _a in "$@"; do
        case $_a in
            AIza* | sk-* | gh[opu]_* | github_pat_* | ya29.* | 1//*) _a='<redacted>' ;;
            *=AIza* | *=sk-* | *=gh[opu]_* | *=github_pat_* | *=ya29.* | *=1//*) _a="${_a%%=*}=<redacted>" ;;
        esac
        _line="$_line $_a"
    done
    printf '%s\n' "$_line" |
        awk 'NR > 1 { printf " " } { printf "%s", $0 } END { printf "\n" }' >>"$STUB_VENDOR/calls.log" 2>/dev/null
    return 0
}

# stub_version DEFAULT: the version to print, overridable by $STUB_VENDOR/version-<cli>.
stub_version() {
    if [ -r "$STUB_VENDOR/version-$STUB_CLI" ]; then
        IFS= read -r _v <"$STUB_VENDOR/version-$STUB_CLI" || true
        [ -n "$_v" ] && { printf '%s\n' "$_v"; return; }
    fi
    printf '%s\n' "$1"
}

# True when the vendor cannot be reached: $STUB_VENDOR/unreachable (every CLI) or
# $STUB_VENDOR/unreachable-<cli> (this CLI only).
stub_unreachable() {
    [ -e "$STUB_VENDOR/unreachable" ] || [ -e "$STUB_VENDOR/unreachable-$STUB_CLI" ]
}

# stub_rejected CRED: true when CRED is a line of $STUB_VENDOR/rejected (exact match).
stub_rejected() {
    [ -r "$STUB_VENDOR/rejected" ] || return 1
    while IFS= read -r _l || [ -n "$_l" ]; do
        [ "$_l" = "$1" ] && return 0
    done <"$STUB_VENDOR/rejected"
    return 1
}

# stub_charset_ok STRING: true when STRING is non-empty and only [0-9A-Za-z_-].
stub_charset_ok() {
    [ -n "$1" ] || return 1
    case $1 in
        *[!0-9A-Za-z_-]*) return 1 ;;
    esac
    return 0
}

stub_now_s() { date +%s; }
stub_now_ms() { echo $(($(date +%s) * 1000)); }

stub_uuid() {
    if [ -r /proc/sys/kernel/random/uuid ]; then
        cat /proc/sys/kernel/random/uuid
    else
        od -An -N16 -tx1 /dev/urandom | tr -d ' \n' |
            sed 's/^\(........\)\(....\)\(....\)\(....\)\(............\)$/\1-\2-\3-\4-\5/'
        echo
    fi
}

# stub_json_ok FILE: true when FILE exists and looks like a JSON object ({ … }).
stub_json_ok() {
    [ -r "$1" ] || return 1
    _j=$(tr -d ' \t\r\n' <"$1")
    case $_j in
        '{'*'}') return 0 ;;
    esac
    return 1
}

# stub_json_str FILE KEY: the first string value of "KEY" anywhere in FILE (pretty or compact
# JSON; good enough for the credential files the CLIs and the test harness write). Empty when
# absent, null or not a string.
stub_json_str() {
    sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" "$1" 2>/dev/null | head -n 1
}

# stub_json_num FILE KEY: the first integer value of "KEY" in FILE, or empty.
stub_json_num() {
    sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\\([0-9][0-9]*\\).*/\\1/p" "$1" 2>/dev/null | head -n 1
}

# stub_json_true FILE KEY: true when "KEY": true appears in FILE.
stub_json_true() {
    grep -q "\"$2\"[[:space:]]*:[[:space:]]*true" "$1" 2>/dev/null
}

# stub_jwt_exp TOKEN: the `exp` claim (seconds) of a JWT, or empty. The token goes through a
# pipe from the printf builtin, never through argv.
stub_jwt_exp() {
    _p=${1#*.}
    _p=${_p%%.*}
    case $(($(printf '%s' "$_p" | wc -c) % 4)) in
        2) _p="$_p==" ;;
        3) _p="$_p=" ;;
    esac
    printf '%s' "$_p" | tr '_-' '/+' | base64 -d 2>/dev/null |
        sed -n 's/.*"exp"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1
}

# The pid of the closest sshd ancestor (the process serving this SSH connection), or empty when
# not started over SSH.
stub_session_pid() {
    _p=$PPID
    while [ -n "$_p" ] && [ "$_p" -gt 1 ] 2>/dev/null; do
        IFS= read -r _stat <"/proc/$_p/stat" 2>/dev/null || return 0
        _comm=${_stat#*\(}
        _comm=${_comm%\)*}
        if [ "$_comm" = sshd ]; then
            echo "$_p"
            return 0
        fi
        _rest=${_stat##*) }
        # shellcheck disable=SC2086
        set -- $_rest
        _p=$2
    done
}

# stub_hang [TICK_FUNCTION]: what the real CLIs do when the vendor cannot be reached: wait
# forever. Only a deadline ends it. Sleeps in short steps so that killing the shell leaves no
# long-lived child; exits when the SSH connection that started it is gone (its sshd process
# exited) and when TICK_FUNCTION, called with the seconds elapsed, fails to write (the reader
# went away). TERM/INT/HUP end it at once.
stub_hang() {
    _tick=${1:-}
    _session=$(stub_session_pid)
    _sleep=
    trap '[ -n "$_sleep" ] && kill "$_sleep" 2>/dev/null; exit 143' TERM
    trap '[ -n "$_sleep" ] && kill "$_sleep" 2>/dev/null; exit 130' INT
    trap '[ -n "$_sleep" ] && kill "$_sleep" 2>/dev/null; exit 129' HUP
    _t=0
    while :; do
        sleep 1 &
        _sleep=$!
        wait "$_sleep"
        _sleep=
        _t=$((_t + 1))
        if [ -n "$_session" ] && [ ! -d "/proc/$_session" ]; then
            exit 129
        fi
        if [ -n "$_tick" ]; then
            "$_tick" "$_t" || exit 141
        fi
    done
}

# stub_keychain SERVICE: the secret the OS keychain holds for SERVICE on stdout, through the
# `security` (macOS) or `secret-tool` (libsecret) on PATH, as the real CLIs do. Returns 0 found,
# 36 locked (macOS over SSH), 1 absent or no keychain tool.
stub_keychain() {
    if command -v security >/dev/null 2>&1; then
        security find-generic-password -s "$1" -w 2>/dev/null
        return $?
    fi
    if command -v secret-tool >/dev/null 2>&1; then
        secret-tool lookup service "$1" 2>/dev/null
        return $?
    fi
    return 1
}

# stub_text_str TEXT KEY / stub_text_num TEXT KEY: stub_json_str / stub_json_num on a value held
# in a variable (a keychain secret), piped from the printf builtin, never an argument.
stub_text_str() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" | head -n 1
}
stub_text_num() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\\([0-9][0-9]*\\).*/\\1/p" | head -n 1
}

# Login flows (fleetauth login) against a fake authorisation server: its base URL is the first
# line of $STUB_VENDOR/auth-server (tests/login.rs runs it on 127.0.0.1). Request bodies travel on
# curl's stdin (printf is a builtin), never in an argument. See docs/stubs.md, "Logins".

# stub_auth_post PATH < BODY: the server's answer, or false when it cannot be reached.
stub_auth_post() {
    [ -r "$STUB_VENDOR/auth-server" ] || return 2
    IFS= read -r _base <"$STUB_VENDOR/auth-server" || return 2
    curl -sS --max-time 10 -X POST --data-binary @- "$_base$1" 2>/dev/null
}

# stub_field NAME TEXT: the value of the `NAME=value` line of TEXT.
stub_field() { printf '%s\n' "$2" | sed -n "s/^$1=//p" | head -n 1; }

# stub_device_start CLIENT: asks for a device code; sets dev_code, user_code, interval. Returns 1
# when the vendor refuses the device flow for this account, 2 when it cannot be reached.
stub_device_start() {
    _r=$(printf '%s' "$1" | stub_auth_post /device/code) || return 2
    case $_r in disabled*) return 1 ;; esac
    dev_code=$(stub_field device_code "$_r")
    user_code=$(stub_field user_code "$_r")
    interval=$(stub_field interval "$_r")
    [ -n "$dev_code" ] && [ -n "$user_code" ] || return 2
    return 0
}

# stub_device_poll: polls every $interval seconds (one more on slow_down) until the operator
# approves (0; sets access, refresh), denies (3) or the code expires (4); 2 when unreachable.
stub_device_poll() {
    while :; do
        sleep "${interval:-1}"
        _r=$(printf '%s' "$dev_code" | stub_auth_post /device/token) || return 2
        case $_r in
            pending) ;;
            slow_down) interval=$((${interval:-1} + 1)) ;;
            denied) return 3 ;;
            expired) return 4 ;;
            'token '*)
                # shellcheck disable=SC2086 # the answer is three words
                set -- $_r
                # shellcheck disable=SC2034 # read by the calling stub
                access=$2 refresh=$3
                return 0
                ;;
            *) return 2 ;;
        esac
    done
}

# stub_paste_start CLIENT: starts a paste-back login; sets state (2 when unreachable).
stub_paste_start() {
    _r=$(printf '%s' "$1" | stub_auth_post /authorize/start) || return 2
    state=$(stub_field state "$_r")
    [ -n "$state" ] || return 2
    return 0
}

# stub_paste_exchange < TERMINAL: reads the pasted code from stdin (the pty) and exchanges it;
# 0 sets access and refresh, 1 when the server refuses the code, 2 when unreachable or no code.
stub_paste_exchange() {
    IFS= read -r _code || return 2
    _code=$(printf '%s' "$_code" | tr -d '\r')
    [ -n "$_code" ] || return 2
    _r=$(printf '%s %s' "$state" "$_code" | stub_auth_post /authorize/exchange) || return 2
    _code=
    case $_r in
        'token '*)
            # shellcheck disable=SC2086
            set -- $_r
            # shellcheck disable=SC2034 # read by the calling stub
            access=$2 refresh=$3
            return 0
            ;;
    esac
    return 1
}

# stub_write_file PATH CONTENT: CONTENT into PATH (0600, atomically), creating its directory.
stub_write_file() {
    umask 077
    mkdir -p "$(dirname "$1")" || return 1
    printf '%s\n' "$2" >"$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"
}
