"""The daemon's per-message pipeline work, torch-free, for callgrind (deterministic counts).

Instruction counts do not depend on the other users of a shared machine, so two trees
(e.g. a git worktree of an older commit) compare exactly on the same recording:

    monitor simulate --recording R --patients 100 --rate 10 --duration 16 --seed 1 \
        --start-time 1790000000
    PYTHONHASHSEED=0 PYTHONPATH=TREE valgrind --tool=callgrind \
        --toggle-collect=functools_reduce --toggle-collect=starmap_next \
        --toggle-collect=takewhile_next --toggle-collect=dropwhile_next \
        --toggle-collect=filterfalse_next python bench/ingest_callgrind.py R 12800 3072
    callgrind_annotate --inclusive=yes callgrind.out.PID | grep -E '_next|reduce'

(each count divided by the measured messages; docs/benchmarks.md). With CG_WRAP=push and
only --toggle-collect=starmap_next, the count is that of `WindowStore.push` over the
measured messages (a wrapper's cost included).

Same path as the daemon's intake (`Daemon._drain`: bursts of up to 256 messages, each
received at one time) and its forward callbacks, with the model forward replaced by a
persistence forecast (the window's last row) so no torch/onnxruntime is loaded: same input
and same stand-in predictions on every tree. On a tree with `Pipeline.decode`/`ingest`
(the engine's one path) each burst goes in chunks of 64 (the daemon's `_INGEST_CHUNK`),
keyed by topic (`patient_of`, as the MQTT transport keys them); on an older tree (`decode_many` + `ingest_decoded`, e.g.
b960ceb) the burst is decoded at once, then ingested message by message, as its daemon did.
Each stage of the measured bursts runs inside a distinct C function so callgrind's
--toggle-collect gives per-stage inclusive counts:
  functools_reduce  decode (every chunk of the burst; the topic's patient id included)
  starmap_next      ingest (the windows push, outcome counts, jobs queued)
  takewhile_next    take_batch + stack + score (detector, metrics)
  dropwhile_next    housekeeping (once per virtual second)
  filterfalse_next  queue accounting (received counter)

usage: ingest_callgrind.py REC WARM MEASURE   (message counts)
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.model.card import ModelCard
from monitor.service.metrics import Metrics
from monitor.settings import Settings

try:
    from monitor.engine.pipeline import Pipeline, model_info_from_card
except ImportError:  # before the pipeline moved into the engine (e.g. b960ceb, cdf666c)
    from monitor.service.pipeline import (  # type: ignore[import-not-found,no-redef]
        Pipeline,
        model_info_from_card,
    )

REC, WARM, MEASURE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
BURST = 256  # the daemon's _DRAIN_MAX
CHUNK = 64  # the daemon's _INGEST_CHUNK (engine trees)
DELAY = 0.003
ENGINE = not hasattr(Pipeline, "ingest_decoded")
if ENGINE:
    from monitor.engine.ports import IngressBatch
    from monitor.transports.mqtt.topics import patient_of

root = Path(sys.modules["monitor"].__file__).parent  # type: ignore[arg-type]
card = ModelCard.model_validate(json.loads((root / "assets/models/default/card.json").read_text()))
info = model_info_from_card(card)
F = len(info.features)
metrics = Metrics.create(CollectorRegistry())
pipe: Any = Pipeline(info, Settings(), metrics)

msgs: list[tuple[str, bytes, float]] = []
with open(REC) as f:
    for line in f:
        d = json.loads(line)
        if "topic" in d:
            msgs.append((d["topic"], d["payload"].encode(), d["received_at"]))
        if len(msgs) >= WARM + MEASURE:
            break

events = 0
next_hk = msgs[0][2] + 1.0
Burst = list[tuple[str, bytes, float]]


def put(burst: Burst) -> None:
    metrics.received.inc(len(burst))


def decode(burst: Burst, now: float) -> list[Any]:
    if not ENGINE:
        return [
            pipe.decode_many([t for t, _, _ in burst], [p for _, p, _ in burst], [now] * len(burst))
        ]
    out = []
    for c in range(0, len(burst), CHUNK):
        chunk = burst[c : c + CHUNK]
        # Keyed as the MQTT transport keys them, stamped as the daemon's `_drain` does.
        batch = IngressBatch(
            [patient_of(t) for t, _, _ in chunk], [p for _, p, _ in chunk], [now] * len(chunk)
        )
        nows = batch.received_at
        out.append(
            (pipe.decode(batch.keys, batch.payloads, nows, batch.validated, batch.longest), nows)
        )
    return out


def ingest(decoded: list[Any], now: float) -> None:
    global events
    if not ENGINE:
        for item in decoded[0]:
            ev = pipe.ingest_decoded(item, now)
            if ev:
                events += len(ev)
        return
    for columns, nows in decoded:
        ev = pipe.ingest(columns, nows)
        if ev:
            events += len(ev)


def score(now: float) -> None:
    global events
    extra = {"live": True} if ENGINE else {}
    while len(pipe.batcher):
        jobs = pipe.take_batch()
        windows = pipe.stack(jobs)
        preds = np.ascontiguousarray(windows[:, -1, :F], dtype=np.float32)
        events += len(pipe.score(jobs, preds, now, windows=windows, **extra))


def housekeep(now: float) -> None:
    global events, next_hk
    if now >= next_hk:
        next_hk += 1.0
        events += len(pipe.housekeeping(now))


WRAP = os.environ.get("CG_WRAP", "")


def wrap(cls: type, name: str) -> None:
    """Run every call of cls.name inside starmap_next (on the class: WindowStore has slots)."""
    orig = getattr(cls, name)

    def wrapped(*a: Any, **kw: Any) -> Any:
        return next(itertools.starmap(functools.partial(orig, *a, **kw), [()]))

    setattr(cls, name, wrapped)


for b in range(0, len(msgs), BURST):
    if b == WARM and WRAP:  # only the measured bursts, each call inside starmap_next
        wrap(type(pipe.windows), WRAP)
    burst = msgs[b : b + BURST]
    now = burst[-1][2] + DELAY
    if b < WARM or WRAP:
        put(burst)
        decoded = decode(burst, now)
        ingest(decoded, now)
        score(now)
        housekeep(now)
        continue
    list(itertools.filterfalse(lambda _, b=burst: put(b), [0]))  # type: ignore[misc]
    decoded = functools.reduce(lambda _a, _b, b=burst, n=now: decode(b, n), [0], None)  # type: ignore[misc,arg-type]
    list(itertools.starmap(lambda d=decoded, n=now: ingest(d, n), [()]))
    list(itertools.takewhile(lambda _, n=now: score(n), [0]))  # type: ignore[misc]
    list(itertools.dropwhile(lambda _, n=now: housekeep(n), [0]))  # type: ignore[misc]

outcomes = {
    o: metrics.registry.get_sample_value("monitor_messages_total", {"outcome": o})
    for o in ("scored", "warming_up", "invalid", "late", "duplicate")
}
print(
    json.dumps(
        {
            "engine_path": ENGINE,
            "messages": len(msgs),
            "measured": len(msgs) - WARM,
            "events": events,
            "outcomes": outcomes,
        }
    )
)
