"""The patient-state snapshot file: written every `state.checkpoint_interval_s` while
serving (`Checkpoints`) and on a graceful shutdown, restored on start.

A restart would otherwise leave every patient unmonitored for a whole window (120 samples,
2 minutes at 1 Hz). The file is a safetensors file (plain arrays plus string metadata, so
reading it never runs code) whose metadata holds one JSON header: format, model version,
window, features, sample width, detector `shift_n`, written_at, the patient ids and a
SHA-256 of every array. Each component's arrays (`WindowStore`, `ResidualScale`,
`Detector`, and the scorer's `StuckSensors` and `Settling`, and its `AlarmFollow`,
`BeatRhythm` and `LostVitals` when it has them: `export_state`) are stored under
``<component>.<name>`` with rows aligned to ``<component>.index``, positions in the
header's patient list, so nothing in the file depends on slot numbers. The stuck sensors,
the settling, the follow, the beat rhythm and the lost vitals are optional on restore (a
file without them restores them cold; a daemon without one ignores its arrays). The open
technical alerts ride in the header (`technical`; a file without it has none): a restored
patient's alerts whose watch its state carries stay open, every other one ends `expired`
at the restart (`TechnicalAlarms.restore_open`, docs/reliability.md).

Written to a temporary file beside the target, flushed to disk, then renamed: a crash
mid-write leaves the old file or none, never a torn one. A file that cannot be used
(corrupt, truncated, too old) is refused with one `snapshot_refused` log line and the
daemon starts cold; a recent, intact one of another model, window or feature set (a new
model installed) is refused for its model state, and its roster taken over
(`restore` with `roster`: the patients, their receive times and open alerts). A snapshot is
read once: it is removed after reading (a restore writes a checkpoint at once), so a later
crash cannot restore stale state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import safetensors.numpy
import structlog
from safetensors import SafetensorError

from monitor.core.alerts import AlertEvent
from monitor.core.detector import Detector
from monitor.core.scale import ResidualScale
from monitor.core.scoring import Scorer
from monitor.core.state import StateArrays
from monitor.core.technical import Saved, TechnicalAlarms
from monitor.core.windows import WindowStore

__all__ = [
    "FORMAT",
    "Checkpoints",
    "Exported",
    "SnapshotRefused",
    "SnapshotStats",
    "export_snapshot",
    "read_snapshot",
    "restore_on_start",
    "save_on_stop",
    "store_snapshot",
    "write_snapshot",
]

log = structlog.get_logger("monitor")

#: The file format's version; a file of another version is refused.
FORMAT = 1
#: Held while a snapshot file is written: a checkpoint's thread and the final write at
#: shutdown use the same temporary file name.
_WRITING = threading.Lock()
_EXPORTS = itertools.count()
#: Path -> the `Exported.order` last written there (under `_WRITING`).
_stored: dict[Path, int] = {}
_HEADER_KEY = "vitals_monitor_snapshot"
_COMPONENTS = ("windows", "scale", "detector")
#: Components restored when the file has them (written by a daemon that had them).
_OPTIONAL = ("stuck", "follow", "rhythm", "lost", "settle")


class _Part(Protocol):
    """A component whose per-patient state a snapshot carries."""

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]: ...

    def import_state(self, patient_ids: list[str], arrays: StateArrays) -> None: ...


class Served(Protocol):
    """The pipeline's parts a snapshot reads and fills (`monitor.engine.pipeline.Pipeline`)."""

    @property
    def windows(self) -> WindowStore:
        """The windows."""
        ...

    @property
    def scale(self) -> ResidualScale:
        """The residual scale."""
        ...

    @property
    def detector(self) -> Detector:
        """The detector."""
        ...

    @property
    def scorer(self) -> Scorer:
        """The scoring (its stuck sensors and alarm follow)."""
        ...

    @property
    def alarms(self) -> TechnicalAlarms:
        """The open technical alerts."""
        ...

    def restore_alarms(
        self, saved: Sequence[Saved], now: float, roster: bool = False
    ) -> list[AlertEvent]:
        """Take over a snapshot's open technical alerts; the events of those that end."""
        ...


def _parts(served: Served) -> dict[str, _Part]:
    """Every component but the windows, by its name in the file."""
    parts: dict[str, _Part] = {
        "scale": served.scale,
        "detector": served.detector,
        "stuck": served.scorer.stuck,
        "settle": served.scorer.settle,
    }
    if served.scorer.follow is not None:
        parts["follow"] = served.scorer.follow
    if served.scorer.rhythm is not None:
        parts["rhythm"] = served.scorer.rhythm
    if served.scorer.lost is not None:
        parts["lost"] = served.scorer.lost
    return parts


@dataclass(frozen=True, slots=True)
class Identity:
    """What must match between the writing and the reading daemon."""

    model_version: str
    window: int
    features: tuple[str, ...]
    width: int  # values per stored sample (2F with observed flags)
    shift_n: int  # the detector's running sums cover this many samples

    @classmethod
    def of(cls, served: Served) -> Identity:
        """The identity of the state a pipeline holds."""
        w, d = served.windows, served.detector
        return cls(d.model_version, w.window, tuple(d.features), w.width, d.config.shift_n)


class SnapshotRefused(Exception):
    """A snapshot that cannot be used.

    Attributes:
        reason: A short stable name (corrupt, format, model_version, window, features,
            width, shift_n, too_old, future, invalid_state).
        detail: One human sentence.
        roster: For an intact, recent file of another model (`model_version` to
            `shift_n`): its header and arrays, whose patients and open alerts can still be
            taken over (`restore` with `roster`); None otherwise.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        roster: tuple[dict[str, Any], dict[str, npt.NDArray[Any]]] | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.roster = roster


@dataclass(frozen=True, slots=True)
class SnapshotStats:
    """What a write or a restore did."""

    patients: int
    size_bytes: int
    seconds: float
    age_s: float = 0.0
    #: A restore's events: the open alerts of the snapshot that end (`restore`).
    events: tuple[AlertEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Exported:
    """A snapshot's content, copied out of the pipeline (`export_snapshot`): its own
    arrays, so that it can be encoded and written off the event loop while scoring goes on.
    """

    header: dict[str, Any]
    tensors: dict[str, npt.NDArray[Any]]
    #: Exports of this process, numbered in order (the newest one written wins).
    order: int = dataclasses.field(default_factory=lambda: next(_EXPORTS))

    @property
    def patients(self) -> int:
        """Patients in it."""
        return len(self.header["patients"])


def export_snapshot(served: Served, now: float) -> Exported:
    """Copy every patient's state out of the pipeline (a few ms for 1,000 patients)."""
    ident = Identity.of(served)
    ids, window_arrays = served.windows.export_state()
    position = {pid: i for i, pid in enumerate(ids)}
    tensors: dict[str, npt.NDArray[Any]] = {}
    parts = _parts(served)
    for name in ("windows", *parts):
        if name == "windows":
            held, arrays = ids, window_arrays
        else:
            held, arrays = parts[name].export_state()
            # The pipeline forgets a patient everywhere at once; one not in the windows
            # could not be scored again anyway.
            keep = [i for i, pid in enumerate(held) if pid in position]
            held = [held[i] for i in keep]
            arrays = {k: v[keep] for k, v in arrays.items()}  # indexing with a list copies
        # Every array is the export's own (the window store's `export_state` copies too),
        # never a view of state that scoring goes on changing.
        tensors[f"{name}.index"] = np.array([position[p] for p in held], dtype=np.int64)
        for key, array in arrays.items():
            tensors[f"{name}.{key}"] = np.ascontiguousarray(array)
    header = {
        "format": FORMAT,
        "model_version": ident.model_version,
        "window": ident.window,
        "features": list(ident.features),
        "width": ident.width,
        "shift_n": ident.shift_n,
        "written_at": now,
        "patients": ids,
        # Open technical alerts: [patient id ("" for the system), reason, vital, raised at].
        "technical": [list(saved) for saved in served.alarms.export_open()],
    }
    return Exported(header, tensors)


def store_snapshot(path: Path, exported: Exported) -> SnapshotStats:
    """Encode an export (checksum, safetensors) and write it to `path` atomically (temp
    file, fsync, rename). Safe on any thread: writes of one process to one path take
    turns, the last one called wins."""
    t0 = time.perf_counter()
    header = {**exported.header, "sha256": _digest(exported.tensors)}
    data = safetensors.numpy.save(exported.tensors, metadata={_HEADER_KEY: json.dumps(header)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with _WRITING:
        if exported.order < _stored.get(path, -1):
            # A checkpoint's thread that finished after a later export was written (the
            # final one at shutdown): the newer state stays.
            return SnapshotStats(exported.patients, 0, time.perf_counter() - t0)
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _stored[path] = exported.order
    return SnapshotStats(exported.patients, len(data), time.perf_counter() - t0)


def write_snapshot(path: Path, served: Served, now: float) -> SnapshotStats:
    """Write every patient's state to `path` atomically (temp file, fsync, rename)."""
    t0 = time.perf_counter()
    stats = store_snapshot(path, export_snapshot(served, now))
    return SnapshotStats(stats.patients, stats.size_bytes, time.perf_counter() - t0)


def read_snapshot(
    path: Path, served: Served, now: float, max_age_s: float
) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """Read and check a snapshot; return its header and arrays.

    Raises:
        SnapshotRefused: The file is corrupt, truncated, too old or from a daemon serving
            another model, window or feature set.
        OSError: The file cannot be read (FileNotFoundError when there is none).
    """
    data = path.read_bytes()
    try:
        tensors = safetensors.numpy.load(data)
        header = json.loads(_metadata(data)[_HEADER_KEY])
    except (SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise SnapshotRefused("corrupt", f"not a readable snapshot ({exc})") from None
    if not isinstance(header, dict):
        raise SnapshotRefused("corrupt", "the header is not a JSON object")
    if header.get("format") != FORMAT:
        raise SnapshotRefused("format", f"format {header.get('format')!r}, expected {FORMAT}")
    ids, written_at = header.get("patients"), header.get("written_at")
    if not isinstance(ids, list) or not all(isinstance(p, str) for p in ids):
        raise SnapshotRefused("corrupt", "the header's patient list is not a list of ids")
    if not isinstance(written_at, int | float):
        raise SnapshotRefused("corrupt", "the header has no written_at time")
    if not _valid_alarms(header.get("technical", [])):
        raise SnapshotRefused("corrupt", "the header's open alerts are not a list of alerts")
    if header.get("sha256") != _digest(tensors):
        raise SnapshotRefused("corrupt", "the arrays do not match their checksum")
    age = now - float(header["written_at"])
    if age > max_age_s:
        raise SnapshotRefused("too_old", f"written {age:.0f} s ago, limit {max_age_s:g} s")
    if age < -60.0:  # the clock went back, or the file is not what it claims
        raise SnapshotRefused("future", f"written {-age:.0f} s in the future")
    ident = Identity.of(served)
    for field, want in (
        ("model_version", ident.model_version),
        ("window", ident.window),
        ("features", list(ident.features)),
        ("width", ident.width),
        ("shift_n", ident.shift_n),
    ):
        if header.get(field) != want:
            # Intact and recent: who was monitored, and what was open, still holds.
            detail = f"{field} {header.get(field)!r}, serving {want!r}"
            raise SnapshotRefused(field, detail, roster=(header, tensors))
    return header, tensors


def restore(
    served: Served,
    header: dict[str, Any],
    tensors: StateArrays,
    now: float,
    roster: bool = False,
) -> tuple[int, list[AlertEvent]]:
    """Fill an empty pipeline from a checked snapshot; return the patients restored and
    the `expired` events of the open technical alerts nothing watches now (a system-wide
    one, a refused patient's: `TechnicalAlarms.restore_open`).

    With `roster`, the snapshot was written while serving another model (version, window,
    features): none of its model state fits, but who was monitored, when each was last
    heard from and what was open still hold. Each patient is held with an empty window
    whose next sample restarts it (`_emptied`: as after a gap, `warming_up` until it is
    full, every model state cold), so that one whose device stays silent gets
    `signal_lost`; its open alerts are taken over but `flatline` and `vital_lost`, whose
    state is the model's, which end `expired`.

    Raises:
        SnapshotRefused: The arrays do not fit (then nothing is restored).
    """
    ids: list[str] = header["patients"]
    shift = max(0.0, now - float(header["written_at"]))
    parts = _parts(served)
    try:
        for name in ("windows",) if roster else (*_COMPONENTS, *_OPTIONAL):
            if name in _OPTIONAL and (name not in parts or f"{name}.index" not in tensors):
                continue  # cold for this component, or a component this daemon lacks
            arrays = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{name}.")}
            index = arrays.pop("index").tolist()
            if name == "windows" and index != list(range(len(ids))):
                raise ValueError("the windows must hold every listed patient, in order")
            if not all(0 <= i < len(ids) for i in index):
                raise ValueError(f"{name}.index points outside the patient list")
            held = [ids[i] for i in index]
            if name == "windows":
                if roster:
                    arrays = _emptied(arrays, served.windows)
                served.windows.import_state(held, arrays, shift_s=shift)
            else:
                parts[name].import_state(held, arrays)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        # All or nothing: a half-restored patient would be inconsistent. The windows are
        # restored first and hold every listed patient; freeing their slots in the one
        # patient table makes every other component's rows of them stale (generations).
        for pid in ids:
            served.windows.remove(pid)
        raise SnapshotRefused("invalid_state", str(exc)) from None
    return len(ids), served.restore_alarms(_open_alerts(header), now, roster=roster)


#: The window store's per-patient bookkeeping that does not depend on the model: a roster
#: restore takes it over (`restore` with `roster`).
_ROSTER = ("last_seq", "last_seen", "last_dt", "lead", "lead_n", "off")


def _emptied(arrays: StateArrays, windows: WindowStore) -> dict[str, npt.NDArray[Any]]:
    """The window arrays of another model's snapshot, kept where they do not depend on the
    model and emptied where they do: one zero row each (count 1) and a last sample time of
    0, so that the patient's next sample is a gap that restarts its window."""
    n = len(arrays["last_seq"])
    roster = {name: arrays[name] for name in _ROSTER}
    roster["rate_dt"] = arrays.get("rate_dt", arrays["last_dt"])
    roster["rows"] = np.zeros((n, windows.window, windows.width), dtype=np.float32)
    roster["count"] = np.ones(n, dtype=np.int64)
    roster["last_t"] = np.zeros(n)
    return roster


def restore_on_start(
    path: Path, served: Served, max_age_s: float, clock: Callable[[], float] = time.time
) -> SnapshotStats | None:
    """Restore the snapshot at `path` if there is a usable one, logging one line either way.

    Returns None (a cold start) when there is no file or it was refused. The file is removed
    once read: a snapshot is restored at most once.
    """
    t0 = time.perf_counter()
    now = clock()
    roster = False
    try:
        size = path.stat().st_size
        try:
            header, tensors = read_snapshot(path, served, now, max_age_s)
        except SnapshotRefused as exc:
            if exc.roster is None:
                raise
            # Another model's: its model state refused, its patients taken over.
            log.warning("snapshot_refused", reason=exc.reason, detail=exc.detail, path=str(path))
            (header, tensors), roster = exc.roster, True
        patients, ended = restore(served, header, tensors, now, roster=roster)
    except FileNotFoundError:
        return None
    except (SnapshotRefused, OSError) as exc:
        reason = exc.reason if isinstance(exc, SnapshotRefused) else "unreadable"
        detail = exc.detail if isinstance(exc, SnapshotRefused) else str(exc)
        log.warning("snapshot_refused", reason=reason, detail=detail, path=str(path))
        _remove(path)
        return None
    _remove(path)
    age = now - header["written_at"]
    stats = SnapshotStats(patients, size, time.perf_counter() - t0, age, tuple(ended))
    log.info(
        "roster_restored" if roster else "snapshot_restored",
        patients=patients,
        age_s=round(stats.age_s, 1),
        alerts_open=len(header.get("technical", [])) - len(ended),
        alerts_expired=len(ended),
        size_bytes=size,
        read_s=round(stats.seconds, 3),
        path=str(path),
    )
    return stats


def save_on_stop(
    path: Path,
    served: Served,
    clock: Callable[[], float] = time.time,
    written: Callable[[str], None] | None = None,
) -> SnapshotStats | None:
    """Write the snapshot after a graceful shutdown, logging one line; None on failure.
    `written` is called with "ok" or "failed" (the metric)."""
    count = written or (lambda _result: None)
    try:
        stats = write_snapshot(path, served, clock())
    except OSError as exc:  # a full or read-only disk: the next start is cold, say so
        count("failed")
        log.error("snapshot_write_failed", error=str(exc), path=str(path))
        return None
    count("ok")
    log.info(
        "snapshot_written",
        patients=stats.patients,
        size_bytes=stats.size_bytes,
        write_s=round(stats.seconds, 3),
        path=str(path),
    )
    return stats


class Checkpoints:
    """The snapshot written every `interval_s` while serving, so that a daemon that dies
    without a graceful stop (SIGKILL, out of memory, the systemd watchdog or a liveness
    probe, a power cut) restarts from state at most that old instead of cold: it knows its
    patients, so one whose device went quiet meanwhile gets `signal_lost`, and their
    alerts go on (docs/reliability.md, "Restarts with a patient-state snapshot").

    The state is copied on the event loop (`export_snapshot`, 3 ms for 1,000 patients);
    the checksum, encoding and fsync run on a thread, one checkpoint at a time.

    Args:
        path: The snapshot file (`state.snapshot_path`).
        interval_s: Seconds between checkpoints; 0: none (only the graceful stop writes).
        written: Called with "ok" or "failed" after each write (the metric).
    """

    def __init__(
        self, path: Path, interval_s: float, written: Callable[[str], None] | None = None
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self._written = written or (lambda _result: None)
        self._due = math.inf
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self, now: float, restored: bool) -> None:
        """Schedule the first checkpoint (`now` on the clock `due` is given): at once when
        a snapshot was restored (reading consumed the file), else one interval in."""
        if self.interval_s > 0:
            self._due = now if restored else now + self.interval_s

    def due(self, now: float) -> bool:
        """Whether a checkpoint should start now (none is being written)."""
        return now >= self._due and (self._task is None or self._task.done())

    def write(self, served: Served, now: float, clock: Callable[[], float] = time.time) -> None:
        """Copy the state now and write it in the background (call on the event loop)."""
        self._due = now + self.interval_s
        exported = export_snapshot(served, clock())
        self._task = asyncio.get_running_loop().create_task(self._store(exported))

    async def wait(self) -> None:
        """Return once the checkpoint being written, if any, is done."""
        if self._task is not None:
            await asyncio.wait({self._task})

    def cancel(self) -> None:
        """Stop waiting for a write in progress (its thread finishes it; a later write to
        the same file, the final one, stays)."""
        if self._task is not None:
            self._task.cancel()

    async def _store(self, exported: Exported) -> None:
        try:
            await asyncio.to_thread(store_snapshot, self.path, exported)
        except OSError as exc:  # a full or read-only disk: a crash would start cold
            self._written("failed")
            if not self._failing:
                log.error(
                    "snapshot_write_failed", error=str(exc), path=str(self.path), checkpoint=True
                )
            self._failing = True
            return
        self._written("ok")
        if self._failing:
            log.info("snapshot_write_recovered", path=str(self.path))
            self._failing = False


def _open_alerts(header: dict[str, Any]) -> list[Saved]:
    """The open technical alerts a checked header carries (none in a file before them)."""
    return [(p, reason, vital, float(at)) for p, reason, vital, at in header.get("technical", [])]


def _valid_alarms(saved: object) -> bool:
    """Whether a header's open alerts are [id, reason, vital or null, time] lists."""
    return isinstance(saved, list) and all(
        isinstance(a, list)
        and len(a) == 4
        and isinstance(a[0], str)
        and isinstance(a[1], str)
        and a[1] != ""
        and (a[2] is None or isinstance(a[2], str))
        and isinstance(a[3], int | float)
        and not isinstance(a[3], bool)
        for a in saved
    )


def _digest(tensors: StateArrays) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        array = np.ascontiguousarray(tensors[key])
        h.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's string metadata (its documented layout: an 8-byte
    little-endian length, then that many bytes of JSON with a ``__metadata__`` entry)."""
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + n]).get("__metadata__", {})
    if not isinstance(meta, dict):
        raise ValueError("metadata is not a mapping")
    return meta


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError as exc:  # a read-only state dir: the file is refused by age later anyway
        log.warning("snapshot_not_removed", error=str(exc), path=str(path))
