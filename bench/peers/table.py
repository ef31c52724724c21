#!/usr/bin/env python3
"""Prints the peer benchmark's table from the `tribune loadtest --json` results in DIR:
tribune next to Icecast (Ogg) and nginx (HLS), with ratios tribune / peer.

usage: table.py DIR
"""
import json
import os
import sys


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def figures(r):
    held = r["listeners"]["held"]
    cpu = r["server"].get("cpu_cores_avg") or 0.0
    rss = r["server"].get("rss_kib_per_listener")
    return {
        "listeners held": held,
        "never joined": r["listeners"].get("never_joined", 0),
        "gapped listeners": r["listeners"].get("gapped", 0),
        "join p50 (ms)": r["join_latency_ms"].get("p50"),
        "join p99 (ms)": r["join_latency_ms"].get("p99"),
        "server cores": cpu,
        "cores per 1,000 listeners": (cpu / held * 1000) if held else None,
        "listeners per core": (held / cpu) if cpu else None,
        "memory per listener (KiB)": rss,
    }


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return f"{v:,}"


def ratio(a, b):
    if a is None or b is None or not b:
        return "–"
    return f"{a / b:.2f}×"


PAIRS = [
    ("tribune-ogg-1s", "icecast-ogg-1s", "Ogg, 1 s pages: tribune vs Icecast 2.4"),
    ("tribune-ogg-200ms", "icecast-ogg-1s", "Ogg: tribune at 200 ms pages vs Icecast at 1 s"),
    ("tribune-hls-poll", "nginx-hls-poll", "HLS segments, polled: tribune vs nginx (same files)"),
    ("tribune-llhls", "nginx-hls-poll", "tribune LL-HLS (parts, blocking reloads) vs nginx polled"),
]


def main():
    d = sys.argv[1]
    for a, b, title in PAIRS:
        ra, rb = load(d, a), load(d, b)
        if not ra or not rb:
            print(f"\n{title}: missing {a if not ra else b}.json")
            continue
        fa, fb = figures(ra), figures(rb)
        print(f"\n{title}")
        print(f"| figure | tribune | peer | tribune / peer |")
        print(f"|---|---:|---:|---:|")
        for k in fa:
            print(f"| {k} | {fmt(fa[k])} | {fmt(fb[k])} | {ratio(fa[k], fb[k])} |")


if __name__ == "__main__":
    main()
