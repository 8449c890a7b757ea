"""Checkpoints: the patient-state snapshot written while serving, off the event loop, so
that a daemon killed without a graceful stop restarts from recent state
(`monitor.service.snapshot.Checkpoints`; end to end: tests/reliability/test_crash_restart.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from monitor.service.snapshot import (
    Checkpoints,
    export_snapshot,
    read_snapshot,
    store_snapshot,
)
from monitor.settings import Settings
from tests.service.test_snapshot_file import T0, make_pipeline, step


def test_a_checkpoint_is_due_every_interval_and_at_once_after_a_restore(tmp_path: Path) -> None:
    """Due one interval after the start, or at once when a snapshot was restored (reading
    it consumed the file); never with interval 0."""
    later = Checkpoints(tmp_path / "a", 5.0)
    later.start(100.0, restored=False)
    assert not later.due(104.9)
    assert later.due(105.0)
    at_once = Checkpoints(tmp_path / "b", 5.0)
    at_once.start(100.0, restored=True)
    assert at_once.due(100.0)
    never = Checkpoints(tmp_path / "c", 0.0)
    never.start(100.0, restored=True)
    assert not never.due(1e12)


def test_a_checkpoint_writes_every_patient_and_the_next_is_one_interval_on(
    tmp_path: Path,
) -> None:
    """A checkpoint copies the state on the loop and writes it on a thread: the file holds
    both patients, the result is counted, and the next is due one interval later."""
    pipeline = make_pipeline()
    for seq in range(1, 12):
        step(pipeline, ["p0", "p1"], seq)
    path = tmp_path / "patients.snapshot"
    results: list[str] = []
    checkpoints = Checkpoints(path, 2.0, results.append)
    checkpoints.start(T0, restored=False)

    async def run() -> None:
        assert checkpoints.due(T0 + 2.0)
        checkpoints.write(pipeline, T0 + 2.0, clock=lambda: T0 + 12)
        assert not checkpoints.due(T0 + 2.0)  # being written
        await checkpoints.wait()

    asyncio.run(run())
    assert results == ["ok"]
    header, _ = read_snapshot(path, make_pipeline(), T0 + 13, 300.0)
    assert sorted(header["patients"]) == ["p0", "p1"]
    assert not checkpoints.due(T0 + 3.9)
    assert checkpoints.due(T0 + 4.0)


def test_an_older_export_written_last_never_replaces_a_newer_one(tmp_path: Path) -> None:
    """A checkpoint's thread that finishes after the final write at shutdown (a later
    export) leaves the final one in place."""
    pipeline = make_pipeline()
    step(pipeline, ["p0"], 1)
    older = export_snapshot(pipeline, T0 + 1)
    step(pipeline, ["p0", "p1"], 2)
    newer = export_snapshot(pipeline, T0 + 2)
    path = tmp_path / "patients.snapshot"
    assert store_snapshot(path, newer).size_bytes > 0
    assert store_snapshot(path, older).size_bytes == 0
    header, _ = read_snapshot(path, make_pipeline(), T0 + 3, 300.0)
    assert sorted(header["patients"]) == ["p0", "p1"]


def test_failing_checkpoints_are_counted_and_logged_once_until_one_succeeds(
    tmp_path: Path,
) -> None:
    """A state folder that cannot be written (here a file in its place): each failure is
    counted, one `snapshot_write_failed` line for the run of failures, and one
    `snapshot_write_recovered` when a write succeeds again."""
    pipeline = make_pipeline()
    step(pipeline, ["p0"], 1)
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    results: list[str] = []
    checkpoints = Checkpoints(blocker / "patients.snapshot", 1.0, results.append)
    checkpoints.start(T0, restored=True)

    async def one(now: float) -> None:
        checkpoints.write(pipeline, now)
        await checkpoints.wait()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(one(T0))
        asyncio.run(one(T0 + 1))
        blocker.unlink()
        asyncio.run(one(T0 + 2))
    assert results == ["failed", "failed", "ok"]
    assert [e["event"] for e in logs] == ["snapshot_write_failed", "snapshot_write_recovered"]
    assert (blocker / "patients.snapshot").exists()


def test_a_checkpoint_interval_a_restart_would_refuse_is_a_settings_error() -> None:
    """A checkpoint older than `state.snapshot_max_age_s` would be refused at the restart."""
    with pytest.raises(ValidationError, match="checkpoint_interval_s"):
        Settings(state={"checkpoint_interval_s": 300.0, "snapshot_max_age_s": 300.0})
    assert Settings(state={"checkpoint_interval_s": 0.0}).state.checkpoint_interval_s == 0.0
