"""Ground-truth labels of injected anomalies: the model, its JSON Schema, a JSON Lines sink."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO, get_args

from pydantic import BaseModel, ConfigDict, Field

from monitor.core.schema import PATIENT_ID_PATTERN

AnomalyKind = Literal[
    "spike",
    "level_shift",
    "drift",
    "flatline",
    "dropout",
    "noise_burst",
    "rhythm_change",
    "probe_off",
]
#: The kinds of the `mixed` scenarios, in this order: all but `probe_off`, which has its own
#: scenario (`probe-off`).
KINDS: tuple[AnomalyKind, ...] = tuple(k for k in get_args(AnomalyKind) if k != "probe_off")


class AnomalyLabel(BaseModel):
    """One injected event, as written to the labels file (one JSON object per line).

    Attributes:
        patient_id: The affected patient.
        vital: The affected vital; None for a dropout, which silences the whole patient (a
            `probe_off` silences this one vital only).
        kind: What was injected (see docs/simulator.md).
        start_t: Sample time of the first affected sample, unix seconds.
        end_t: Sample time of the last affected sample (inclusive).
        start_seq: Sequence number of the first affected sample.
        end_seq: Sequence number of the last affected sample (inclusive).
        magnitude_sigma: Size in units of the vital's noise sigma (0 where not applicable).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    patient_id: str = Field(pattern=PATIENT_ID_PATTERN)
    vital: str | None
    kind: AnomalyKind
    start_t: float
    end_t: float
    start_seq: int = Field(ge=0)
    end_seq: int = Field(ge=0)
    magnitude_sigma: float = Field(ge=0.0)


def labels_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of one labels line."""
    return AnomalyLabel.model_json_schema()


def read_labels(path: Path) -> list[AnomalyLabel]:
    """Read a labels file (JSON Lines) written by `LabelSink`."""
    with path.open() as f:
        return [AnomalyLabel.model_validate_json(line) for line in f if line.strip()]


class LabelSink:
    """Appends labels to a JSON Lines file, flushing each line so a killed run keeps them.

    Args:
        path: The file to write (truncated on open); None writes nothing.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._file: TextIO | None = None

    def __enter__(self) -> LabelSink:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        return self

    def write(self, label: AnomalyLabel) -> str:
        """Write one label line and return it (without the newline)."""
        line = label.model_dump_json()
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        self.count += 1
        return line

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
