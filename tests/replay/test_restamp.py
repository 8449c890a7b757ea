"""Live replay's re-anchoring: sample times become the wall-clock send time, nothing else."""

from __future__ import annotations

import json

from monitor.core.schema import MESSAGE_ADAPTER, encode_sample
from monitor.replay.restamp import Restamper

NOW = 1.8e9


def test_single_sample_takes_the_send_time_and_keeps_everything_else() -> None:
    """A 2023 sample sent now is stamped now; seq, vitals and patient are as recorded."""
    old = encode_sample("bed-1", 1682935200.0, 7, {"heart_rate": 81.5, "spo2": 97.0})
    msg = MESSAGE_ADAPTER.validate_json(Restamper(speed=1.0)(old, NOW))
    (sample,) = msg.samples()
    assert (msg.patient_id, sample.t, sample.seq) == ("bed-1", NOW, 7)
    assert sample.vitals == {"heart_rate": 81.5, "spo2": 97.0}


def test_block_keeps_its_spacing_divided_by_speed_and_ends_at_the_send_time() -> None:
    """Samples 1 s apart replayed at 4x are 0.25 s apart, the last one at the send time."""
    block = {
        "v": 1,
        "patient_id": "p1",
        "samples": [{"t": 100.0 + k, "seq": k, "vitals": {"heart_rate": 70.0}} for k in range(3)],
    }
    out = json.loads(Restamper(speed=4.0)(json.dumps(block).encode(), NOW))
    assert [s["t"] for s in out["samples"]] == [NOW - 0.5, NOW - 0.25, NOW]
    assert [s["seq"] for s in out["samples"]] == [0, 1, 2]


def test_a_patients_times_never_go_backwards() -> None:
    """A send time earlier than the patient's last stamp (a clock step) is raised to it."""
    restamp = Restamper(speed=None)
    restamp(encode_sample("p1", 5.0, 0, {"heart_rate": 70.0}), NOW)
    again = json.loads(restamp(encode_sample("p1", 6.0, 1, {"heart_rate": 70.0}), NOW - 3))
    other = json.loads(restamp(encode_sample("p2", 6.0, 0, {"heart_rate": 70.0}), NOW - 3))
    assert (again["t"], other["t"]) == (NOW, NOW - 3)


def test_malformed_messages_and_bad_times_pass_through_byte_for_byte() -> None:
    """What the daemon would refuse stays refusable: not JSON, no id, a bad or absent time."""
    bad = [
        b"not json",
        b"[1,2]",
        b'{"v":1,"t":5.0,"seq":0,"vitals":{}}',
        b'{"v":1,"patient_id":"p","t":true,"seq":0,"vitals":{"heart_rate":1}}',
        b'{"v":1,"patient_id":"p","t":-4,"seq":0,"vitals":{"heart_rate":1}}',
        b'{"v":1,"patient_id":"p","t":1e12,"seq":0,"vitals":{"heart_rate":1}}',
        b'{"v":1,"patient_id":"p","samples":[]}',
        b'{"v":1,"patient_id":"p","seq":0,"vitals":{"heart_rate":1}}',
        b"[" * 100_000,
    ]
    restamp = Restamper(speed=1.0)
    assert [restamp(p, NOW) for p in bad] == bad
