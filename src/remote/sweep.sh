# fleetauth sweep: the probe, read-only. Needs the prelude and probe.sh.
# shellcheck shell=sh
fa_probe_all
fa_rec - 'done' 1
