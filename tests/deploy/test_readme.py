"""README.md is true: its two commands, its links, its message contract and its commands.

The README is the user's document; the figures live in docs/benchmarks.md. These checks fail
when a link goes stale, the example message stops matching the contract, or a documented
command uses an option the CLI does not have.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.core.schema import VitalsMessage
from monitor.model.store import load_model
from tests.deploy.contract import REPO
from tests.replay.test_import_example import EVENTS, EXPORT
from tests.support.daemon import Daemon, total
from tests.support.mosquitto import Mosquitto

README = REPO / "README.md"
USER_DOCS = [README, REPO / "docs" / "benchmarks.md", REPO / "docs" / "scale-out.md"]
#: The first lines: what a fresh clone runs, and what CI (`.ci/run`) runs.
OPENING = """# vitals-monitor

```sh
make demo   # fresh machine: set up .venv, then show the whole system live (Ctrl-C stops it)
make test   # fresh machine: set up .venv and Mosquitto/Prometheus binaries, run the tests
```
"""


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def test_readme_opens_with_the_two_commands() -> None:
    """The first lines are `make demo` and `make test`, and CI runs `make test`."""
    assert README.read_text().startswith(OPENING)
    assert "make test" in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_has_the_users_sections() -> None:
    """What it is, then connect, bring your own data, run as a service, scale out, figures."""
    headings = re.findall(r"^## (.+)$", README.read_text(), re.M)
    expected = [
        "Connect your devices",
        "Bring your own data",
        "Run it as a service",
        "Scale out",
        "Measured figures",
    ]
    assert headings[: len(expected)] == expected
    assert "docs/benchmarks.md" in _section("Measured figures")


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: p.name)
def test_links_resolve(doc: Path) -> None:
    """Every relative link names an existing file, and each #anchor one of its headings."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor:
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            if anchor not in {_anchor(h) for h in headings}:
                broken.append(target)
    assert broken == []


def test_the_example_message_is_valid() -> None:
    """The payload of contract line 2 parses as a vitals message, topic id included."""
    line = next(ln for ln in _section("Connect your devices").splitlines() if "payload" in ln)
    payload = re.search(r"`(\{.*\})`", line)
    assert payload is not None
    message = VitalsMessage.model_validate_json(payload.group(1))
    assert (message.patient_id, message.seq) == ("bed-4", 42)


def test_the_hand_published_message_is_valid_now() -> None:
    """The `mosquitto_pub` example, with `$(date +%s)` filled in, is a valid message."""
    command = next(
        ln for ln in _section("Connect your devices").splitlines() if "mosquitto_pub" in ln
    )
    argv = shlex.split(command.replace("$(date +%s)", str(int(time.time()))))
    topic, body = argv[argv.index("-t") + 1], argv[argv.index("-m") + 1]
    message = VitalsMessage.model_validate_json(body)
    assert topic == f"vitals/{message.patient_id}"
    assert abs(message.t - time.time()) < 60
    assert json.loads(body)["vitals"].keys() <= {"heart_rate", "spo2"}


def _monitor_commands(text: str) -> list[list[str]]:
    """The `monitor ...` command lines of the sh blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):
                if word == "monitor" or word.endswith("/monitor"):
                    commands.append(words[i + 1 :])
                    break
    return commands


def test_documented_commands_use_existing_options() -> None:
    """Each `monitor SUB --option` of the README is an option that SUB declares."""
    commands = _monitor_commands(README.read_text())
    assert {c[0] for c in commands} >= {"import", "evaluate", "train", "run"}
    unknown = []
    for sub, *args in commands:
        command = main.get_command(click.Context(main), sub)
        assert command is not None, sub
        declared = {opt for p in command.params for opt in getattr(p, "opts", [])}
        unknown += [(sub, a) for a in args if a.startswith("--") and a not in declared]
    assert unknown == []


@pytest.mark.mqtt
@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto clients missing")
def test_connect_your_devices_walkthrough(tmp_path: Path) -> None:
    """The section's `mosquitto_pub` line, run by a shell against a real Mosquitto and
    `monitor run` with the shipped model: the daemon receives the message and refuses none."""
    command = next(
        ln for ln in _section("Connect your devices").splitlines() if "mosquitto_pub" in ln
    )
    broker = Mosquitto(workdir=tmp_path / "mosquitto")
    broker.start()
    daemon = Daemon(broker.url)
    try:
        daemon.start(tmp_path / "daemon.log")
        daemon.wait_ready()
        pointed = command.replace("mosquitto_pub ", f"mosquitto_pub -p {broker.port} ", 1)
        done = subprocess.run(  # noqa: S602 - the README's own line, run as a user would
            pointed, shell=True, capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stderr
        daemon.wait_for("monitor_messages_total", 1)
        metrics = daemon.metrics()
        assert total(metrics, "monitor_invalid_messages_total") == 0
        # The patient's first sample starts its window: one sample, one outcome.
        assert total(metrics, "monitor_messages_total", outcome="warming_up") == 1
        assert total(metrics, "monitor_messages_total") == 1
    finally:
        if daemon.proc is not None:
            daemon.stop()
        broker.stop()


def _long_export() -> str:
    """docs/recordings.md's example export (its header, its layout, Paris time), extended to
    three hours every 5 s so that the README's `--train-until 16:00` leaves a held-out hour."""
    rng = np.random.default_rng(0)
    start = datetime(2024, 3, 5, 14, 0, 0)
    lines = [EXPORT.splitlines()[0]]
    for i in range(3 * 720):
        hr = 80 + 5 * math.sin(i / 60) + rng.normal(0, 1)
        spo2 = 97 + rng.normal(0, 0.5)
        resp = 16 + math.sin(i / 40) + rng.normal(0, 0.5)
        stamp = (start + timedelta(seconds=5 * i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{stamp},{hr:.0f},{spo2:.0f},{resp:.0f}")
    return "\r\n".join(lines) + "\r\n"


def test_bring_your_own_data_import_and_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The section's steps as written, on docs/recordings.md's example export: the import
    writes a recording and labels, the shipped model evaluates it, a model trained on the
    trusted stretch evaluates it beside the baselines, and `run` loads that model (the
    serving itself is the daemon's own tests)."""
    monkeypatch.chdir(tmp_path)
    Path("export.csv").write_text(_long_export(), encoding="utf-8", newline="")
    Path("bed4_events.csv").write_text(EVENTS)
    steps = _monitor_commands(_section("Bring your own data"))
    assert [s[0] for s in steps] == ["import", "evaluate", "train", "evaluate", "run"]
    for args in steps[:2]:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    assert Path("bed4.jsonl.gz").stat().st_size > 0
    assert "precision" in result.output.lower()
    for args in steps[2:4]:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
    report = json.loads(Path("bed4_report.json").read_text(encoding="utf-8"))
    assert set(report["baselines"]) == {"rolling_z", "persistence"}
    assert report["samples_scored"] > 0
    model_dir = Path(steps[4][steps[4].index("--model") + 1])
    assert model_dir == Path(steps[2][steps[2].index("--out") + 1])  # serves what it trained
    card = load_model(model_dir).card
    assert card.features
    assert set(report["per_vital"]) - {"*"} <= set(card.features)  # "*": all vitals
