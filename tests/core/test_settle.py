"""Settling (monitor/core/settle.py): a value back after a silence widens its vital's scale,
which settles to 1 over the vital's next values."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.settle import (
    GAP_SETTLE_VALUES,
    SETTLE_VALUES,
    Settling,
    first_divisor,
    starts,
)
from monitor.core.slots import SlotMap

NAN = float("nan")


def _divide(
    settle: Settling,
    ids: list[str],
    observed: np.ndarray,
    first: np.ndarray | None,
    length: np.ndarray | float = SETTLE_VALUES,
) -> np.ndarray:
    divisor = settle.divide(settle.patients.assign(ids), observed, first, length)
    return np.ones(observed.shape) if divisor is None else divisor


def _line(widen: float, values: int, length: int = SETTLE_VALUES) -> np.ndarray:
    """The divisors of a settling from `widen` over `length`: the first value's, then
    `values` more."""
    k = np.arange(values + 1)
    return 1.0 + (widen - 1.0) * np.clip(1.0 - k / length, 0.0, 1.0)


def test_first_divisor_is_the_square_root_of_the_silence_capped() -> None:
    np.testing.assert_allclose(first_divisor(np.array([4.0, 9.0, 100.0, np.inf])), [2, 3, 5, 5])
    assert float(first_divisor(np.array([100.0]), 2.0)[0]) == 2.0


def test_a_settling_starts_from_the_larger_divisor_with_its_cause_s_length() -> None:
    """After the patient's silence a row settles over `GAP_SETTLE_VALUES`; a vital back
    from being lost over `SETTLE_VALUES`, in a row after a silence or not; the larger
    divisor of the two starts."""
    gap = np.array([[3.0], [1.0], [4.0]])
    back = np.array([[1.0, 1.0], [5.0, 1.0], [2.0, 1.0]])
    first, length = starts(gap, back)
    np.testing.assert_array_equal(first, [[3.0, 3.0], [5.0, 1.0], [4.0, 4.0]])
    np.testing.assert_array_equal(
        length, [[GAP_SETTLE_VALUES] * 2, [SETTLE_VALUES, GAP_SETTLE_VALUES],
                 [SETTLE_VALUES, GAP_SETTLE_VALUES]]
    )  # fmt: skip
    assert starts(gap, np.ones((3, 2))) == (gap, GAP_SETTLE_VALUES)
    assert starts(gap, None) == (gap, GAP_SETTLE_VALUES)
    assert starts(None, back) == (back, SETTLE_VALUES)
    assert starts(None, None) == (None, GAP_SETTLE_VALUES)
    assert GAP_SETTLE_VALUES < SETTLE_VALUES


def test_each_vital_settles_over_its_own_length() -> None:
    """Heart rate after a silence (over 10 values) and SpO2 back from being lost (over 30)
    in one row: each line ends at its own length."""
    settle = Settling(2)
    seen = np.ones((1, 2), dtype=bool)
    got = [_divide(settle, ["p"], seen, np.array([[3.0, 5.0]]), np.array([[10.0, 30.0]]))[0]]
    got += [_divide(settle, ["p"], seen, None)[0] for _ in range(40)]
    g = np.array(got)
    np.testing.assert_allclose(g[:, 0], _line(3.0, 40, 10))
    np.testing.assert_allclose(g[:, 1], _line(5.0, 40, 30))
    assert g[10, 0] == 1.0
    assert g[29, 1] > 1.0
    assert g[30, 1] == 1.0


def test_a_value_after_a_silence_settles_over_the_vital_s_next_values() -> None:
    """A sample after a 9-interval silence (divisor 3 on both vitals), one row at a time:
    each vital's divisor falls in a straight line to 1 over its next `SETTLE_VALUES`
    values; a row lacking SpO2 does not count for it (its divisor there is 1, and its line
    goes on at its next value); another patient, and the rows before, are never widened."""
    settle = Settling(2)
    rows = 60
    observed = np.ones((rows, 2), dtype=bool)
    observed[15:20, 1] = False  # SpO2 missing from 5 of the settling rows
    got = []
    for i in range(rows):
        first = np.array([[3.0]]) if i == 10 else None
        got.append(_divide(settle, ["p"], observed[i : i + 1], first)[0])
        got.append(_divide(settle, ["q"], observed[i : i + 1], None)[0])
    p, q = np.array(got[0::2]), np.array(got[1::2])
    assert np.all(q == 1.0)
    assert np.all(p[:10] == 1.0)
    np.testing.assert_allclose(p[10 : 11 + SETTLE_VALUES, 0], _line(3.0, SETTLE_VALUES))
    assert np.all(p[11 + SETTLE_VALUES :, 0] == 1.0)
    assert np.all(p[15:20, 1] == 1.0)
    spo2 = np.concatenate([p[10:15, 1], p[20:, 1]])  # its values only
    np.testing.assert_allclose(spo2[: SETTLE_VALUES + 1], _line(3.0, SETTLE_VALUES))
    assert np.all(spo2[SETTLE_VALUES + 1 :] == 1.0)
    assert settle.export_state()[1]["widen"].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_a_new_silence_restarts_the_settling_from_its_own_divisor() -> None:
    """A second silence while the vital settles starts again from the new divisor (not the
    larger, not the product); a smaller first divisor than the one settling replaces it
    too; per vital when `first` is per vital."""
    settle = Settling(2)
    seen = np.ones((1, 2), dtype=bool)
    got = [_divide(settle, ["p"], seen, np.array([[5.0]]))[0]]
    got += [_divide(settle, ["p"], seen, None)[0] for _ in range(4)]
    got.append(_divide(settle, ["p"], seen, np.array([[2.0, 1.0]]))[0])
    got.append(_divide(settle, ["p"], seen, None)[0])
    g = np.array(got)
    np.testing.assert_allclose(g[:5, 0], _line(5.0, 4))
    assert g[5, 0] == 2.0
    assert g[6, 0] == pytest.approx(_line(2.0, 1)[1])
    np.testing.assert_allclose(g[:7, 1], _line(5.0, 6))


def test_a_batch_gives_the_divisors_one_row_at_a_time_gives() -> None:
    """Three patients interleaved, silences starting settlings at various rows (one during
    another's settling, one at a row lacking the vital: no start), vitals missing at
    random: one row at a time, batches of 7 and the whole stream in one batch give the
    same divisors and the same state after."""
    rng = np.random.default_rng(7)
    n = 600
    ids = [("a", "b", "c")[i % 3] for i in range(n)]
    observed = rng.random((n, 2)) > 0.2
    first = np.ones((n, 2))
    length = np.full((n, 2), float(SETTLE_VALUES))
    for row in (4, 40, 41, 95, 130, 160, 400):
        first[row] = rng.uniform(1.5, 5.0, 2)
        length[row] = rng.choice([GAP_SETTLE_VALUES, SETTLE_VALUES], 2)
    first[200, 0] = 4.0
    observed[200, 0] = False
    results = []
    for size in (1, 7, n):
        settle = Settling(2)
        got = [
            _divide(
                settle, ids[i : i + size], observed[i : i + size], first[i : i + size],
                length[i : i + size],
            )
            for i in range(0, n, size)
        ]  # fmt: skip
        results.append((np.concatenate(got), settle.export_state()))
    (one, (ids_one, state_one)), *others = results
    assert np.count_nonzero(one > 1.0) > 100
    for batched, (ids_got, state) in others:
        np.testing.assert_array_equal(batched, one)
        assert ids_got == ids_one
        for name, array in state_one.items():
            np.testing.assert_array_equal(state[name], array)


def test_the_settling_survives_a_snapshot_and_refuses_a_bad_one() -> None:
    """Exported in the middle of a settling, imported into another table: the same
    divisors as uninterrupted. A divisor out of range, a count at or over the settling's
    length, or a patient the table lacks is refused, and nothing changes."""
    seen = np.ones((1, 2), dtype=bool)
    whole = Settling(2)
    expected = [_divide(whole, ["p"], seen, np.array([[4.0]]) if i == 3 else None)[0]
                for i in range(40)]  # fmt: skip
    first = Settling(2)
    for i in range(8):
        _divide(first, ["p"], seen, np.array([[4.0]]) if i == 3 else None)
    ids, arrays = first.export_state()
    assert arrays["widen"].tolist() == [[4.0, 4.0]]
    assert arrays["settled"].tolist() == [[4.0, 4.0]]
    assert arrays["length"].tolist() == [[SETTLE_VALUES] * 2]
    patients = SlotMap()
    patients.assign(["other", *ids])
    restored = Settling(2, patients=patients)
    restored.import_state(ids, arrays)
    later = [_divide(restored, ["p"], seen, None)[0] for _ in range(32)]
    np.testing.assert_array_equal(np.array(later), np.array(expected[8:]))

    fresh = SlotMap()
    fresh.assign(ids)
    target = Settling(2, patients=fresh)
    for bad in ({**arrays, "widen": np.full((1, 2), 0.5)},
                {**arrays, "widen": np.full((1, 2), 6.0)},
                {**arrays, "settled": np.full((1, 2), float(SETTLE_VALUES))},
                {**arrays, "length": np.full((1, 2), 4.0)},
                {**arrays, "length": np.full((1, 2), 0.5)}):  # fmt: skip
        with pytest.raises(ValueError, match="out of range"):
            target.import_state(ids, bad)
    with pytest.raises(ValueError, match="does not hold"):
        target.import_state(["nobody"], arrays)
    with pytest.raises(ValueError, match="shape"):
        target.import_state(ids, {**arrays, "widen": np.ones((1, 3))})
    assert target.export_state()[0] == []


def test_a_slot_given_to_a_new_patient_starts_settled() -> None:
    """A patient released in the middle of a settling; the newcomer in its slot is never
    widened."""
    patients = SlotMap()
    settle = Settling(1, patients=patients)
    seen = np.ones((1, 1), dtype=bool)
    _divide(settle, ["old"], seen, np.array([[5.0]]))
    slot = patients.get("old")
    patients.release("old")
    assert _divide(settle, ["new"], seen, None)[0, 0] == 1.0
    assert patients.get("new") == slot
    with pytest.raises(ValueError, match="need"):
        Settling(0)
