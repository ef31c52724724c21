#!/usr/bin/env python3
"""Mirrors a tribune space's live HLS (playlist and whole segments) into a directory that nginx
serves as plain files, so that both servers carry the same bytes in the peer benchmark.

The mirrored playlist is tribune's live playlist without the low-latency lines (parts, preload
hints, server control): nginx cannot hold blocking reloads, so its listeners poll for whole
segments, and the benchmark compares tribune with the same polling listeners too.
Runs until the deadline (seconds) passes; files are written atomically (rename).

usage: mirror.py ORIGIN_HLS_URL OUT_DIR SECONDS
"""
import os
import sys
import time
import urllib.request

LL_TAGS = ("#EXT-X-PART:", "#EXT-X-PRELOAD-HINT", "#EXT-X-SERVER-CONTROL", "#EXT-X-PART-INF",
           "#EXT-X-SKIP", "#EXT-X-RENDITION-REPORT")


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def put(out, name, data):
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    base, out, seconds = sys.argv[1].rstrip("/"), sys.argv[2], float(sys.argv[3])
    deadline = time.monotonic() + seconds
    have = set()
    put(out, "init.mp4", fetch(base + "/init.mp4"))
    while time.monotonic() < deadline:
        try:
            text = fetch(base + "/live.m3u8").decode()
        except OSError as e:
            print("mirror:", e, file=sys.stderr)
            time.sleep(0.5)
            continue
        lines = [l for l in text.splitlines() if not l.startswith(LL_TAGS)]
        for l in lines:
            if l.startswith("seg/") and l not in have:
                put(out, l, fetch(base + "/" + l))
                have.add(l)
        # Segments first, then the playlist that names them.
        put(out, "live.m3u8", ("\n".join(lines) + "\n").encode())
        time.sleep(0.2)


if __name__ == "__main__":
    main()
