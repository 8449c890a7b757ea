"""`monitor simulate` option checks that need no broker."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main


def test_max_speed_labels_without_original_times_is_a_usage_error(tmp_path: Path) -> None:
    """At max speed a label's end time on the wall clock is unknown when it is written."""
    argv = ["simulate", "--broker", "mqtt://127.0.0.1:1", "--max-speed", "--duration", "5"]
    result = CliRunner().invoke(main, [*argv, "--labels", str(tmp_path / "l.jsonl")])
    assert result.exit_code == 2
    assert "--max-speed with --labels/--labels-topic needs --original-times" in result.output
