#!/usr/bin/env python3
"""Where bgpd's time goes: summarise py-spy raw (collapsed) profiles taken by `converge --profile DIR`.

    netns-lab/bench/profile_summary.py DIR/bgpd-100000-0-*.txt

Each sample is charged to its process (bgpd, the ExaBGP child, ExaBGP's API bridge) and to the
category of the innermost frame that matches one (so json.loads called from bgpd's codec counts as
JSON decode, and stdlib code called from the RIB counts as RIB). Prints a markdown table: samples
and share per process and category, and the top leaf functions of each process.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# (category, frame pattern): checked from the innermost frame outwards; first frame that matches wins
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("start-up: imports", r"<frozen importlib|_find_and_load"),
    ("ExaBGP: logging / debug calls", r"exabgp/logger"),
    ("ExaBGP: JSON encoding for the API", r"exabgp/reactor/api/response"),
    ("ExaBGP: UPDATE / NLRI decoding", r"exabgp/bgp/message"),
    ("ExaBGP: API process I/O", r"exabgp/reactor/api/processes"),
    ("ExaBGP: network and reactor", r"exabgp/reactor"),
    ("bgpd: JSON decode of ExaBGP events", r"json/decoder\.py|json/__init__\.py|orjson"),
    ("bgpd: event decoding (speaker codec)", r"bgpd/speaker/codec"),
    ("bgpd: speaker I/O (bridge socket)", r"bgpd/speaker/"),
    ("bgpd: RIB (adj-in, best path, FIB diff)", r"bgpd/rib/"),
    ("bgpd: kernel (netlink encode, send)", r"bgpd/kernel/|pyroute2"),
    ("bgpd: reconciler", r"bgpd/reconciler"),
    ("bgpd: logging", r"structlog|bgpd/logging"),
    ("bgpd: control / status", r"bgpd/control/"),
    ("event loop (asyncio / uvloop)", r"asyncio/|uvloop"),
))


def process_of(root: str) -> str:
    """py-spy's process frame, e.g. ``process 123:"/venv/bin/python /venv/bin/bgpd run ..."`` (the
    command line as py-spy first saw it: the plugin's PID may still have been the shell that execs)."""
    cmd = root.split(":", 1)[-1]
    if " validate " in cmd:
        return "start-up: exabgp validate"
    if "bridge.py" in cmd:
        return "ExaBGP API bridge"
    if "exabgp" in cmd.split()[0] or " -m exabgp" in cmd or "bin/exabgp" in cmd:
        return "ExaBGP"
    if "bgpd" in cmd:  # bgpd itself, or the plugin's shell that exec'd it
        return "bgpd"
    return cmd[:40]


def category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if pattern.search(frame):
                return name
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    by_cat: Counter[tuple[str, str]] = Counter()
    by_proc: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    for path in args.files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            # --subprocesses nests the process frames (parent;child;...): the innermost one ran this
            procs = [i for i, f in enumerate(frames) if f.startswith("process ")]
            proc = process_of(frames[procs[-1]]) if procs else "?"
            by_proc[proc] += int(count)
            by_cat[(proc, category(frames[procs[-1] + 1 if procs else 0:]))] += int(count)
            leaves.setdefault(proc, Counter())[re.sub(r":\d+\)$", ")", frames[-1])] += int(count)
    total = sum(by_proc.values()) or 1
    print("| process | category | samples | share of all |")
    print("|---|---|---|---|")
    for proc, n in by_proc.most_common():
        print(f"| **{proc}** | (all) | {n} | {100 * n / total:.1f}% |")
        for (p, cat), m in by_cat.most_common():
            if p == proc:
                print(f"| {proc} | {cat} | {m} | {100 * m / total:.1f}% |")
    for proc, counter in leaves.items():
        print(f"\ntop leaf frames, {proc}:")
        for frame, m in counter.most_common(args.top):
            print(f"  {100 * m / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
