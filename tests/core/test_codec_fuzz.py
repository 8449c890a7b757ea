"""Property tests: the codec never raises and never lets a non-finite value through."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from monitor.core import codec
from monitor.core.codec import (
    CodecLimits,
    Decoded,
    Rejection,
    SingleFields,
    SingleFieldsJson,
    decode,
)
from monitor.core.schema import MESSAGE_ADAPTER
from monitor.core.types import REJECT_REASONS
from monitor.core.vitals import CLINICAL_VITALS, VITALS
from tests.support.ingest import decode_one

NOW = 1_764_000_000.0
KEYS = ["v", "patient_id", "t", "seq", "vitals", "samples", *CLINICAL_VITALS, "glucose"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([NOW, NOW - 1.0, 97.0, 0.0, 1, "p0001", "$SYS", "a/b", "\x00"])
    | st.text(max_size=20)
)
json_ish = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)
valid_vitals = st.fixed_dictionaries(
    {name: st.floats(allow_nan=True, allow_infinity=True) | scalars for name in CLINICAL_VITALS}
)
near_valid = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 2, True, "1"]),
        "patient_id": st.sampled_from(["p0001", "p0001", "p+1", "", "x" * 70]) | st.text(),
        "t": st.sampled_from([NOW, NOW - 2.0]) | scalars,
        "seq": st.integers(min_value=-2, max_value=2**64) | scalars,
        "vitals": valid_vitals | json_ish,
    }
)
near_block = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "patient_id": st.just("p0001"),
        "samples": st.lists(
            st.fixed_dictionaries(
                {"t": st.just(NOW), "seq": st.integers(0, 9), "vitals": valid_vitals}
            ),
            max_size=4,
        )
        | json_ish,
    }
)
# json.dumps writes NaN/Infinity literals; the replacement adds overflowing literals too.
payloads = st.binary(max_size=300) | (json_ish | near_valid | near_block).map(
    lambda obj: json.dumps(obj).replace("Infinity", "1e309", 1).encode()
)


def check(payload: bytes) -> None:
    result = decode_one(
        payload,
        topic_patient_id="p0001",
        features=CLINICAL_VITALS,
        now=NOW,
        limits=CodecLimits(max_bytes=4096),
    )
    if isinstance(result, Decoded):
        MESSAGE_ADAPTER.validate_json(payload)  # accepted means valid per the schema
        assert result.patient_id == "p0001"
        for sample in result.samples:
            assert np.isfinite(sample.values).all()
            assert np.isfinite(sample.t)
    else:
        assert isinstance(result, Rejection)
        assert result.reason in REJECT_REASONS
        assert len(result.detail) <= 160
        assert result.detail.isprintable()


@given(payloads)
def test_decode_never_raises_and_never_passes_non_finite(payload: bytes) -> None:
    """Arbitrary bytes and JSON-ish objects give Decoded (all finite) or a known Rejection."""
    check(payload)


@pytest.mark.slow
@settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads)
def test_decode_fuzz_100k(payload: bytes) -> None:
    """The same property over 100,000 generated payloads (issue 7 item 9)."""
    check(payload)


def _valid(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "t": st.floats(NOW - 100, NOW),
                "seq": st.integers(0, 2**40),
                "vitals": st.fixed_dictionaries(
                    {
                        name: st.floats(VITALS[name].low, VITALS[name].high)
                        for name in CLINICAL_VITALS
                    }
                ),
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_valid_blocks_round_trip(samples: list[dict[str, Any]]) -> None:
    """Every valid block decodes to exactly its samples' times, seqs and values."""
    result = decode_one(
        _valid({"v": 1, "patient_id": "p0001", "samples": samples}),
        topic_patient_id="p0001",
        features=CLINICAL_VITALS,
        now=NOW,
    )
    assert isinstance(result, Decoded)
    assert [(s.t, s.seq) for s in result.samples] == [(x["t"], x["seq"]) for x in samples]
    expected = [[x["vitals"][n] for n in CLINICAL_VITALS] for x in samples]
    assert [s.values.tolist() for s in result.samples] == expected


def _plain(result: Decoded | Rejection) -> tuple[Any, ...]:
    """A comparable form: arrays as lists of floats, and their dtype."""
    if isinstance(result, Rejection):
        return ("rejection", result)
    return (
        "decoded",
        result.patient_id,
        [
            (s.t, s.seq, s.values.dtype.str, [None if v != v else v for v in s.values.tolist()])
            for s in result.samples
        ],
    )


valid_single = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "patient_id": st.sampled_from(["p0001", "p0002"]),
        "t": st.sampled_from([NOW, NOW - 2.0, NOW + 4.0, NOW + 6.0, NOW - 90_000.0]),
        "seq": st.integers(0, 2**40),
        "vitals": st.fixed_dictionaries(
            {
                name: st.floats(VITALS[name].low - 1, VITALS[name].high + 1)
                for name in CLINICAL_VITALS
            }
        ),
    }
).map(_valid)


# A device's partial vital set: any subset of the clinical vitals (none, too), a vital it
# does not measure sometimes given as null.
partial_single = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "patient_id": st.sampled_from(["p0001", "p0002"]),
        "t": st.sampled_from([NOW, NOW + 6.0]),
        "seq": st.integers(0, 2**40),
        "vitals": st.dictionaries(
            st.sampled_from(CLINICAL_VITALS),
            st.one_of(st.floats(20.0, 120.0), st.none()),
            max_size=4,
        ),
    }
).map(_valid)

# Payloads with a topic's patient and a receive time each, and the model's features.
payload_batches = st.lists(
    st.tuples(
        payloads | valid_single | valid_single | partial_single,
        st.sampled_from(["p0001", "p0002", None]),
        st.sampled_from([NOW, NOW + 1.5, NOW - 3.0]),
    ),
    max_size=12,
)
feature_sets = st.sampled_from([CLINICAL_VITALS, ("spo2", "heart_rate"), ("temperature",)])


_EMBEDDED: TypeAdapter[SingleFields] = TypeAdapter(SingleFieldsJson)


def _embedded(payload: bytes, max_bytes: int) -> SingleFields | None:
    """What a recording's block reader hands over: the payload validated as JSON text
    inside its line, for a payload within the size limit; else None."""
    if len(payload) > max_bytes:
        return None
    try:
        return _EMBEDDED.validate_python(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValidationError):
        return None


@given(payload_batches, feature_sets, st.booleans())
def test_a_payloads_verdict_does_not_depend_on_its_batch(
    items: list[tuple[bytes, str | None, float]], features: tuple[str, ...], partial: bool
) -> None:
    """A batch decodes, element for element, to what each payload decodes to alone (a
    batch of one: values, dtype, reasons and details), whatever the mix of valid, invalid
    and borderline payloads (the columns and the payload-by-payload path inside `decode`
    must agree); so does a batch given messages validated ahead (`SingleFieldsJson`, as
    `read_blocks` does), whether every one is plain or not; with `partial` (a model with an
    observed mask) also for messages carrying a subset of the features."""
    limits = CodecLimits(max_bytes=4096, partial=partial)
    payloads, pids, nows = [p for p, _, _ in items], [i[1] for i in items], [i[2] for i in items]
    one = [
        _plain(decode_one(p, topic_patient_id=pid, features=features, now=now, limits=limits))
        for p, pid, now in items
    ]
    many = decode(payloads, pids, nows, features=features, limits=limits).results()
    assert [_plain(r) for r in many] == one
    validated = [_embedded(p, limits.max_bytes) for p in payloads]
    columns = decode(payloads, pids, nows, features=features, limits=limits, validated=validated)
    assert [_plain(r) for r in columns.results()] == one


@pytest.mark.parametrize(
    ("odd", "vitals", "topic"),
    [
        (None, {}, "p0002"),
        (7, {"glucose": 5.0}, "p0001"),  # an unknown vital
        (7, {"spo2": None}, "p0001"),  # a feature missing
        (7, {}, "p0002"),  # another patient's topic
        (7, {}, None),  # a topic without a patient
    ],
)
def test_a_block_of_validated_messages_decodes_whole_or_as_decode_does(
    odd: int | None, vitals: dict[str, Any], topic: str | None
) -> None:
    """The common block (all validated, all plain, topics matching) is decoded whole in
    columns; with one odd message, each decodes as it decodes alone."""
    bodies = [
        {"v": 1, "patient_id": f"p000{i % 3}", "t": NOW - i, "seq": i,
         "vitals": {name: VITALS[name].low + 1.0 for name in CLINICAL_VITALS}}
        for i in range(20)
    ]  # fmt: skip
    pids: list[str | None] = [f"p000{i % 3}" for i in range(20)]
    if odd is not None:
        merged = bodies[odd]["vitals"] | vitals
        bodies[odd]["vitals"] = {k: v for k, v in merged.items() if v is not None}
        pids[odd] = topic
    payloads = [json.dumps(b).encode() for b in bodies]
    columns = decode(
        payloads, pids, [NOW] * 20, features=CLINICAL_VITALS,
        validated=[_embedded(p, 4096) for p in payloads],
    )  # fmt: skip
    expected = [
        _plain(decode_one(p, topic_patient_id=pid, features=CLINICAL_VITALS, now=NOW))
        for p, pid in zip(payloads, pids, strict=True)
    ]
    assert [_plain(r) for r in columns.results()] == expected
    if odd is None:
        assert columns.index == list(range(20))
        assert columns.seq == list(range(20))
        assert not columns.rest
    elif topic is not None:
        assert list(columns.rest) == [odd]
        assert expected[odd][0] == "rejection"


@given(
    st.lists(payloads | valid_single | partial_single | partial_single, max_size=8),
    feature_sets,
    st.booleans(),
)
def test_the_columns_agree_with_the_message_by_message_path(
    batch: list[bytes], features: tuple[str, ...], partial: bool
) -> None:
    """Whatever `decode` takes in columns (nulls among them: a vital not measured) decodes
    to what `_decode_one`, the schema models' path, gives the same payload: the same
    values (NaN for a null), reasons and details."""
    limits = CodecLimits(max_bytes=4096, partial=partial)
    nows = [NOW] * len(batch)
    pids: list[str | None] = ["p0001"] * len(batch)
    columns = decode(batch, pids, nows, features=features, limits=limits)
    each = [
        codec._decode_one(p, topic_patient_id="p0001", features=features, now=NOW, limits=limits)
        for p in batch
    ]
    assert [_plain(r) for r in columns.results()] == [_plain(r) for r in each]
