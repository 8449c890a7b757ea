"""Ground-truth anomaly windows, read from the simulator's JSONL labels or a CSV of windows.

Both forms become `Label`. The simulator writes one JSON object per line::

    {"patient_id": "p0001", "vital": "heart_rate", "kind": "spike", "start_t": ..., "end_t": ...,
     "start_seq": ..., "end_seq": ..., "magnitude_sigma": 6.0}

(`vital` is null for a dropout of the whole patient, and names the silent vital of a
`probe_off`; `end_t` is inclusive). A CSV has a header
with `patient` (or `patient_id`), `start`, `end` (unix seconds, inclusive) and optionally
`vital`, `kind`, `magnitude`; its labels carry no sequence numbers.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import DataError

#: Kinds of label detected by a technical alert rather than a physiological one, and that
#: alert's reason: the whole patient silent (`signal_lost`), one vital silent while the
#: others go on (`vital_lost`, on the label's vital).
TECHNICAL_KINDS: dict[str, str] = {"dropout": "signal_lost", "probe_off": "vital_lost"}


@dataclass(frozen=True, slots=True)
class Label:
    """One ground-truth anomaly window.

    Attributes:
        patient_id: The patient.
        vital: The vital it affects, or None for the whole patient.
        kind: spike, level_shift, drift, flatline, dropout, noise_burst, rhythm_change,
            probe_off, or "anomaly" for CSV windows without a kind.
        start_t: First anomalous sample time, unix seconds.
        end_t: Last anomalous sample time, inclusive.
        start_seq: Sequence number of the first anomalous sample, when known.
        end_seq: Sequence number of the last anomalous sample, when known.
        magnitude_sigma: Size in units of the vital's noise sigma, when known.
    """

    patient_id: str
    vital: str | None
    kind: str
    start_t: float
    end_t: float
    start_seq: int | None = None
    end_seq: int | None = None
    magnitude_sigma: float | None = None

    @property
    def technical(self) -> bool:
        """True when a technical alert (`technical_reason`), not a physiological one,
        detects it."""
        return self.kind in TECHNICAL_KINDS

    @property
    def technical_reason(self) -> str | None:
        """The reason of the technical alert that detects it (None: a physiological one)."""
        return TECHNICAL_KINDS.get(self.kind)


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def label_from_dict(obj: dict[str, Any]) -> Label:
    """Build a label from one simulator JSON object.

    Raises:
        KeyError, TypeError, ValueError: A required field is missing or malformed.
    """
    return Label(
        patient_id=str(obj["patient_id"]),
        vital=None if obj.get("vital") is None else str(obj["vital"]),
        kind=str(obj["kind"]),
        start_t=float(obj["start_t"]),
        end_t=float(obj["end_t"]),
        start_seq=_opt_int(obj.get("start_seq")),
        end_seq=_opt_int(obj.get("end_seq")),
        magnitude_sigma=_opt_float(obj.get("magnitude_sigma")),
    )


def _read_jsonl(path: Path) -> list[Label]:
    labels: list[Label] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            labels.append(label_from_dict(json.loads(line)))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{number}", f"bad label: {exc!r}") from exc
    return labels


def _read_csv(path: Path) -> list[Label]:
    labels: list[Label] = []
    with path.open(newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            try:
                patient = row.get("patient_id") or row["patient"]
                labels.append(
                    Label(
                        patient_id=patient.strip(),
                        vital=(row.get("vital") or "").strip() or None,
                        kind=(row.get("kind") or "").strip() or "anomaly",
                        start_t=float(row["start"]),
                        end_t=float(row["end"]),
                        magnitude_sigma=_opt_float((row.get("magnitude") or "").strip()),
                    )
                )
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(f"{path}:{number}", f"bad label row: {exc!r}") from exc
    return labels


def read_labels(path: Path) -> list[Label]:
    """Read labels from a simulator JSONL file or a CSV of windows, by file extension.

    Args:
        path: ``*.csv`` for windows; anything else is read as JSON Lines.

    Returns:
        The labels in file order.

    Raises:
        DataError: A line or row is malformed (the message names it).
    """
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    return _read_jsonl(path)
