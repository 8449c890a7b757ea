"""What the open alerts cost the event loop (docs/alerts.md, "Open alerts").

``PYTHONPATH=. python bench/open_alerts.py [--open 1000 10000]``: for each count, a ledger
with that many open alerts (half physiological, half technical, one patient each) and a
pipeline serving the shipped model's shape; prints, best of 5, the housekeeping pass's
sweep (every open alert asked of the pipeline, none an orphan: the steady state), a
patient's state message (its JSON), and following a decided raise.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent
from monitor.core.vitals import CLINICAL_VITALS
from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.service.ledger import OpenAlerts
from monitor.service.metrics import Metrics
from monitor.settings import Settings


def events(n: int) -> list[AlertEvent]:
    """`n` raised alerts, one patient each, alternately physiological and technical."""
    out = []
    for i in range(n):
        if i % 2:
            out.append(
                AlertEvent.technical(f"p{i}", "signal_lost", "raised", t=1.0, model_version="m")
            )
        else:
            out.append(
                AlertEvent(
                    kind="physiological",
                    patient_id=f"p{i}",
                    vital="heart_rate",
                    state="raised",
                    severity="high",
                    t=1.0,
                    seq=1,
                    z=9.0,
                    threshold=4.0,
                    model_version="m",
                    reason="spike",
                )
            )
    return out


def best(run: Callable[[], object], repeats: int = 5) -> float:
    """The fastest of `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(pipeline: Pipeline, n: int) -> tuple[float, float, float]:
    """(sweep, state message, following one event) in seconds, with `n` open alerts."""
    ledger = OpenAlerts()
    ledger.apply(events(n))
    # Each is looked up in the pipeline (which holds no such patient) and taken as held:
    # the steady state, where nothing ends.
    sweep = best(lambda: ledger.orphans(lambda e: pipeline.holds(e) or True, 0.0, "m"))
    state = best(lambda: ledger.state("p0"))
    raised = AlertEvent.technical("p0", "artifact", "raised", t=2.0, model_version="m")
    cleared = AlertEvent.technical("p0", "artifact", "cleared", t=3.0, model_version="m")
    follow = best(lambda: ledger.apply([raised, cleared])) / 2
    return sweep, state, follow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    model = ModelInfo(CLINICAL_VITALS, 120, np.ones(len(CLINICAL_VITALS)), "bench")
    pipeline = Pipeline(model, Settings(), Metrics.create(CollectorRegistry()))
    for n in args.open:
        sweep, state, follow = measure(pipeline, n)
        print(
            f"{n:>7,} open alerts: sweep {sweep * 1e3:.2f} ms a housekeeping pass; "
            f"state message {state * 1e6:.1f} us; follow an event {follow * 1e6:.1f} us"
        )


if __name__ == "__main__":
    main()
