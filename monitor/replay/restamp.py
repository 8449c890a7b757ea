"""Re-anchoring a replayed message's sample times to the wall clock it is sent at.

A recording's sample times are as old as the recording (an import is stamped from its own
dates), and a replay at ``--speed`` compresses them; a daemon refuses both (`clock_skew`). Live
replay therefore stamps each message with the wall-clock time it is published at, the policy of
every publisher that replays or accelerates time (docs/time.md, "Publishers").

Only the ``t`` fields change; the sequence numbers, vitals and every byte of a message that is
not a well-formed vitals message stay as recorded, so a bad message stays bad (the daemon
refuses it as it would have). A block keeps its samples' spacing divided by the replay speed,
its last sample at the send time; a patient's times never go backwards.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: The message contract's range of a sample time (docs/messages.md); times outside it are
#: left alone, so a message refused for its time is still refused.
_T_MIN, _T_MAX = 0.0, 1e11


def _valid_time(t: Any) -> bool:
    return (
        isinstance(t, int | float)
        and not isinstance(t, bool)
        and math.isfinite(t)
        and _T_MIN < t < _T_MAX
    )


class Restamper:
    """Rewrites the sample times of vitals messages to their wall-clock send time.

    Args:
        speed: The replay's speed (block spacing is divided by it); None: as fast as possible,
            every sample of a block at the send time.
    """

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._last: dict[str, float] = {}

    def __call__(self, payload: bytes, sent_at: float) -> bytes:
        """Return `payload` with its sample times moved to `sent_at` (unchanged if malformed).

        Args:
            payload: A recorded message.
            sent_at: Wall-clock time it is published at, unix seconds.
        """
        try:
            msg = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
            return payload
        if not isinstance(msg, dict) or not isinstance(msg.get("patient_id"), str):
            return payload
        samples = msg.get("samples") if "samples" in msg else [msg]
        if (
            not isinstance(samples, list)
            or not samples
            or not all(isinstance(s, dict) and _valid_time(s.get("t")) for s in samples)
        ):
            return payload
        floor = self._last.get(msg["patient_id"], -math.inf)
        last_t = float(samples[-1]["t"])
        for sample in samples:
            behind = 0.0 if self.speed is None else (last_t - float(sample["t"])) / self.speed
            floor = max(floor, min(sent_at, sent_at - behind))
            sample["t"] = floor
        self._last[msg["patient_id"]] = floor
        return json.dumps(msg, separators=(",", ":"), allow_nan=True).encode()
