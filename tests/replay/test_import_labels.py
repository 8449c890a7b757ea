"""Labels from real annotations: beat symbols, anomalous-beat flags, events, WFDB annotators.

Fixtures are small files shaped like the bench data (mitdb_100_annotations.csv,
mitdb_100_beats.csv, rec12726_tilt_events.csv) and a WFDB record written by wfdb itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from monitor.errors import DataError
from monitor.replay.annotations import ABNORMAL_BEAT_SYMBOLS, read_csv_points
from monitor.replay.labels import read_labels

START = 1_000_000.0

ANNOTATIONS = """sample,time_s,symbol,aux
18,0.0500,+,(N
77,0.2139,N,
370,1.0278,V,
662,1.8389,N,
946,2.6278,A,
1231,3.4194,~,
1515,4.2083,L,
"""

BEATS = """time_s,rr_s,hr_bpm,symbol,is_anomalous_beat
0.2139,,,N,0
1.0278,0.8139,73.7201,V,1
1.8389,0.8111,73.9726,N,0
2.6278,0.7889,76.0563,A,1
3.4194,0.7916,75.7975,N,0
"""

EVENTS = """time_s,event
1.000,Initiate slow tilt up
3.500,Conclude slow tilt up
3.800,Movement artifacts
4.000,conclude rapid tilt down
"""

DATA = "time_s,HR\n0,70\n1,71\n2,72\n3,73\n4,74\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _import(tmp_path: Path, labels_from: Path, *extra: str, data: str = DATA) -> Result:
    args = [
        "import",
        str(_write(tmp_path, "data.csv", data)),
        "--out",
        str(tmp_path / "rec.jsonl"),
        "--patient-id",
        "mitdb-100",
        "--labels-from",
        str(labels_from),
        "--labels-out",
        str(tmp_path / "labels.csv"),
        *extra,
    ]
    return CliRunner().invoke(main, args)


# wfdb calls pandas with deprecated arguments; that is wfdb's warning, not ours.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_default_symbols_are_the_abnormal_beats_of_wfdbs_table() -> None:
    """Every default symbol is a PhysioNet annotation symbol; normal-class and non-beats are out."""
    import wfdb.io.annotation

    known = set(wfdb.io.annotation.ann_label_table["symbol"])
    assert ABNORMAL_BEAT_SYMBOLS.issubset(known)
    assert not ABNORMAL_BEAT_SYMBOLS & {"N", "L", "R", "e", "j"}
    assert not ABNORMAL_BEAT_SYMBOLS & {"+", "~", "|", "x", "[", "]", "!", '"', "p", "t"}
    assert {"A", "V", "F", "E", "/"} <= ABNORMAL_BEAT_SYMBOLS


def test_symbol_annotations_become_point_labels_on_the_recordings_clock(tmp_path: Path) -> None:
    """V and A beats become [t, t] labels at start-time + time_s; N, L, +, ~ do not."""
    src = _write(tmp_path, "ann.csv", ANNOTATIONS)
    result = _import(tmp_path, src, "--start-time", str(START))
    assert result.exit_code == 0, result.output
    assert "2 labels to" in result.output
    assert "from 7 annotations" in result.output
    labels = read_labels(tmp_path / "labels.csv")
    assert [(lb.patient_id, lb.kind, lb.vital) for lb in labels] == [
        ("mitdb-100", "beat_V", None),
        ("mitdb-100", "beat_A", None),
    ]
    assert [(lb.start_t, lb.end_t) for lb in labels] == [
        (START + 1.0278, START + 1.0278),
        (START + 2.6278, START + 2.6278),
    ]


def test_anomalous_symbols_duration_and_vital_options(tmp_path: Path) -> None:
    """--anomalous-symbols picks the symbols; --label-duration and --labels-vital shape labels."""
    src = _write(tmp_path, "ann.csv", ANNOTATIONS)
    result = _import(
        tmp_path,
        src,
        "--start-time",
        str(START),
        "--anomalous-symbols",
        "L, ~",
        "--label-duration",
        "2.5",
        "--labels-vital",
        "heart_rate",
    )
    assert result.exit_code == 0, result.output
    labels = read_labels(tmp_path / "labels.csv")
    assert [(lb.kind, lb.vital) for lb in labels] == [
        ("beat_~", "heart_rate"),
        ("beat_L", "heart_rate"),
    ]
    assert labels[0].end_t - labels[0].start_t == pytest.approx(2.5)
    assert "chosen by symbol in {L,~}" in result.output


def test_is_anomalous_beat_column_is_preferred_to_symbols(tmp_path: Path) -> None:
    """The beats table's own flag decides; the kind still names the symbol."""
    src = _write(tmp_path, "beats.csv", BEATS)
    result = _import(tmp_path, src)
    assert result.exit_code == 0, result.output
    labels = read_labels(tmp_path / "labels.csv")
    assert [lb.kind for lb in labels] == ["beat_V", "beat_A"]
    assert [lb.start_t for lb in labels] == [1_700_000_001.0278, 1_700_000_002.6278]
    assert "chosen by is_anomalous_beat" in result.output


def test_bad_flag_names_its_line(tmp_path: Path) -> None:
    """A flag that is not 0/1 or true/false is an error at its line."""
    src = _write(tmp_path, "beats.csv", BEATS.replace("V,1", "V,maybe"))
    with pytest.raises(DataError, match=r"beats\.csv:3: is_anomalous_beat must be"):
        read_csv_points(src)


def test_each_event_row_is_a_label_and_initiate_conclude_pairs_one_span(tmp_path: Path) -> None:
    """Timed events (tilt table) become labels of kind 'event': an 'Initiate X' row and the
    next 'Conclude X' make one span from the first to the second time plus the duration;
    any other row (a lone 'conclude' too) is a label of its own."""
    src = _write(tmp_path, "events.csv", EVENTS)
    result = _import(tmp_path, src, "--start-time", "100", "--label-duration", "30")
    assert result.exit_code == 0, result.output
    labels = read_labels(tmp_path / "labels.csv")
    assert [(lb.kind, lb.start_t, lb.end_t) for lb in labels] == [
        ("event", 101.0, 133.5),
        ("event", 103.8, 133.8),
        ("event", 104.0, 134.0),
    ]


def test_date_time_annotations_line_up_with_a_date_time_recording(tmp_path: Path) -> None:
    """ISO annotation times become the same unix seconds as the recording's rows."""
    data = "timestamp,HR\n2014-07-01 00:00:00,70\n2014-07-01 00:00:01,71\n"
    src = _write(tmp_path, "events.csv", "timestamp,event\n2014-07-01 00:00:01,alarm\n")
    result = _import(tmp_path, src, data=data)
    assert result.exit_code == 0, result.output
    (label,) = read_labels(tmp_path / "labels.csv")
    assert label.start_t == 1404172801.0


def test_seconds_annotations_against_a_date_time_recording_are_refused(tmp_path: Path) -> None:
    """Offsets cannot be placed on a real-time recording: one line, exit 2, nothing written."""
    data = "timestamp,HR\n2014-07-01 00:00:00,70\n"
    src = _write(tmp_path, "events.csv", EVENTS)
    result = _import(tmp_path, src, data=data)
    assert result.exit_code == 2
    assert f"{src}: annotation times are seconds but the recording's are date-times" in (
        result.output
    )
    assert not (tmp_path / "rec.jsonl").exists()
    assert not (tmp_path / "labels.csv").exists()


def test_labels_options_go_together_and_need_a_usable_column(tmp_path: Path) -> None:
    """--labels-from without --labels-out is a usage error; a CSV without a rule column too."""
    src = _write(tmp_path, "data.csv", DATA)
    args = ["import", str(src), "--out", str(tmp_path / "r.jsonl"), "--patient-id", "p"]
    alone = CliRunner().invoke(main, [*args, "--labels-from", str(src)])
    assert alone.exit_code == 2
    assert "--labels-from and --labels-out go together" in alone.output
    result = _import(tmp_path, _write(tmp_path, "plain.csv", "time_s,note\n1,x\n"))
    assert result.exit_code == 2
    assert "no symbol, is_anomalous_beat or event column" in result.output


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_wfdb_annotator_file_becomes_labels(tmp_path: Path) -> None:
    """A WFDB .atr written by wfdb: abnormal beats at sample / fs, offset like the record."""
    import wfdb

    wfdb.wrsamp(
        "rec",
        fs=100,
        units=["bpm"],
        sig_name=["HR"],
        p_signal=np.full((500, 1), 70.0),
        fmt=["16"],
        adc_gain=[100.0],
        baseline=[0],
        write_dir=str(tmp_path),
    )
    wfdb.wrann(
        "rec",
        "atr",
        np.array([10, 110, 250, 390]),
        symbol=["N", "V", "N", "F"],
        fs=100,
        write_dir=str(tmp_path),
    )
    args = [
        "import",
        str(tmp_path / "rec"),
        "--out",
        str(tmp_path / "rec.jsonl"),
        "--patient-id",
        "r1",
        "--period",
        "1",
        "--start-time",
        str(START),
        "--labels-from",
        str(tmp_path / "rec"),
        "--labels-out",
        str(tmp_path / "labels.csv"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    labels = read_labels(tmp_path / "labels.csv")
    assert [(lb.kind, lb.start_t) for lb in labels] == [
        ("beat_V", START + 1.1),
        ("beat_F", START + 3.9),
    ]
    assert "from 4 annotations" in result.output


def test_missing_wfdb_annotator_is_a_one_line_error(tmp_path: Path) -> None:
    """An annotator file that is not there: exit 2 naming it."""
    result = _import(tmp_path, tmp_path / "nothing", "--annotator", "qrs")
    assert result.exit_code == 2
    assert f"{tmp_path / 'nothing'}.qrs: no such annotation file" in result.output
