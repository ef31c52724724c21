#!/usr/bin/env python3
"""Bytes of framing per LL-HLS part: emsg (the in-band metadata), moof and mdat (the Opus).

Usage: scripts/part_overhead.py BASE_URL SPACE_ID
Fetches the newest ~25 parts of a live space's live.m3u8 and prints, as JSON, the parts read,
how many carried metadata (and how many were key parts), and the average emsg, moof and mdat
bytes per part. Run it against a space with a speaker (e.g. `tribune speak --voice 140`).
"""
import sys, re, urllib.request, struct, time, json
base, sid = sys.argv[1], sys.argv[2]
def get(u): return urllib.request.urlopen(base+u).read()
pl = get(f"/spaces/{sid}/hls/live.m3u8").decode()
parts = re.findall(r'URI="(part/[^"]+)"', pl)[-25:]
tot = {"emsg":0,"moof":0,"mdat":0}; n=0; withmeta=0; keys=0
for p in parts:
    b = get(f"/spaces/{sid}/hls/{p}"); i=0; n+=1; had=False
    while i+8<=len(b):
        size,typ = struct.unpack(">I4s", b[i:i+8]); typ=typ.decode()
        if typ in tot: tot[typ]+=size
        if typ=="emsg":
            had=True
            if b'"k":1' in b[i:i+size]: keys+=1
        i+=size
    withmeta += had
print(json.dumps({"parts":n, "with_metadata":withmeta, "key_parts":keys, "avg_emsg":tot["emsg"]/n, "avg_moof":tot["moof"]/n, "avg_mdat":tot["mdat"]/n, "avg_emsg_plus_moof": (tot["emsg"]+tot["moof"])/n}))
