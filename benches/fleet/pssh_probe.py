"""parallel-ssh leg of the fleetauth benchmark (benches/fleet, scripts/bench).

Runs the probe script (the remote command, verbatim, as `ssh HOST SCRIPT` would; the bench
hands it the packed form, see `Scenario::packed_command` in tools.rs) on every
host with parallel-ssh's native client (libssh2 via ssh2-python) and a pool of 64, then prints
one line: `done=N failed=M`, N being the hosts whose script ran to its final `done` record.
parallel-ssh does not check host keys against known_hosts; everything else matches the other
tools (same user, key, script, connect deadline, one attempt).

usage: pssh_probe.py HOSTS_FILE USER KEY SCRIPT_FILE TIMEOUT_S POOL
"""

import sys

from pssh.clients import ParallelSSHClient

# The script's final record: `@@FA<nonce>\t-\tdone\t1` (the nonce follows `@@FA`).
DONE = "\t-\tdone\t1"


def main():
    hosts_file, user, key, script_file, timeout, pool = sys.argv[1:7]
    with open(hosts_file) as f:
        hosts = [line.strip() for line in f if line.strip()]
    with open(script_file) as f:
        script = f.read()
    client = ParallelSSHClient(
        hosts,
        user=user,
        pkey=key,
        pool_size=int(pool),
        timeout=float(timeout),
        num_retries=1,
        allow_agent=False,
    )
    output = client.run_command(script, stop_on_errors=False)
    done = failed = 0
    for host_out in output:
        if host_out.exception is not None:
            print(f"{host_out.host}: {host_out.exception!r}", file=sys.stderr)
            failed += 1
            continue
        try:
            finished = any(
                line.startswith("@@FA") and DONE in line for line in host_out.stdout
            )
        except Exception as e:  # a read timeout or a dropped connection on this host
            print(f"{host_out.host}: {e!r}", file=sys.stderr)
            finished = False
        if finished:
            done += 1
        else:
            print(f"{host_out.host}: no final record", file=sys.stderr)
            failed += 1
    print(f"done={done} failed={failed}")


if __name__ == "__main__":
    main()
