"""The simulator's fast encoder: byte-equal to the schema's encoder; the schema's rejections."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from monitor.core.schema import MESSAGE_ADAPTER, VitalsBlock, VitalsMessage, encode_sample
from monitor.core.vitals import CLINICAL_VITALS
from simulators.encode import MessageEncoder


def test_single_is_byte_equal_to_schema_encoder() -> None:
    """Across ordinary, tiny (exponent) and huge values the bytes equal encode_sample's."""
    rng = np.random.default_rng(5)
    enc = MessageEncoder("p0042", CLINICAL_VITALS)
    scales = [1.0, 100.0, 1e-5, 1e-3, 1e17]
    for n in range(2000):
        values = (rng.standard_normal(6) * scales[n % len(scales)]).tolist()
        t = 1.7e9 + n * 0.1
        want = encode_sample("p0042", t, n, dict(zip(CLINICAL_VITALS, values, strict=True)))
        assert enc.single(t, n, values) == want


def test_block_round_trips_through_the_schema() -> None:
    """A block message validates as VitalsBlock and re-serialises to the same bytes."""
    enc = MessageEncoder("p0001", ("heart_rate", "spo2"))
    for tiny in (2.5, 4e-5):
        payload = enc.block([1.5, 2.5, 3.5], [7, 8, 9], [[71.0, 97.0], [72.5, tiny], [70.0, 99.0]])
        msg = MESSAGE_ADAPTER.validate_json(payload)
        assert isinstance(msg, VitalsBlock)
        assert [s.seq for s in msg.samples()] == [7, 8, 9]
        assert msg.samples()[1].vitals == {"heart_rate": 72.5, "spo2": tiny}
        assert MESSAGE_ADAPTER.dump_json(msg, by_alias=True) == payload


def test_single_round_trips() -> None:
    """A single message validates as VitalsMessage with the same fields."""
    payload = MessageEncoder("p0009", ("temperature",)).single(1764000000.1, 3, [36.6])
    msg = MESSAGE_ADAPTER.validate_json(payload)
    assert isinstance(msg, VitalsMessage)
    assert (msg.patient_id, msg.t, msg.seq, msg.vitals) == (
        "p0009",
        1764000000.1,
        3,
        {"temperature": 36.6},
    )


GOOD = {"v": 1, "patient_id": "p0001", "t": 1.7e9, "seq": 1, "vitals": {"heart_rate": 70.0}}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"vitals": {"heart_rate": True}}, "bool as a number"),
        ({"t": "1700000000"}, "string as a number"),
        ({"vitals": {"heart_rate": "NaN"}}, "NaN"),
        # The schema checks a name's form; whether it is known is the codec's registry check.
        ({"vitals": {"Pulse Rate": 70.0}}, "malformed vital name"),
        ({"vitals": {}}, "no vitals"),
        ({"patient_id": "../etc"}, "bad patient id"),
        ({"patient_id": "p" * 65}, "patient id too long"),
        ({"extra": 1}, "extra field"),
        ({"seq": -1}, "negative sequence"),
        ({"v": 2}, "unknown version"),
    ],
)
def test_schema_rejects_bad_fields(change: dict[str, object], why: str) -> None:
    """Each malformed field makes validation fail."""
    text = json.dumps({**GOOD, **change})
    assert MESSAGE_ADAPTER.validate_json(json.dumps(GOOD)).seq == 1
    with pytest.raises(ValidationError):
        MESSAGE_ADAPTER.validate_json(text)


def test_schema_passes_non_finite_vitals_to_the_codec_and_refuses_a_non_finite_time() -> None:
    """NaN, Infinity and 1e309 (which parses to infinity) as a vital's value pass the schema
    as that number, for the codec to judge the one vital (its artifact, tests/core/
    test_codec.py); as the sample time they are refused."""
    assert '"heart_rate": 70.0' in json.dumps(GOOD)
    for literal in ("NaN", "Infinity", "-Infinity", "1e309"):
        text = json.dumps(GOOD).replace('"heart_rate": 70.0', '"heart_rate": ' + literal)
        value = MESSAGE_ADAPTER.validate_json(text).samples()[0].vitals["heart_rate"]
        assert not math.isfinite(value)
        bad_time = json.dumps({**GOOD, "t": 0.5}).replace('"t": 0.5', '"t": ' + literal)
        with pytest.raises(ValidationError):
            MESSAGE_ADAPTER.validate_json(bad_time)
