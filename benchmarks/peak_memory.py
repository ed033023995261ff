"""Peak memory of a command and every process it starts (Linux /proc, no extra packages).

Samples the whole process tree every `--every` seconds and prints the peak of the summed RSS (pages
shared between processes counted once per process: an upper bound) and of the summed PSS (shared
pages split between the processes that map them: what the tree really costs).

    python benchmarks/peak_memory.py --limit 300 -- \
        convtune tune experiments/fashion_mnist.yaml --devices cpu --workers 2 --quiet
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/<pid>/task/*/children."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue += children(current)
    return pids


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) once it is gone."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(" ")
            if key in values:
                values[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values["Rss:"], values["Pss:"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--limit", type=float, help="stop the command (SIGTERM) after this many seconds")
    parser.add_argument("--trace", type=Path, help="also write every sample, per process, to this CSV file")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --.")
    process = subprocess.Popen(command)
    started = time.monotonic()
    peak_rss = peak_pss = processes = 0
    trace = args.trace.open("w") if args.trace else None
    if trace:
        trace.write("seconds,pid,rss_kib,pss_kib\n")
    while process.poll() is None:
        pids = tree(process.pid)
        sizes = [memory_kib(pid) for pid in pids]
        if trace:
            now = time.monotonic() - started
            trace.writelines(
                f"{now:.1f},{pid},{rss},{pss}\n" for pid, (rss, pss) in zip(pids, sizes, strict=True) if rss
            )
        rss, pss = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
        if pss > peak_pss:
            peak_pss, processes = pss, sum(1 for s in sizes if s[0])
        peak_rss = max(peak_rss, rss)
        if args.limit is not None and time.monotonic() - started > args.limit:
            process.send_signal(signal.SIGTERM)
            process.wait()
            break
        time.sleep(args.every)
    elapsed = time.monotonic() - started
    if trace:
        trace.close()
    load = os.getloadavg()
    print(
        f"peak PSS {peak_pss / 2**20:.2f} GiB over {processes} processes, peak summed RSS "
        f"{peak_rss / 2**20:.2f} GiB, {elapsed:.0f} s, exit {process.returncode}, "
        f"load {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
