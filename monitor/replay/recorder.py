"""The recorder: subscribe to a broker and append every message to a recording."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.replay.recording import Record, RecordingWriter
from monitor.transports.mqtt.client import connect
from monitor.transports.mqtt.config import BrokerConfig


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


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
) -> int:
    """Record messages until `stop` is set or `duration` seconds have passed.

    Args:
        cfg: The broker.
        out: The recording file (gzip when it ends in .gz); overwritten.
        topics: Topic filters to subscribe to.
        qos: Subscription QoS.
        duration: Stop after this many seconds; None records until `stop`.
        stop: Set it (from a signal handler) to stop; everything received is flushed.
        subscribed: Set once the subscriptions are in place (for tests and progress).
        flush_interval_s: The file is flushed at least this often, even when idle.
        on_record: Called after each record is written.

    Returns:
        How many messages were recorded.

    Raises:
        BrokerError: The broker cannot be reached or refuses the login.
    """
    stop = stop or asyncio.Event()
    with RecordingWriter(out, source=cfg.url, flush_interval_s=flush_interval_s) as writer:
        async with connect(cfg) as conn:
            for topic in topics:
                await conn.client.subscribe(topic, qos=qos)
            if subscribed is not None:
                subscribed.set()

            async def consume() -> None:
                async for message in conn.client.messages:
                    rec = Record(str(message.topic), _payload_bytes(message.payload), time.time())
                    writer.write(rec)
                    if on_record is not None:
                        on_record(rec)

            async def flush_when_idle() -> None:
                # The writer flushes on write; this covers a quiet broker after a burst.
                while True:
                    await asyncio.sleep(flush_interval_s)
                    writer.flush()

            tasks = [asyncio.create_task(f) for f in (consume(), stop.wait(), flush_when_idle())]
            try:
                done, _ = await asyncio.wait(
                    tasks, timeout=duration, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if tasks[0] in done:
                tasks[0].result()  # the message stream ended: re-raise the broker's error
        writer.flush()
        return writer.count
