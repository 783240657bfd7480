# fleetauth provision: one transaction on one member for one provider -- install (FA_INSTALL is
# env, login or file), verify with the provider's minimal prompt under the same lock, then wait
# for the client's verdict on stdin: `commit` keeps the change, anything else (`restore`, end of
# input because the client or the connection went away, a signal) puts the previous files back.
# Needs the prelude, probe.sh and envfile.sh.
# shellcheck shell=sh
# shellcheck disable=SC2154 # FA_INSTALL comes from the header
case $FA_INSTALL in
  env) fa_env_push ;;
  login)
    # `--fix-shadowing`: a variable in the env file that wins over the stored key goes first
    # (the env file's lock before the config home's).
    if [ -n "${FA_DROP:-}" ]; then fa_env_push; fi
    fa_login_push || { fa_rec - 'done' 1; exit 0; }
    ;;
  file) fa_file_push ;;
  *) fa_fail "$FA_ST_USAGE" "unknown install method $FA_INSTALL" ;;
esac
if [ -n "${FA_FIX_REL:-}" ]; then fa_fix_file; fi
fa_probe_all
fa_rec - verify 1
# The verdict comes within FA_VERDICT_WAIT seconds or never: a connection cut after our last
# byte went out would otherwise hold the change and the lock until TCP gives up (hours). The
# watchdog's TERM is handled like any other: the previous files are put back.
(sleep "$FA_VERDICT_WAIT" && kill -TERM $$) </dev/null >/dev/null 2>&1 8>&- 9>&- &
fa_watch=$!
IFS= read -r fa_verdict || fa_verdict=restore
kill "$fa_watch" 2>/dev/null
if [ "$fa_verdict" = commit ]; then
  fa_txn_commit
  fa_rec - outcome committed
else
  if [ -n "$fa_txn_open" ]; then
    fa_txn_abort
    fa_rec - outcome restored
  else
    fa_rec - outcome unchanged
  fi
fi
fa_rec - 'done' 1
