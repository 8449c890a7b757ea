"""CPU per message of `Pipeline.decode` + `Pipeline.ingest` by batch size (no inference).

The window store stores a batch's plain samples with array operations only from
`monitor.core.windows._VECTOR_MIN` samples on; this measures both policies at each size so
that the threshold can be checked: ``PYTHONPATH=. python bench/ingest_batch.py``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.core import windows
from monitor.core.vitals import CLINICAL_VITALS
from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.service.metrics import Metrics
from monitor.settings import Settings

WINDOW = 120
PATIENTS = 1000


def _run(batch: int, vector_min: int, rounds: int) -> float:
    """Microseconds of CPU per message for `rounds` samples of every patient in batches."""
    model = ModelInfo(CLINICAL_VITALS, WINDOW, np.ones(len(CLINICAL_VITALS)), "bench")
    settings = Settings(batch={"max_pending": 10**7}, window={"max_patients": 2 * PATIENTS})
    pipeline = Pipeline(model, settings, Metrics.create(CollectorRegistry()))
    ids = [f"p{i:04d}" for i in range(PATIENTS)]
    vitals = {"heart_rate": 70.0, "spo2": 97.0, "resp_rate": 14.0, "bp_sys": 120.0,
              "bp_dia": 80.0, "temperature": 36.8}  # fmt: skip
    t0 = 1_700_000_000.0

    def message(pid: str, seq: int) -> bytes:
        body = {"v": 1, "patient_id": pid, "t": t0 + seq, "seq": seq, "vitals": vitals}
        return json.dumps(body).encode()

    def feed(seq: int, size: int) -> None:
        payloads = [message(pid, seq) for pid in ids]
        nows = [t0 + seq + 0.1] * size
        for start in range(0, PATIENTS, size):
            chunk = payloads[start : start + size]
            keys = ids[start : start + size]
            pipeline.ingest(pipeline.decode(keys, chunk, nows[: len(chunk)]), nows[: len(chunk)])
        pipeline.drain_all()

    windows._VECTOR_MIN = 1  # warm every window up fast
    for seq in range(WINDOW + 10):
        feed(seq, PATIENTS)
    windows._VECTOR_MIN = vector_min
    spent = 0.0
    for seq in range(WINDOW + 10, WINDOW + 10 + rounds):
        start = time.process_time()
        feed(seq, batch)
        spent += time.process_time() - start
    return spent / (rounds * PATIENTS) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64, 256])
    args = parser.parse_args()
    for size in args.sizes:
        one = _run(size, 10**9, args.rounds)
        array = _run(size, 1, args.rounds)
        print(f"batch {size:4d}: sample by sample {one:6.2f} us/msg, arrays {array:6.2f} us/msg")


if __name__ == "__main__":
    main()
