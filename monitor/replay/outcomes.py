"""What became of every received sample in an offline run, and a warning when most was not
scored.

The counts are the daemon's own `monitor_messages_total{outcome}` (docs/metrics.md), one per
sample of a decoded message and one per refused payload, with `invalid` split by its reason
(`monitor_invalid_messages_total{reason}`): ``missing_vital`` says more than ``invalid``. The
reasons and the outcomes are distinct names, so one flat mapping holds both.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter

#: A run warns when more than this share of received samples was not scored.
UNSCORED_WARN_SHARE = 0.2

#: Reasons named in the warning line.
TOP_REASONS = 3


def _by_label(counter: Counter, label: str) -> dict[str, int]:
    """A labelled counter's values by label value (its `_total` samples)."""
    return {
        sample.labels[label]: int(sample.value)
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


def outcome_counts(messages: Counter, invalid: Counter) -> dict[str, int]:
    """Samples by outcome, `invalid` replaced by its reasons; zero counts left out.

    Args:
        messages: `monitor_messages_total{outcome}`.
        invalid: `monitor_invalid_messages_total{reason}`.

    Returns:
        Outcome or reason -> samples, ``scored`` first, then the largest first (ties by name).
    """
    counts = _by_label(messages, "outcome")
    counts.pop("invalid", None)
    counts.update(_by_label(invalid, "reason"))
    kept = {name: n for name, n in counts.items() if n}
    return dict(sorted(kept.items(), key=lambda item: (item[0] != "scored", -item[1], item[0])))


def _share(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f} %"


def format_outcomes(counts: Mapping[str, int]) -> str:
    """One line: every outcome with its count and share of the samples received."""
    total = sum(counts.values())
    if not total:
        return "outcomes: no samples received"
    parts = [f"{name} {n:,} ({_share(n, total)})" for name, n in counts.items()]
    return f"outcomes of {total:,} samples received: " + ", ".join(parts)


def unscored_warning(counts: Mapping[str, int], share: float = UNSCORED_WARN_SHARE) -> str | None:
    """A WARNING line when more than `share` of the samples (or all of them) was not scored.

    Names the `TOP_REASONS` largest outcomes other than ``scored``; None when the run scored
    enough.
    """
    total = sum(counts.values())
    if not total:
        return "WARNING: no samples were received: nothing was scored"
    unscored = total - counts.get("scored", 0)
    if unscored == 0 or (unscored <= share * total and unscored < total):
        return None
    reasons = [(name, n) for name, n in counts.items() if name != "scored"][:TOP_REASONS]
    named = ", ".join(f"{name} {n:,} ({_share(n, total)})" for name, n in reasons)
    return (
        f"WARNING: {unscored:,} of {total:,} samples received ({_share(unscored, total)}) "
        f"were not scored; top reasons: {named}"
    )


def format_gains(gains: Mapping[str, float], rhythm: Mapping[str, str] | None = None) -> str:
    """Each feature's alarm gain, e.g. ``alarm gains: heart_rate x1.00 ...``; then, for a
    model with beat waveforms, a second line naming them and how their ectopic beats are
    told (`Pipeline.rhythm`; docs/detection.md, "Rhythm")."""
    line = "alarm gains: " + " ".join(f"{name} x{g:.2f}" for name, g in gains.items())
    if rhythm:
        beats = ", ".join(f"{name} ({how})" for name, how in rhythm.items())
        line += f"\nectopic beats raise on: {beats}"
    return line
