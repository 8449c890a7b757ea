"""Plain per-patient state for snapshots: arrays keyed by name, rows aligned with patient ids.

`WindowStore`, `ResidualScale` and `Detector` each export their per-patient state as
``(patient_ids, {name: array})``, one row per patient, and import it back into empty
slots: the arrays never carry slot numbers, so a snapshot does not depend on the order in
which patients were first seen. The file format lives in `monitor.service.snapshot`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy.typing as npt

__all__ = [
    "StateArrays",
    "check_array",
]

#: One component's per-patient state: name -> array whose first axis is the patient.
StateArrays: TypeAlias = Mapping[str, npt.NDArray[Any]]


def check_array(arrays: StateArrays, name: str, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    """Return `arrays[name]`, or raise ValueError when it is missing or has another shape."""
    got = arrays.get(name)
    if got is None:
        raise ValueError(f"missing array {name!r}")
    if got.shape != shape:
        raise ValueError(f"{name}: shape {got.shape}, expected {shape}")
    return got
