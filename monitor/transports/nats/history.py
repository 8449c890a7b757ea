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

import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import nats
from nats.js import api
from nats.js.errors import NotFoundError

__all__ = ["ReplayBatch", "Replayed", "ensure_stream", "published_alert_ids", "replay"]

#: (MQTT topic, payload, server receive time in unix seconds), in stream order.
ReplayBatch = list[tuple[str, bytes, float]]
#: Takes each batch; the replay waits for it (so memory stays at one batch).
BatchHandler = Callable[[ReplayBatch], Awaitable[None]]
_FETCH = 1024  # messages per pull request
_FETCH_TIMEOUT_S = 5.0


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
        total = 0
        if last >= start_seq:
            for k in partitions:
                total += await _replay_subject(js, stream, f"{prefix}.{k}.*", start_seq, handle)
        return Replayed(total, last)
    finally:
        await nc.close()


async def _replay_subject(
    js: nats.js.JetStreamContext, stream: str, subject: str, start_seq: int, handle: BatchHandler
) -> int:
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=60.0,  # the server removes it if this process dies mid-replay
        max_ack_pending=-1,
    )
    sub = await js.pull_subscribe(subject, stream=stream, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        count = 0
        while pending > 0:
            msgs = await sub.fetch(min(_FETCH, pending), timeout=_FETCH_TIMEOUT_S)
            batch: ReplayBatch = [
                (m.subject.replace(".", "/"), m.data, m.metadata.timestamp.timestamp())
                for m in msgs
            ]
            count += len(batch)
            pending = msgs[-1].metadata.num_pending
            await handle(batch)
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
