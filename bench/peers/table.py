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
    s = r["server"]
    # The steady cost (every listener in), less what the stream costs with nobody listening
    # (tribune mixes and encodes; Icecast's ffmpeg source is a separate process).
    cpu = s.get("cpu_cores_hold_avg") or s.get("cpu_cores_avg") or 0.0
    idle = s.get("cpu_cores_idle")
    per_listener = max(cpu - (idle or 0.0), 0.0)
    rss = s.get("rss_kib_per_listener")
    return {
        "listeners held": held,
        "never joined": r["listeners"].get("never_joined", 0),
        "gapped listeners": r["listeners"].get("gapped", 0),
        "join p50 (ms)": r["join_latency_ms"].get("p50"),
        "join p99 (ms)": r["join_latency_ms"].get("p99"),
        "server cores, all in": cpu,
        "server cores, no listener": idle,
        "cores per 1,000 listeners (above no listener)": (per_listener / held * 1000) if held else None,
        "listeners held at equal CPU: per core (above no listener)": (held / per_listener) if per_listener else None,
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
