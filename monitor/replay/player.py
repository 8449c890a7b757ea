"""Live replay: republish a recording's messages with their original inter-arrival times.

Send times are scheduled against a monotonic clock from the first record's receive time, so
that sleeping late on one message does not push back the ones after it (no drift).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from monitor.replay.recording import Record

Publish = Callable[[Record], Awaitable[None]]


async def play(
    records: Iterable[Record],
    publish: Publish,
    *,
    speed: float | None = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_sent: Callable[[Record], None] | None = None,
) -> int:
    """Publish records in order, at `speed` times the recorded pace.

    Args:
        records: The recording, in file order.
        publish: Sends one record (topic and payload) to the broker.
        speed: Time compression (10 = ten times faster); None sends as fast as possible.
        clock: Monotonic seconds; injected for tests.
        sleep: Awaitable sleep; injected for tests.
        on_sent: Called after each record is published (a progress bar).

    Returns:
        How many records were published.
    """
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    sent = 0
    origin: float | None = None
    start = clock()
    for record in records:
        if speed is not None:
            if origin is None:
                origin = record.received_at
            delay = start + (record.received_at - origin) / speed - clock()
            if delay > 0:
                await sleep(delay)
        await publish(record)
        sent += 1
        if on_sent is not None:
            on_sent(record)
    return sent
