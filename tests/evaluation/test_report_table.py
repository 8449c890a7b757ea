"""The terminal table's per-kind and per-magnitude rows count the alerts that found them."""

from __future__ import annotations

from monitor.evaluation.report import format_table
from monitor.evaluation.scoring import evaluate
from tests.evaluation.test_scoring import ALERTS, LABELS


def _row(table: str, title: str, name: str) -> list[str]:
    section = table.split(title, 1)[1]
    return next(line.split() for line in section.splitlines() if line.split()[:1] == [name])


def test_per_kind_and_magnitude_rows_show_the_alerts_that_detected_their_labels() -> None:
    """Spike 1 hit, level shift 2 (both spo2 alerts in its window), drift none; >=4 sigma 4.

    An alert carries no anomaly kind or magnitude, so those rows show no alert total or
    precision ("-"); the per-vital rows keep theirs.
    """
    result = evaluate(ALERTS, LABELS, patient_hours=3.0)
    table = format_table(result)
    # name, labels, found, recall, delay(n), hits, alerts, prec
    assert _row(table, "per kind", "spike")[5:] == ["1", "-", "-"]
    assert _row(table, "per kind", "level_shift")[5:] == ["2", "-", "-"]
    assert _row(table, "per kind", "drift")[5:] == ["0", "-", "-"]
    assert _row(table, "per magnitude", ">=4")[5:] == ["4", "-", "-"]
    assert _row(table, "per vital", "spo2")[5:] == ["2", "3", "0.667"]
    j = result.to_json()
    assert (j["per_kind"]["level_shift"]["hits"], j["per_kind"]["level_shift"]["alerts"]) == (
        2,
        None,
    )
