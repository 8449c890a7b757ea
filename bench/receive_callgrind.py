"""The receive path's QoS 0 PUBLISH parser (`Reader._take_publishes`) on identical blocks.

12 blocks of the recording's first 256 messages as MQTT 3.1.1 QoS 0 PUBLISH packets, parsed
inside starmap_next (docs/benchmarks.md; the recording as in bench/ingest_callgrind.py):

    PYTHONHASHSEED=0 PYTHONPATH=TREE valgrind --tool=callgrind \
        --toggle-collect=starmap_next python bench/receive_callgrind.py R

(the count divided by 3,072 messages). Works on trees before the transport package too.
"""

from __future__ import annotations

import itertools
import json
import sys
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

msgs: list[tuple[bytes, bytes]] = []
with open(sys.argv[1]) as f:
    for line in f:
        d = json.loads(line)
        if "topic" in d:
            msgs.append((d["topic"].encode(), d["payload"].encode()))
        if len(msgs) >= 256:
            break


def packet(topic: bytes, payload: bytes) -> bytes:
    """One QoS 0 PUBLISH packet."""
    body = len(topic).to_bytes(2, "big") + topic + payload
    n, rl = len(body), b""
    while True:
        b = n & 0x7F
        n >>= 7
        rl += bytes([b | (0x80 if n else 0)])
        if not n:
            break
    return b"\x30" + rl + body


block = b"".join(packet(t, p) for t, p in msgs)
client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
got: list[tuple[str, bytes]] = []
sink = got.extend
r: Any
try:
    from monitor.transports.mqtt.reader import Reader

    r = Reader(client, sink, v5=False, max_packet=70_000, on_refused=lambda _r: None)
except ImportError:  # before the transport package (e.g. 1fb2e9b)
    from monitor.mqtt import _Reader  # type: ignore[import-not-found]

    r = _Reader(client, sink)


def run(n: int) -> None:
    """Parse the block n times."""
    for _ in range(n):
        r._block, r._pos = block, 0  # the block one socket read would bring
        r._take_publishes()


run(4)
got.clear()
list(itertools.starmap(run, [(12,)]))
print(len(got), "messages", len(block), "bytes per block")
