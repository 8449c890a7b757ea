"""A publishing sink that writes a recording instead of talking to a broker.

`monitor simulate --recording FILE` runs the same scenario and publishing loop as a live run
(the same messages, byte for byte) into the replay format, with each record's receive time
set to its sample time: a virtual clock on which `monitor replay --offline` and
`monitor evaluate` judge the daemon exactly as if it had received the stream live.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from monitor.replay.recording import Record, RecordingWriter


def _sample_time(payload: bytes) -> float:
    body = json.loads(payload)
    if "samples" in body:
        return float(body["samples"][-1]["t"])
    return float(body["t"])


class RecordingSink:
    """A `simulators.publisher.Sink` writing every message to a recording.

    Args:
        path: The recording to write (gzip when the name ends in .gz).
        source: Description stored in the recording's header.
    """

    def __init__(self, path: Path, source: str = "monitor simulate") -> None:
        self._writer = RecordingWriter(path, source=source)

    def __enter__(self) -> RecordingSink:
        self._writer.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._writer.__exit__(exc_type, exc, tb)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Write one message; its receive time is its (last) sample time."""
        self._writer.write(Record(topic, payload, _sample_time(payload)))

    def publish_many(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> None:
        """Write messages in order."""
        for topic, payload in messages:
            self.publish(topic, payload, qos)
