"""Shard settings and the `--shard K/N` flag: user errors are one line and exit code 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from monitor.commands.run import command
from monitor.errors import SettingsError
from monitor.settings import load_settings


def test_shard_count_must_divide_the_partitions() -> None:
    """shard.count 3 with 64 partitions is refused, naming both numbers."""
    with pytest.raises(SettingsError, match="count 3 must divide partitions 64"):
        load_settings(shard={"index": 0, "count": 3})


def test_shard_index_must_be_below_the_count() -> None:
    """Shard 2 of 2 does not exist (indices are 0-based)."""
    with pytest.raises(SettingsError, match="index 2 must be below count 2"):
        load_settings(shard={"index": 2, "count": 2})


def test_environment_names_of_the_deployment_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The StatefulSet's MONITOR_SHARD__* and MONITOR_NATS__* variables set the shard."""
    monkeypatch.setenv("MONITOR_SHARD__INDEX", "3")
    monkeypatch.setenv("MONITOR_SHARD__COUNT", "4")
    monkeypatch.setenv("MONITOR_SHARD__PARTITIONS", "64")
    monkeypatch.setenv("MONITOR_NATS__URL", "nats://nats:4222")
    monkeypatch.setenv("MONITOR_NATS__STREAM", "VITALS")
    s = load_settings()
    assert (s.shard.index, s.shard.count, s.shard.partitions) == (3, 4, 64)
    assert (s.nats.url, s.nats.stream) == ("nats://nats:4222", "VITALS")


@pytest.mark.parametrize("value", ["1", "a/2", "1/2/3", "-1/2"])
def test_a_malformed_shard_flag_exits_2(value: str) -> None:
    """`monitor run --shard` takes K/N; anything else is a usage error (exit code 2)."""
    result = CliRunner().invoke(command, ["--shard", value])
    assert result.exit_code == 2
    assert "expected K/N" in result.output


def test_an_impossible_shard_exits_2_with_one_line() -> None:
    """`--shard 5/3` parses but is not a shard of 64 partitions: one line, exit code 2."""
    result = CliRunner().invoke(command, ["--shard", "5/3"])
    assert result.exit_code == 2
    assert "must divide partitions 64" in result.output
