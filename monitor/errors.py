"""The project's error classes: few, each carrying the attributes a caller needs."""

from __future__ import annotations

from pathlib import Path


class MonitorError(Exception):
    """Base class of every error the monitor raises on purpose."""


class ModelLoadError(MonitorError):
    """A model directory cannot be loaded: a file is missing, or card and weights disagree.

    Attributes:
        path: The model directory (or file) that failed to load.
        reason: What does not match, e.g. ``"missing key lstm.weight_hh_l1"``.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot load model {path}: {reason}")
        self.path = path
        self.reason = reason


class DataError(MonitorError):
    """Training or evaluation data is unusable (bad column, too short, no windows).

    Attributes:
        source: The file or data set at fault.
        reason: What is wrong with it.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class DeviceError(MonitorError, ValueError):
    """A compute device that cannot be used (a ValueError as well, as it was before).

    Attributes:
        device: The device asked for, e.g. ``"cuda"`` or ``"gpu"``.
        reason: Why it cannot be used and what to use instead.
    """

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"device {device!r}: {reason}")
        self.device = device
        self.reason = reason


class SettingsError(MonitorError):
    """Settings failed validation.

    Attributes:
        problems: One human line per invalid setting (dotted path: message).
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems
