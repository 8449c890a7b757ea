"""The shipped model on a real monitor's numerics: three vitals once a minute."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from monitor.core.schema import encode_sample
from monitor.model.card import ModelCard
from monitor.model.store import default_model_path
from monitor.replay.offline import run_offline
from monitor.replay.recording import Record, RecordingWriter

T0 = 1_700_000_000.0


def test_shipped_model_scores_minute_numerics_with_three_vitals(tmp_path: Path) -> None:
    """HR, SpO2 and respiration once a minute (an ICU monitor's numerics, MIMIC-II style):
    the shipped model, with no extra settings, scores every sample after its warm-up, and
    only the three vitals sent."""
    card = ModelCard.from_json((default_model_path() / "card.json").read_text())
    assert card.observed_mask
    rng = np.random.default_rng(7)
    n = card.window + 60
    recording = tmp_path / "numerics.jsonl"
    with RecordingWriter(recording, source="test") as writer:
        for seq in range(n):
            t = T0 + 60.0 * seq
            vitals = {
                "heart_rate": round(88 + 3 * math.sin(seq / 40) + rng.normal(0, 1.5), 1),
                "spo2": round(min(100.0, 97 + rng.normal(0, 0.7)), 1),
                "resp_rate": round(18 + rng.normal(0, 1.2), 1),
            }
            writer.write(Record("vitals/s00001", encode_sample("s00001", t, seq, vitals), t))
    result = run_offline(recording, default_model_path())
    # The first interval is the stream's rate, not a gap (60 s is over the 1 Hz model's
    # 30 s, but nothing to judge it by yet): every sample after the window's is scored.
    assert result.samples_scored == n - card.window
    assert result.records == n
    for event in result.alerts:
        assert event.vital in (None, "heart_rate", "spo2", "resp_rate")
    # No interval is known after the first sample, so 8 s of silence then is 'signal lost'
    # once; from the second sample on the limit is 8 x 60 s: no flapping afterwards.
    lost = [(a.state, a.t) for a in result.alerts if a.reason == "signal_lost"]
    assert lost == [("raised", T0 + 9.0), ("cleared", T0 + 60.0)]
