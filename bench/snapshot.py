"""Size and write/read time of the patient-state snapshot (docs/reliability.md, restarts).

``PYTHONPATH=. python bench/snapshot.py [--patients 10000]``: fills a pipeline serving the
shipped model's shape (window 120, six vitals) with that many patients, each with a full
window and a scored sample (so the scale and detector hold state too), then writes the
snapshot (with its fsync) and restores it into a fresh pipeline, best of 3 each; and the
part of a checkpoint that runs on the event loop (copying the state out), best of 3.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.core.vitals import CLINICAL_VITALS
from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.service.metrics import Metrics
from monitor.service.snapshot import export_snapshot, read_snapshot, restore, write_snapshot
from monitor.settings import Settings

WINDOW = 120
SIGMA = np.array([5.0, 1.0, 2.0, 8.0, 6.0, 0.3])


def pipeline(patients: int) -> Pipeline:
    """An empty pipeline with room for `patients`."""
    model = ModelInfo(CLINICAL_VITALS, WINDOW, SIGMA, "bench")
    settings = Settings(window={"max_patients": patients})
    return Pipeline(model, settings, Metrics.create(CollectorRegistry()))


def filled(patients: int) -> Pipeline:
    """A pipeline whose every patient has a full window of noise and one scored sample.

    The windows are filled through `import_state` (a push per sample would take a minute
    here); the scale and the detector learn their state by scoring one sample.
    """
    p = pipeline(patients)
    rng = np.random.default_rng(0)
    ids = [f"patient-{i:05d}" for i in range(patients)]
    rows = (rng.normal(size=(patients, WINDOW, 6)) * SIGMA + 80.0).astype(np.float32)
    per_patient = np.ones(patients)
    p.windows.import_state(
        ids,
        {
            "rows": rows,
            "count": np.full(patients, WINDOW, dtype=np.int64),
            "last_seq": np.full(patients, WINDOW, dtype=np.int64),
            "last_t": per_patient * WINDOW,
            "last_seen": per_patient * WINDOW,
            "last_dt": per_patient,
            "lead": np.zeros(patients),
            "lead_n": np.zeros(patients, dtype=np.int64),
            "off": np.zeros(patients, dtype=np.int64),
        },
    )
    z = p.scale.z_batch(ids, rows, rng.normal(size=(patients, 6)))
    zeros = np.zeros((patients, 6))
    p.detector.update_many(ids, z, [float(WINDOW)] * patients, [WINDOW] * patients, zeros, zeros)
    return p


def main() -> None:
    """Print the snapshot's size and its best write and read+restore times."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=10_000)
    args = parser.parse_args()
    n = args.patients
    t0 = time.perf_counter()
    source = filled(n)
    print(f"filled {n} patients in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "patients.snapshot"
        writes = [write_snapshot(path, source, 0.0) for _ in range(3)]
        exports = []
        for _ in range(3):  # a checkpoint's part on the event loop
            t0 = time.perf_counter()
            export_snapshot(source, 0.0)
            exports.append(time.perf_counter() - t0)
        reads = []
        for _ in range(3):
            target = pipeline(n)
            t0 = time.perf_counter()
            header, tensors = read_snapshot(path, target, 1.0, 300.0)
            restored, _ = restore(target, header, tensors, 1.0)
            reads.append(time.perf_counter() - t0)
            assert restored == n == len(target.windows) == len(target.detector)
    size = writes[0].size_bytes
    print(f"snapshot of {n} patients: {size / 1e6:.1f} MB ({size / n / 1e3:.2f} kB a patient)")
    print(f"write (export, checksum, fsync, rename): best {min(w.seconds for w in writes):.3f} s")
    print(f"read (read, checksum, checks, restore): best {min(reads):.3f} s")
    print(f"checkpoint on the event loop (export, copies): best {min(exports):.4f} s")


if __name__ == "__main__":
    main()
