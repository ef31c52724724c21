"""A WHIP publisher on aiortc, for tribune's interop tests (crates/cli/tests/whip_aiortc.rs).

It offers one Opus track carrying a sine tone, `sendrecv` or `sendonly`, POSTs the offer to
the WHIP endpoint, and for `sendrecv` records what it receives (tribune's mix-minus) to a WAV
file. It writes the answer to a file and prints one JSON line: the HTTP status and what it
saw. Every wait is bounded; it DELETEs its session at the end.
"""

import argparse
import asyncio
import fractions
import json
import math
import struct
import sys
import time
import urllib.error
import urllib.request
import wave

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 48000
FRAME = 960  # 20 ms


class Tone(MediaStreamTrack):
    """A sine tone, paced in real time, 20 ms per frame."""

    kind = "audio"

    def __init__(self, hz):
        super().__init__()
        self.hz = hz
        self.pts = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.pts / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        step = 2 * math.pi * self.hz / RATE
        pcm = struct.pack(
            f"<{FRAME}h",
            *(int(9000 * math.sin(step * (self.pts + i))) for i in range(FRAME)),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(pcm)
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += FRAME
        return frame


def http(method, url, token, body=None):
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/sdp")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


async def record(track, path, stop):
    """Write every received frame (s16, as decoded) to `path` until `stop` is set."""
    out = None
    frames = 0
    try:
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(track.recv(), 1.0)
            except asyncio.TimeoutError:
                continue
            except MediaStreamError:
                break
            frame = av.AudioResampler(format="s16", layout="mono", rate=RATE).resample(frame)
            for f in frame:
                if out is None:
                    out = wave.open(path, "wb")
                    out.setnchannels(1)
                    out.setsampwidth(2)
                    out.setframerate(RATE)
                out.writeframes(bytes(f.planes[0])[: f.samples * 2])
                frames += 1
    finally:
        if out is not None:
            out.close()
    return frames


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--direction", choices=["sendrecv", "sendonly"], required=True)
    p.add_argument("--tone", type=float, default=440.0)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--record")
    p.add_argument("--answer-out", required=True)
    a = p.parse_args()

    pc = RTCPeerConnection()
    pc.addTransceiver(Tone(a.tone), direction=a.direction)
    stop = asyncio.Event()
    recorders = []

    @pc.on("track")
    def on_track(track):
        if a.record and track.kind == "audio":
            recorders.append(asyncio.ensure_future(record(track, a.record, stop)))

    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, answer, headers = await loop.run_in_executor(
        None, http, "POST", a.url, a.token, pc.localDescription.sdp.encode()
    )
    result = {"status": status}
    with open(a.answer_out, "w") as f:
        f.write(answer)
    if status != 201:
        result["body"] = answer
        print(json.dumps(result))
        await pc.close()
        return
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    deadline = time.monotonic() + 20
    while pc.connectionState != "connected" and time.monotonic() < deadline:
        if pc.connectionState == "failed":
            break
        await asyncio.sleep(0.1)
    result["connected"] = pc.connectionState == "connected"
    if result["connected"]:
        await asyncio.sleep(a.seconds)
    stop.set()
    frames = 0
    for r in recorders:
        frames += await asyncio.wait_for(r, 5)
    result["frames_received"] = frames
    location = headers.get("Location") or headers.get("location")
    if location:
        base = a.url.split("/api/")[0]
        result["delete"] = (await loop.run_in_executor(None, http, "DELETE", base + location, a.token))[0]
    await pc.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 90))
    sys.exit(0)
