"""The codec: valid messages decode to feature-ordered arrays; every bad input has a reason."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from monitor.core import codec
from monitor.core.codec import CodecLimits, Decoded, Rejection, clip
from monitor.core.types import REJECT_REASONS
from monitor.core.vitals import CLINICAL_VITALS
from tests.support.ingest import decode_one

NOW = 1_764_000_000.0
FEATURES = CLINICAL_VITALS
VITALS = {
    "heart_rate": 71.5,
    "spo2": 97.25,
    "resp_rate": 14.0,
    "bp_sys": 120.0,
    "bp_dia": 80.5,
    "temperature": 36.75,
}


def single(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"v": 1, "patient_id": "p0001", "t": NOW, "seq": 7}
    message["vitals"] = dict(VITALS)
    message.update(changes)
    return message


def block(n: int = 3, **changes: Any) -> dict[str, Any]:
    samples = [{"t": NOW - n + i, "seq": 10 + i, "vitals": dict(VITALS)} for i in range(n)]
    message: dict[str, Any] = {"v": 1, "patient_id": "p0001", "samples": samples}
    message.update(changes)
    return message


def run(payload: bytes | dict[str, Any], topic: str | None = "p0001", **limits: Any) -> Any:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return decode_one(
        raw, topic_patient_id=topic, features=FEATURES, now=NOW, limits=CodecLimits(**limits)
    )


def test_single_sample_decodes_in_feature_order() -> None:
    """A valid single message yields one sample with values in `features` order."""
    result = run(single())
    assert isinstance(result, Decoded)
    assert result.patient_id == "p0001"
    assert [(s.t, s.seq) for s in result.samples] == [(NOW, 7)]
    assert result.samples[0].values.tolist() == [71.5, 97.25, 14.0, 120.0, 80.5, 36.75]


def test_feature_subset_ignores_other_known_vitals() -> None:
    """Known vitals outside `features` are ignored; order follows `features`."""
    raw = json.dumps(single()).encode()
    result = decode_one(raw, topic_patient_id=None, features=["spo2", "heart_rate"], now=NOW)
    assert isinstance(result, Decoded)
    assert result.samples[0].values.tolist() == [97.25, 71.5]


def test_block_decodes_every_sample_in_message_order() -> None:
    """A block yields its samples in order, each with its own time, seq and values."""
    message = block(3)
    message["samples"][2]["vitals"]["heart_rate"] = 90.0
    result = run(message)
    assert isinstance(result, Decoded)
    assert [(s.t, s.seq) for s in result.samples] == [(NOW - 3, 10), (NOW - 2, 11), (NOW - 1, 12)]
    assert [s.values[0] for s in result.samples] == [71.5, 71.5, 90.0]


def test_single_with_patient_id_named_samples_is_not_mistaken_for_a_block() -> None:
    """The block hint is only a hint: a single message whose id is 'samples' decodes."""
    result = run(single(patient_id="samples"), topic="samples")
    assert isinstance(result, Decoded)
    assert result.patient_id == "samples"


def test_block_with_escaped_key_decodes() -> None:
    """A block whose 'samples' key is written with a JSON escape is still a block."""
    raw = json.dumps(block(2)).replace('"samples"', '"sampl\\u0065s"').encode()
    result = run(raw)
    assert isinstance(result, Decoded)
    assert len(result.samples) == 2


def test_topic_none_skips_the_topic_check() -> None:
    """Without a topic id any allowlisted payload id is accepted."""
    result = run(single(patient_id="ward3.bed-12"), topic=None)
    assert isinstance(result, Decoded)
    assert result.patient_id == "ward3.bed-12"


BAD_IDS = [
    "p+1",
    "p#1",
    "ward/p1",
    "p\x001",
    "$SYS",
    "p1\n",
    "p\x1b[31m1",
    "../etc",
    "",
    "x" * 65,
    "-p1",
]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe\x00", "bad_json"),
        (b"[" * 5000 + b"]" * 5000, "bad_json"),
        (b"", "bad_json"),
        (b"[1, 2]", "bad_schema"),
        (b'"text"', "bad_schema"),
        (single(v=2), "bad_schema"),
        (single(extra=1), "bad_schema"),
        ({k: v for k, v in single().items() if k != "seq"}, "bad_schema"),
        ({k: v for k, v in single().items() if k != "t"}, "bad_schema"),
        (single(seq=True), "bad_schema"),
        (single(seq="7"), "bad_schema"),
        (single(seq=-1), "bad_schema"),
        (single(seq=7.0), "bad_schema"),
        (single(t="2025-01-01"), "bad_schema"),
        (single(t=False), "bad_schema"),
        (single(vitals={**VITALS, "heart_rate": True}), "bad_schema"),
        (single(vitals={**VITALS, "heart_rate": "71"}), "bad_schema"),
        (single(vitals={**VITALS, "heart_rate": None}), "missing_vital"),
        (single(vitals={"heart_rate": None}), "missing_vital"),
        (single(vitals={**VITALS, "heart_rate": [71]}), "bad_schema"),
        (single(vitals=[1, 2, 3]), "bad_schema"),
        (block(samples=[]), "bad_schema"),
        (block(samples=[[0] * 20000]), "bad_schema"),
        (single(vitals={**VITALS, "glucose": 5.0}), "unknown_vital"),
        (single(vitals={**VITALS, "x" * 5000: 5.0}), "unknown_vital"),
        (single(vitals={k: v for k, v in VITALS.items() if k != "spo2"}), "missing_vital"),
        (single(vitals={}), "missing_vital"),
        (single(patient_id="p0002"), "topic_mismatch"),
        (single(t=NOW + 5.5), "clock_skew"),
        (single(t=NOW - 24 * 3600 - 1), "clock_skew"),
        (single(vitals={**VITALS, "heart_rate": 0.0}), "artifact"),
        (single(vitals={**VITALS, "heart_rate": 400.0}), "artifact"),
        (single(vitals={**VITALS, "spo2": 100.5}), "artifact"),
        (single(vitals={**VITALS, "temperature": -5.0}), "artifact"),
        *[(single(patient_id=bad), "bad_patient_id") for bad in BAD_IDS],
    ],
)
def test_rejection_reasons(payload: bytes | dict[str, Any], reason: str) -> None:
    """Each malformed, unsafe or implausible message is refused with its named reason."""
    result = run(payload)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.reason in REJECT_REASONS
    assert 0 < len(result.detail) <= 160
    assert result.detail.isprintable()


NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e309", b"1E400"]


def _with_literal(message: dict[str, Any], literal: bytes) -> bytes:
    """The message with its spo2 value 0.5 written as `literal` (as Python's json writes
    NaN and Infinity; 1e309 overflows to Infinity in every JSON parser)."""
    raw = json.dumps(message).encode()
    assert raw.count(b'"spo2": 0.5') >= 1
    return raw.replace(b'"spo2": 0.5', b'"spo2": ' + literal)


@pytest.mark.parametrize("literal", NON_FINITE)
def test_a_non_finite_vital_is_that_vitals_artifact(literal: bytes) -> None:
    """NaN, +-Infinity and overflowing literals (1e309) as a vital's value are a failed
    reading of that vital: a model that needs every vital refuses the sample as its
    artifact, naming patient and vital; one with the observed mask drops the vital (never
    a NaN taken for "not sent") and keeps the others. Before, `non_finite` refused the
    whole message and every other vital in it."""
    raw = _with_literal(single(vitals={**VITALS, "spo2": 0.5}), literal)
    full = run(raw)
    assert isinstance(full, Rejection)
    assert (full.reason, full.patient_id, full.vital) == ("artifact", "p0001", "spo2")
    assert "not a finite number" in full.detail
    assert full.detail.isprintable()
    partial = run(raw, partial=True)
    assert isinstance(partial, Decoded)
    assert partial.artifacts == ("spo2",)
    values = partial.samples[0].values
    assert np.isnan(values[FEATURES.index("spo2")])
    expected = [v for k, v in VITALS.items() if k != "spo2"]
    assert values[np.arange(len(FEATURES)) != FEATURES.index("spo2")].tolist() == expected


def test_a_non_finite_vital_beside_plain_messages_in_one_batch() -> None:
    """In a batch the plain messages take the columns and the NaN one is decoded on its
    own: its vital an artifact, not a vital missing from the sample."""
    plain = json.dumps(single()).encode()
    nan = _with_literal(single(vitals={**VITALS, "spo2": 0.5}, seq=8), b"NaN")
    got = codec.decode(
        [plain, nan, plain], ["p0001"] * 3, [NOW] * 3, features=FEATURES,
        limits=CodecLimits(partial=True),
    ).results()  # fmt: skip
    assert [type(r) for r in got] == [Decoded, Decoded, Decoded]
    assert [r.artifacts for r in got if isinstance(r, Decoded)] == [(), ("spo2",), ()]


def test_a_non_finite_vital_in_a_block() -> None:
    """In a block: the sample keeps its other vitals under the observed mask; a model that
    needs every vital refuses the block (all-or-nothing), naming the vital."""
    message = block(3)
    message["samples"][1]["vitals"]["spo2"] = 0.5
    raw = _with_literal(message, b"Infinity")
    got = run(raw, partial=True)
    assert isinstance(got, Decoded)
    assert got.artifacts == ("spo2",)
    spo2 = np.array([s.values for s in got.samples])[:, FEATURES.index("spo2")]
    assert np.isnan(spo2).tolist() == [False, True, False]
    refused = run(raw)
    assert (refused.reason, refused.vital, refused.n_samples) == ("artifact", "spo2", 3)


def test_only_non_finite_vitals_are_an_artifact() -> None:
    """Nothing finite left: the sample is refused as the first vital's artifact."""
    raw = _with_literal(single(vitals={"spo2": 0.5}), b"NaN")
    result = run(raw, partial=True)
    assert (result.reason, result.patient_id, result.vital) == ("artifact", "p0001", "spo2")


@pytest.mark.parametrize("literal", [b"NaN", b"1e309"])
def test_non_finite_time_is_refused(literal: bytes) -> None:
    """A non-finite sample time never reaches the clock check or the window."""
    raw = json.dumps(single(t=0.5)).encode().replace(b'"t": 0.5', b'"t": ' + literal)
    result = run(raw)
    assert isinstance(result, Rejection)
    assert result.reason in {"non_finite", "bad_schema"}


def test_block_over_max_samples_is_refused() -> None:
    """A block of 1001 samples is bad_schema even when its size is within the byte limit."""
    samples = [{"t": NOW, "seq": i, "vitals": {"spo2": 97.0}} for i in range(1001)]
    result = run(block(samples=samples), max_bytes=1 << 20)
    assert isinstance(result, Rejection)
    assert result.reason == "bad_schema"
    assert result.detail.startswith("samples: List should have at most 1000 items")


def test_oversize_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10 MB payload is refused as too_large, alone and among others, without reaching
    either parser (each replaced here by one that fails the test)."""

    def never(payload: bytes) -> Any:
        raise AssertionError("an oversize payload was parsed")

    monkeypatch.setattr(codec, "_validate", never)
    monkeypatch.setattr(codec, "_SINGLE_FIELDS", SimpleNamespace(validate_json=never))
    payload = b"[" * 10_000_000
    many = codec.decode(
        [payload, payload], ["p0001", "p0001"], [NOW, NOW], features=CLINICAL_VITALS
    ).results()
    for result in (run(payload), *many):
        assert isinstance(result, Rejection)
        assert result.reason == "too_large"
        assert result.detail == "10000000 bytes > limit 65536"


def test_64k_patient_id_is_refused() -> None:
    """A 64 KiB patient id is too_large at the default limit and bad_patient_id past it."""
    message = single(patient_id="p" * 65536)
    assert run(message).reason == "too_large"
    result = run(message, topic=None, max_bytes=1 << 20)
    assert result.reason == "bad_patient_id"
    assert "ppppppppp" * 3 not in result.detail


def test_detail_never_echoes_unbounded_or_control_input() -> None:
    """A long, control-laden unknown vital name is escaped and clipped in the detail."""
    name = "\x1b[31m\n" + "z" * 10_000
    result = run(single(vitals={**VITALS, name: 1.0}))
    assert result.reason == "unknown_vital"
    assert len(result.detail) <= 160
    assert "\x1b" not in result.detail
    assert "\n" not in result.detail


def test_topic_mismatch_detail_is_escaped() -> None:
    """A hostile topic level is escaped in the detail, and no patient is attributed."""
    result = run(single(), topic="$SYS/\x00" + "a" * 1000)
    assert result.reason == "topic_mismatch"
    assert result.patient_id is None
    assert "\x00" not in result.detail
    assert len(result.detail) <= 160


@pytest.mark.parametrize(
    ("payload", "reason", "own"),
    [
        (b"{not json", "bad_json", None),
        (single(seq="7"), "bad_schema", "p0001"),
        (
            b'{"v": 1, "patient_id": "p0001", "t": NaN, "seq": 0, "vitals": {"spo2": 97}}',
            "non_finite",
            "p0001",
        ),
        (single(vitals={**VITALS, "glucose": 5.0}), "unknown_vital", "p0001"),
        (single(vitals={**VITALS, "HR": 5.0}), "unknown_vital", "p0001"),
        (single(vitals={}), "missing_vital", "p0001"),
        (single(patient_id="p0002"), "topic_mismatch", None),
        (single(patient_id="p 1"), "bad_patient_id", None),
    ],
)
def test_a_refusal_of_what_a_device_sends_names_the_topics_patient(
    payload: bytes | dict[str, Any], reason: str, own: str | None
) -> None:
    """A refusal in `REFUSES_PATIENT` names its topic's patient (the alert's address);
    without a topic, the payload's own id when it can be read and passes the allowlist;
    a topic that fails the allowlist names nobody."""
    assert reason in codec.REFUSES_PATIENT
    on_topic = run(payload)
    assert (on_topic.reason, on_topic.patient_id) == (reason, "p0001")
    no_topic = run(payload, topic=None)
    if reason == "topic_mismatch":  # no topic, nothing to mismatch
        assert isinstance(no_topic, Decoded)
    else:
        assert (no_topic.reason, no_topic.patient_id) == (reason, own)
    for hostile in ("p 1", "$SYS", "p1\n", "x" * 65):
        assert run(payload, topic=hostile).patient_id is None


def test_a_refused_unknown_signal_is_named() -> None:
    """A signal the receiver does not know, of a valid name, is the rejection's vital (the
    first in name order); a malformed name is not."""
    result = run(single(vitals={**VITALS, "zeta": 1.0, "etco2": 38.0}))
    assert (result.reason, result.vital) == ("unknown_vital", "etco2")
    assert run(single(vitals={**VITALS, "HR": 1.0})).vital is None


def test_an_oversized_payload_names_its_topics_patient_only() -> None:
    """`too_large` is never parsed: its topic names the patient, or nobody."""
    raw = json.dumps(block(3)).encode()
    assert run(raw, max_bytes=64).patient_id == "p0001"
    assert run(raw, topic=None, max_bytes=64).patient_id is None


def test_a_null_vital_is_a_vital_not_sent() -> None:
    """A vital given as null is left out: under a model with the observed mask the sample
    is decoded with it missing (NaN), in a single message and in a block alike, and the
    same as the message without it; a malformed name with a null value carries nothing."""
    with_null = single(vitals={**VITALS, "spo2": None, "HR": None})
    without = single(vitals={k: v for k, v in VITALS.items() if k != "spo2"})
    got = run(with_null, partial=True)
    assert isinstance(got, Decoded)
    expected = run(without, partial=True).samples[0].values
    np.testing.assert_array_equal(got.samples[0].values, expected)
    assert np.isnan(got.samples[0].values[FEATURES.index("spo2")])
    message = block(3)
    message["samples"][1]["vitals"]["spo2"] = None
    got_block = run(message, partial=True)
    assert isinstance(got_block, Decoded)
    values = np.array([s.values for s in got_block.samples])
    assert np.isnan(values[:, FEATURES.index("spo2")]).tolist() == [False, True, False]
    assert run(single(vitals={"spo2": None}), partial=True).reason == "missing_vital"


def test_a_null_vital_takes_the_columns() -> None:
    """A single message with a null vital is decoded in `decode`'s columns (not the
    message-by-message path, 3 to 5 times slower: a gateway that writes null for every
    vital it lacks sends nothing else), NaN for the null, the same values as the message
    without it; a model that needs every vital leaves it to that path (missing_vital)."""
    with_null = json.dumps(single(vitals={**VITALS, "spo2": None})).encode()
    without = json.dumps(single(vitals={k: v for k, v in VITALS.items() if k != "spo2"})).encode()
    plain = json.dumps(single()).encode()
    batch = [plain, with_null, without]
    columns = codec.decode(
        batch, ["p0001"] * 3, [NOW] * 3, features=FEATURES, limits=CodecLimits(partial=True)
    )
    assert columns.index == [0, 1, 2]
    assert not columns.rest
    np.testing.assert_array_equal(columns.values[1], columns.values[2])
    assert np.isnan(columns.values[1, FEATURES.index("spo2")])
    full = codec.decode(batch, ["p0001"] * 3, [NOW] * 3, features=FEATURES)
    assert full.index == [0]
    assert [(r.reason, r.vital) for r in full.rest.values() if isinstance(r, Rejection)] == [
        ("missing_vital", "spo2"),
        ("missing_vital", "spo2"),
    ]


def test_artifact_names_patient_vital_and_block_size() -> None:
    """An artifact inside a block rejects the whole block and names patient and vital."""
    message = block(4)
    message["samples"][1]["vitals"]["spo2"] = 104.0
    result = run(message)
    assert isinstance(result, Rejection)
    assert (result.reason, result.patient_id, result.vital, result.n_samples) == (
        "artifact",
        "p0001",
        "spo2",
        4,
    )
    assert result.detail.startswith("spo2=104 outside [40, 100] %")


def test_clock_skew_names_the_patient() -> None:
    """A skewed timestamp is attributed to its (allowlisted) patient for a technical alert."""
    result = run(single(t=NOW + 60))
    assert (result.reason, result.patient_id, result.vital) == ("clock_skew", "p0001", None)
    assert result.detail == f"sample time {NOW + 60:.3f} is +60.000 s from receive time"


def test_skew_limits_are_configurable() -> None:
    """A sample 10 s ahead passes with a 15 s skew allowance and fails with the default."""
    assert run(single(t=NOW + 10)).reason == "clock_skew"
    assert isinstance(run(single(t=NOW + 10), max_future_skew_s=15.0), Decoded)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\nb", "a\\nb"),
        ("\x1b[0m", "\\x1b[0m"),
        ("é", "\\xe9"),
        ("x" * 200, "x" * 157 + "..."),
    ],
)
def test_clip(text: str, expected: str) -> None:
    """clip escapes control and non-ASCII characters and bounds the length."""
    assert clip(text) == expected


def test_values_are_float64_and_finite() -> None:
    """Decoded values are float64 arrays of shape (F,)."""
    result = run(block(2))
    assert isinstance(result, Decoded)
    for sample in result.samples:
        assert sample.values.dtype == np.float64
        assert sample.values.shape == (len(FEATURES),)
        assert np.isfinite(sample.values).all()
