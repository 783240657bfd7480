# fleetauth login: a provider's own login command (FA_ARGV, quoted words) with the env file
# sourced, from $HOME. With a pty (FA_PTY=1) the command replaces this shell: closing the pty
# hangs it up. Without one, nothing would tell the command that the client left (sshd refuses
# signals to a forced command), so it runs in its own process group with stdin from /dev/null,
# and the whole group is ended when the channel's stdin closes (the client's EOF or the
# connection's end) or this shell is signalled. Needs the prelude.
# shellcheck shell=sh
# shellcheck disable=SC2154 # FA_ENV, FA_ARGV and FA_PTY come from the header
fa_env_path=$(fa_path "$FA_ENV")
if ! fa_source "$fa_env_path"; then
  fa_recs - env_unsafe "$fa_why"
  exit "$FA_ST_UNSAFE_FILE"
fi
cd "$HOME" 2>/dev/null || :
eval "set -- $FA_ARGV"
fa_rec - start 1
if [ "$FA_PTY" = 1 ]; then
  trap - EXIT HUP INT TERM PIPE
  exec "$@"
fi
# An asynchronous list's stdin is /dev/null: keep the channel's on fd 3 for the watcher.
exec 3<&0
if command -v setsid >/dev/null 2>&1; then
  setsid "$@" </dev/null 3<&- &
else
  "$@" </dev/null 3<&- &
fi
fa_login=$!
# shellcheck disable=SC2317 # called from the traps below
fa_end() { kill -TERM -- "-$fa_login" 2>/dev/null || kill -TERM "$fa_login" 2>/dev/null; }
trap 'fa_end; exit 129' HUP
trap 'fa_end; exit 130' INT
trap 'fa_end; exit 143' TERM
(
  cat <&3 >/dev/null 2>&1
  kill -TERM -- "-$fa_login" 2>/dev/null || kill -TERM "$fa_login" 2>/dev/null
) &
fa_watch=$!
wait "$fa_login"
fa_rc=$?
kill "$fa_watch" 2>/dev/null
exit "$fa_rc"
