"""Replay a shard's partitions from the JetStream stream: the history its windows need.

The stream (`nats.stream`, over ``vitals.*.*`` with ``max_msgs_per_subject``: a ring buffer
per patient) holds each patient's recent samples as the server received them, already
mapped to ``vitals.<k>.<id>``. `replay` reads the subjects ``vitals.<k>.*`` of the owned
partitions, one ephemeral pull consumer each (nats-server 2.9 has no multi-filter
consumers), from a stream sequence up to what the partition holds when the read ends, and
hands the messages on in batches as (MQTT topic, payload, server receive time): the topic the
MQTT listener would have delivered, so the daemon's ingest path takes them unchanged.
Within a subject the stream keeps publish order; that is the order each patient needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import nats
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError

__all__ = ["ReplayBatch", "Replayed", "ensure_stream", "published_alert_ids", "replay"]

#: (MQTT topic, payload, server receive time in unix seconds), in stream order.
ReplayBatch = list[tuple[str, bytes, float]]
#: Takes each batch; the replay waits for it (so memory stays at one batch).
BatchHandler = Callable[[ReplayBatch], Awaitable[None]]
_BATCH = 1024  # messages per batch handed on
_PARALLEL = 8  # partitions read at once


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay read.

    Attributes:
        messages: Messages handed on.
        last_seq: The stream's last sequence when the replay started (a catch-up replay
            starts after it).
    """

    messages: int
    last_seq: int


async def replay(
    url: str,
    stream: str,
    prefix: str,
    partitions: Sequence[int],
    handle: BatchHandler,
    *,
    start_seq: int = 1,
) -> Replayed:
    """Hand on the stored messages of `partitions` from stream sequence `start_seq` on.

    Args:
        url: NATS server URL.
        stream: The stream's name.
        prefix: The subjects' first token (``vitals``).
        partitions: The owned partitions.
        handle: Takes each batch, awaited.
        start_seq: First stream sequence to read.

    Raises:
        nats.errors.Error: The server is unreachable or the stream is missing.
    """
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        last = info.state.last_seq
        if last < start_seq:
            return Replayed(0, last)
        # Partitions are read side by side (a consumer's set-up and each fetch are round
        # trips); their batches are handed on one at a time, each partition's in order.
        gate, turn = asyncio.Semaphore(_PARALLEL), asyncio.Lock()

        async def serial(batch: ReplayBatch) -> None:
            async with turn:
                await handle(batch)

        async def one(k: int) -> int:
            async with gate:
                subject = f"{prefix}.{k}.*"
                return await _replay_subject(js, stream, subject, start_seq, serial, last)

        counts = await asyncio.gather(*(one(k) for k in partitions))
        return Replayed(sum(counts), last)
    finally:
        await nc.close()


async def _replay_subject(
    js: nats.js.JetStreamContext,
    stream: str,
    subject: str,
    start_seq: int,
    handle: BatchHandler,
    last_seq: int | None = None,
) -> int:
    """Hand on `subject`'s messages from `start_seq` to `last_seq` (None: to the end).

    An ordered push consumer (flow-controlled by the server): about twice as fast as pull
    fetches in nats-py, which wait on each message. Its callback fills a batch and awaits
    `handle` when the batch is full; a message's ``num_pending`` of 0, or a sequence at
    `last_seq`, ends the read.
    """
    done = asyncio.Event()
    batch: ReplayBatch = []
    count = 0

    async def take(msg: Msg) -> None:
        nonlocal batch, count
        if done.is_set():
            return
        meta = msg.metadata
        seq = meta.sequence.stream
        if last_seq is None or seq <= last_seq:
            batch.append((msg.subject.replace(".", "/"), msg.data, meta.timestamp.timestamp()))
        end = meta.num_pending == 0 or (last_seq is not None and seq >= last_seq)
        if len(batch) >= _BATCH or (end and batch):
            full, batch = batch, []
            count += len(full)
            await handle(full)
        if end:
            done.set()

    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=60.0,  # the server removes it if this process dies mid-replay
    )
    sub = await js.subscribe(subject, stream=stream, cb=take, ordered_consumer=True, config=config)
    try:
        info = await sub.consumer_info()
        # Nothing pending and nothing delivered: an empty partition (or none from start_seq).
        if info.num_pending or (info.delivered is not None and info.delivered.consumer_seq):
            await done.wait()
        return count
    finally:
        with contextlib.suppress(Exception):  # best effort: it expires on its own
            await sub.unsubscribe()


async def published_alert_ids(url: str, stream: str) -> set[str] | None:
    """The ``id`` of every alert the alerts stream holds; None when there is no such stream.

    The stream captures what the shards published (``alerts/<id>`` over MQTT is the NATS
    subject ``alerts.<id>``): a recovering shard re-publishes only what is not in it.
    """
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    ids: set[str] = set()

    async def collect(batch: ReplayBatch) -> None:
        for _, payload, _ in batch:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                ids.add(str(json.loads(payload)["id"]))

    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return None
        for subject in info.config.subjects or []:
            await _replay_subject(js, stream, subject, 1, collect)
        return ids
    finally:
        await nc.close()


async def ensure_stream(
    url: str,
    stream: str,
    prefix: str = "vitals",
    max_msgs_per_subject: int = 240,
    *,
    subjects: list[str] | None = None,
) -> None:
    """Create the stream over ``<prefix>.*.*`` (or `subjects`) unless it exists (tests,
    bench and demo; a deployment creates it with its own limits, deploy/kubernetes/)."""
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        js = nc.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.stream_info(stream)
            return
        await js.add_stream(
            name=stream,
            subjects=subjects or [f"{prefix}.*.*"],
            max_msgs_per_subject=max_msgs_per_subject,
            storage=api.StorageType.FILE,
        )
    finally:
        await nc.close()
