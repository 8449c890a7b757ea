"""Loss detection from each patient's `seq`: what a recorder did not receive.

The message contract numbers each patient's samples contiguously (docs/messages.md), so a
sample whose `seq` jumps past its patient's latest one by more than 1 says how many were not
received: lost on the way (QoS 0, a subscriber that fell behind) or never sent (a device's or
the simulator's dropout; the recorder cannot tell them apart). A patient's first sample sets
its start: what was sent before the recorder subscribed is not counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Patients followed at most; a stream naming more ids (a flood of made-up ids) stops adding
#: patients there, so memory stays bounded. Their samples count as `untracked`.
MAX_PATIENTS = 100_000


@dataclass(slots=True)
class Loss:
    """Counts over a stream.

    Attributes:
        received: Samples received that moved their patient's `seq` forward.
        missing: Sequence numbers skipped between a patient's samples.
        behind: Samples at or behind their patient's latest `seq` (a duplicate, a late
            sample, a restarted device): neither received anew nor missing.
        unparsed: Messages with no patient id and `seq` to read (not a vitals message).
        untracked: Samples of patients beyond `MAX_PATIENTS`.
    """

    received: int = 0
    missing: int = 0
    behind: int = 0
    unparsed: int = 0
    untracked: int = 0

    @property
    def expected(self) -> int:
        """Samples the senders numbered from each patient's first to its latest."""
        return self.received + self.missing

    def summary(self) -> str:
        """One line: ``lost N of M samples (x %)``, with what could not be judged."""
        share = 100.0 * self.missing / self.expected if self.expected else 0.0
        line = f"lost {self.missing} of {self.expected} samples ({share:.2f} %) by seq gaps"
        extra = [
            f"{n} {what}"
            for n, what in (
                (self.behind, "at or behind their patient's latest seq"),
                (self.unparsed, "messages without a patient id and seq"),
                (self.untracked, f"samples of patients beyond the first {MAX_PATIENTS}"),
            )
            if n
        ]
        return line + (f"; {', '.join(extra)}" if extra else "")


#: The head of a single-sample message as the simulator and `encode_sample` write it (the
#: schema's field order, compact): 20 times cheaper than parsing the JSON. Anchored at the
#: start and ending at the vitals, so a vital named "seq" cannot be taken for the field.
_SINGLE_HEAD = re.compile(
    rb'\{"v":1,"patient_id":"([A-Za-z0-9][A-Za-z0-9_.-]{0,63})","t":[-+0-9.eE]+,'
    rb'"seq":(0|[1-9][0-9]{0,18}),"vitals":\{'
)


def _seqs(payload: bytes) -> tuple[str, list[int]] | None:
    """The patient id and sample seqs of a vitals message (either form), or None."""
    head = _SINGLE_HEAD.match(payload)
    if head is not None:
        return head[1].decode(), [int(head[2])]
    try:
        msg = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("patient_id"), str):
        return None
    samples = msg.get("samples") if "samples" in msg else [msg]
    if not isinstance(samples, list):
        return None
    seqs = [s.get("seq") for s in samples if isinstance(s, dict)]
    ints = [q for q in seqs if type(q) is int and q >= 0]
    if not ints or len(ints) != len(samples):
        return None
    return msg["patient_id"], ints


class SeqGaps:
    """Follows each patient's latest `seq` and counts the samples skipped."""

    def __init__(self) -> None:
        self.loss = Loss()
        self._latest: dict[str, int] = {}

    def observe(self, payloads: Iterable[bytes]) -> None:
        """Account for received messages, in arrival order."""
        latest, loss = self._latest, self.loss
        for payload in payloads:
            parsed = _seqs(payload)
            if parsed is None:
                loss.unparsed += 1
                continue
            pid, seqs = parsed
            last = latest.get(pid)
            if last is None:
                if len(latest) >= MAX_PATIENTS:
                    loss.untracked += len(seqs)
                    continue
                last = seqs[0] - 1
            for seq in seqs:
                if seq > last:
                    loss.received += 1
                    loss.missing += seq - last - 1
                    last = seq
                else:
                    loss.behind += 1
            latest[pid] = last
