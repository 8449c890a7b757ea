"""The recorder: subscribe to a broker, append every message to a recording, count the loss.

It receives like the daemon: `transports.mqtt.client.connect` hands over every QoS 0 PUBLISH of one
socket read in one call (`on_message`), with no `aiomqtt.Message` and no queue operation per
message, and the whole batch is written at once with one receive time. Each patient's `seq`
shows what did not arrive (`monitor.replay.seqgaps`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from monitor.replay.recording import Record, RecordingWriter
from monitor.replay.seqgaps import Loss, SeqGaps
from monitor.transports.mqtt.client import Connection, connect
from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.errors import classify

#: gzip level of a ``.gz`` recording: level 1 costs a third of the CPU of level 9 for files
#: about a quarter larger (docs/recordings.md), so compression does not make the recorder fall
#: behind a stream the daemon keeps up with.
GZIP_LEVEL = 1
#: After a stop, wait this long at most for the broker to deliver what it had queued for us.
DRAIN_MAX_S = 10.0


@dataclass(frozen=True, slots=True)
class RecordStats:
    """What a recording run did.

    Attributes:
        recorded: Messages written.
        loss: Samples received and missing by each patient's `seq`.
    """

    recorded: int
    loss: Loss


async def record(
    cfg: BrokerConfig,
    out: Path,
    *,
    topics: Sequence[str] = ("vitals/+",),
    qos: int = 1,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    subscribed: asyncio.Event | None = None,
    flush_interval_s: float = 1.0,
    on_record: Callable[[Record], None] | None = None,
) -> RecordStats:
    """Record messages until `stop` is set or `duration` seconds have passed.

    Args:
        cfg: The broker (protocol ``auto`` connects with 3.1.1, as the daemon does: MQTT 5
            buys a recorder nothing and costs a property parse per message).
        out: The recording file (gzip when it ends in .gz); overwritten.
        topics: Topic filters to subscribe to.
        qos: Subscription QoS.
        duration: Stop after this many seconds; None records until `stop`.
        stop: Set it (from a signal handler) to stop; what the broker had already queued
            for the recorder is still read (`_drain`), then everything is flushed.
        subscribed: Set once the subscriptions are in place (for tests and progress).
        flush_interval_s: The file is flushed at least this often, even when idle.
        on_record: Called after each record is written.

    Returns:
        How many messages were recorded and the samples missing by `seq`.

    Raises:
        BrokerError: The broker cannot be reached, refuses the login, or the
            connection is lost while recording (what was received is flushed first).
    """
    stop = stop or asyncio.Event()
    if cfg.protocol == "auto":
        cfg = cfg.model_copy(update={"protocol": "3.1.1"})
    gaps = SeqGaps()
    writer = RecordingWriter(
        out, source=cfg.url, flush_interval_s=flush_interval_s, compresslevel=GZIP_LEVEL
    )
    with writer:

        def take(batch: list[tuple[str, bytes]]) -> None:
            received_at = time.time()
            records = [Record(topic, payload, received_at) for topic, payload in batch]
            writer.write_many(records)
            gaps.observe([payload for _, payload in batch])
            if on_record is not None:
                for rec in records:
                    on_record(rec)

        async with connect(cfg, on_message=take) as conn:
            for topic in topics:
                await conn.client.subscribe(topic, qos=qos)
            if subscribed is not None:
                subscribed.set()
            await _until_stopped(conn, stop, duration, writer)
            try:
                conn.raise_if_lost()
            except aiomqtt.MqttError as exc:
                writer.flush()
                raise classify(exc.__cause__ or exc, cfg.url) from exc
            await _drain(conn.client, topics)
        writer.flush()
        return RecordStats(writer.count, gaps.loss)


async def _until_stopped(
    conn: Connection, stop: asyncio.Event, duration: float | None, writer: RecordingWriter
) -> None:
    """Wait for `stop`, `duration` or a lost connection, flushing the file when idle."""
    lost = asyncio.Event()
    conn.on_lost(lost.set)
    waits = [asyncio.create_task(e.wait()) for e in (stop, lost)]
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not (stop.is_set() or lost.is_set()):
            left = writer.flush_interval_s
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
                if left <= 0:
                    return
            # The writer flushes as it writes; this covers a quiet broker after a burst.
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            writer.flush()
    finally:
        for task in waits:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _drain(client: aiomqtt.Client, topics: Sequence[str]) -> None:
    """Unsubscribe and wait for the broker's answer: it comes after every message the broker
    had already queued for us (one connection delivers in order), so those are recorded."""
    with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
        await asyncio.wait_for(client.unsubscribe(list(topics)), DRAIN_MAX_S)
