# fleetauth run: the user's command (FA_ARGV, quoted words) with the env file sourced, from
# $HOME, with the channel's stdin past this script. The marker line on stdout and stderr tells the
# client where the command's own output starts: what a login shell printed before is dropped.
# Needs the prelude.
# shellcheck shell=sh
# shellcheck disable=SC2154 # FA_ENV and FA_ARGV come from the header
fa_env_path=$(fa_path "$FA_ENV")
if ! fa_source "$fa_env_path"; then
  fa_recs - env_unsafe "$fa_why"
  exit "$FA_ST_UNSAFE_FILE"
fi
cd "$HOME" 2>/dev/null || :
trap - EXIT HUP INT TERM PIPE
eval "set -- $FA_ARGV"
fa_rec - start 1
fa_rec - start 1 >&2
exec "$@"
