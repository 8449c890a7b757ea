"""Broker secrets and environment names: no error shows a password, a password file works,
every command reads `monitor run`'s MONITOR_BROKER__* names, and the old names still work
for one release with a warning.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.errors import SettingsError
from monitor.settings import legacy_password, load_broker, load_settings
from tests.support.mosquitto import Mosquitto

SECRET = "Zq9#Xw7/Kp4?Vm8@Tr5"
# Every broker variable a test may set, unset unless the test sets it.
_CLEAN_ENV: dict[str, str | None] = {
    name: None
    for name in (
        "MONITOR_BROKER__URL",
        "MONITOR_BROKER__USERNAME",
        "MONITOR_BROKER__PASSWORD",
        "MONITOR_BROKER__PASSWORD_FILE",
        "MONITOR_BROKER__CLIENT_ID",
        "MONITOR_BROKER_PASSWORD",
        "MONITOR_SIM_PASSWORD",
        "MONITOR_BROKER_PASSWORD_FLAG",
    )
}

# URLs whose password has a character that breaks the URL's parts (the '#' first).
MALFORMED = [
    "mqtt://user:Zq9#Xw7/Kp4?Vm8@Tr5@host:1883",
    "mqtt://user:Zq9#Xw7@host:1883",
    "mqtt://user:Zq9/Xw7@host",
    "mqtt://user:Zq9?Xw7@host",
    "mqtt://user:Zq9[Xw7@host",
    "mqtt://user:Zq9Xw7Kp4@host:99999",
    "mqtt://user:Zq9Xw7Kp4@",
    "htp://user:Zq9Xw7Kp4@host",
]


def _leaked(url: str, text: str) -> list[str]:
    """The 3-character pieces of the URL's password that appear in `text`."""
    password = url.split("://user:", 1)[1].rsplit("@", 1)[0]
    return [password[i : i + 3] for i in range(len(password) - 2) if password[i : i + 3] in text]


def _env(**values: str) -> dict[str, str | None]:
    return {**_CLEAN_ENV, **values}


@pytest.mark.parametrize("url", MALFORMED)
def test_a_settings_error_shows_no_part_of_the_password(url: str) -> None:
    """The settings error for a malformed URL describes it without quoting any of it."""
    with pytest.raises(SettingsError) as caught:
        load_settings(broker={"url": url})
    assert caught.value.problems[0].startswith("broker: ")
    assert _leaked(url, str(caught.value)) == []


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("command", ["run", "record", "simulate", "replay"])
def test_no_command_echoes_the_password_of_a_bad_url(
    url: str, command: str, tmp_path: Path
) -> None:
    """`run`, `record`, `simulate` and `replay` exit 2 without any part of the password."""
    args = {
        "run": ["run"],
        "record": ["record", "--out", str(tmp_path / "out.jsonl")],
        "simulate": ["simulate", "--duration", "1"],
        "replay": ["replay", str(tmp_path / "rec.jsonl")],
    }[command]
    (tmp_path / "rec.jsonl").write_text("")
    result = CliRunner().invoke(main, [*args, "--broker", url], env=_env())
    assert result.exit_code == 2, result.output
    assert "broker URL" in result.output
    assert _leaked(url, result.output) == []


def test_a_password_file_gives_the_password(tmp_path: Path) -> None:
    """broker.password_file is read at load, its trailing newline dropped."""
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n")
    settings = load_settings(broker={"url": "mqtt://h:1", "password_file": str(path)})
    assert settings.broker.secret() == SECRET
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("broker", "problem"),
    [
        ({"password": "x"}, "give the broker password one way"),
        ({"url": "mqtt://u:x@h"}, "give the broker password one way"),
        ({"password_file": "/nonexistent/pw"}, "cannot read password_file /nonexistent/pw"),
    ],
)
def test_a_password_file_conflict_or_failure_is_a_settings_error(
    tmp_path: Path, broker: dict[str, str], problem: str
) -> None:
    """A second password beside the file, or a file that cannot be read, is an error."""
    path = tmp_path / "pw"
    path.write_text(SECRET)
    with pytest.raises(SettingsError, match=problem):
        load_settings(broker={"password_file": str(path), **broker})


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    """A password file with nothing but a newline is an error, not an empty password."""
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        load_settings(broker={"password_file": str(tmp_path / "pw")})


def test_other_commands_read_run_s_names_but_not_its_client_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """load_broker takes MONITOR_BROKER__*; flags win; the daemon's client id is not taken."""
    monkeypatch.setenv("MONITOR_BROKER__URL", "mqtt://envhost:1999")
    monkeypatch.setenv("MONITOR_BROKER__PASSWORD", "from-env")
    monkeypatch.setenv("MONITOR_BROKER__CLIENT_ID", "the-daemon")
    monkeypatch.setenv("MONITOR_DETECTOR__THRESHOLD", "not a number")  # not a broker setting
    from_env = load_broker(client_id=None)
    assert (from_env.url, from_env.secret(), from_env.client_id) == (
        "mqtt://envhost:1999",
        "from-env",
        None,
    )
    assert load_broker(url="mqtt://flag:1", client_id=None).url == "mqtt://flag:1"


@pytest.mark.parametrize(
    ("environ", "password", "warning"),
    [
        ({"MONITOR_SIM_PASSWORD": "old"}, "old", "MONITOR_SIM_PASSWORD is deprecated and will"),
        (
            {"MONITOR_SIM_PASSWORD": "old", "MONITOR_BROKER__PASSWORD": "new"},
            None,
            "MONITOR_SIM_PASSWORD is deprecated and ignored: MONITOR_BROKER__PASSWORD is set",
        ),
    ],
)
def test_a_legacy_password_name_is_read_with_a_warning(
    environ: dict[str, str], password: str | None, warning: str
) -> None:
    """The old name gives the password unless the new one is set; one warning either way."""
    got, warnings = legacy_password(("MONITOR_SIM_PASSWORD",), environ)
    assert got == password
    assert len(warnings) == 1
    assert warnings[0].startswith(warning)


# -- against a broker that requires a login -------------------------------------------------


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto that accepts user `sim` with password SECRET only."""
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "sim", SECRET], check=True)
    pwfile.chmod(0o600)
    broker = Mosquitto(
        workdir=tmp_path / "mq", allow_anonymous=False, extra_config=f"password_file {pwfile}"
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _logins(broker: Mosquitto) -> int:
    """Connections the broker accepted for user `sim` (its notice log names the user)."""
    return broker.log_path.read_text().count("u'sim'")


def _recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.jsonl"
    line = '{"topic":"vitals/p1","payload":"{}","received_at":1700000000.0}\n'
    path.write_text(line * 2)
    return path


@pytest.mark.mqtt
@pytest.mark.parametrize("source", ["MONITOR_BROKER__PASSWORD", "MONITOR_BROKER__PASSWORD_FILE"])
def test_every_command_logs_in_with_run_s_environment_names(
    locked_broker: Mosquitto, tmp_path: Path, source: str
) -> None:
    """replay, simulate and record find URL, user and password under MONITOR_BROKER__*."""
    (tmp_path / "pw").write_text(SECRET + "\n")
    value = SECRET if source == "MONITOR_BROKER__PASSWORD" else str(tmp_path / "pw")
    env = _env(MONITOR_BROKER__URL=locked_broker.url, MONITOR_BROKER__USERNAME="sim")
    env[source] = value
    runner = CliRunner()
    replay = runner.invoke(main, ["replay", str(_recording(tmp_path)), "--quiet"], env=env)
    assert replay.exit_code == 0, replay.output
    assert "published 2 messages" in replay.output
    simulate = ["simulate", "--patients", "1", "--duration", "2", "--max-speed"]
    simulated = runner.invoke(main, simulate, env=env)
    assert simulated.exit_code == 0, simulated.output
    recorded = runner.invoke(
        main, ["record", "--out", str(tmp_path / "out.jsonl"), "--duration", "0.5"], env=env
    )
    assert recorded.exit_code == 0, recorded.output
    assert "warning" not in replay.output + simulated.output + recorded.output
    # Each logged in to this broker, not to a default one that happens to listen on 1883.
    assert _logins(locked_broker) == 3


@pytest.mark.mqtt
@pytest.mark.parametrize(
    ("command", "old"),
    [("replay", "MONITOR_BROKER_PASSWORD"), ("simulate", "MONITOR_SIM_PASSWORD")],
)
def test_an_old_password_name_still_logs_in_with_one_warning(
    locked_broker: Mosquitto, tmp_path: Path, command: str, old: str
) -> None:
    """The names `replay` and `simulate` read before still work, with a deprecation line."""
    args = {
        "replay": ["replay", str(_recording(tmp_path)), "--quiet"],
        "simulate": ["simulate", "--patients", "1", "--duration", "2", "--max-speed"],
    }[command]
    url = locked_broker.url.replace("mqtt://", "mqtt://sim@")
    result = CliRunner().invoke(main, [*args, "--broker", url], env=_env(**{old: SECRET}))
    assert result.exit_code == 0, result.output
    assert _logins(locked_broker) == 1
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert warnings == [
        f"monitor {command}: warning: {old} is deprecated and will stop working in the next "
        "release; use MONITOR_BROKER__PASSWORD or MONITOR_BROKER__PASSWORD_FILE"
    ]


@pytest.mark.mqtt
@pytest.mark.parametrize("how", ["--password", "url"])
def test_a_password_on_the_command_line_earns_one_warning(
    locked_broker: Mosquitto, tmp_path: Path, how: str
) -> None:
    """A password given as a flag or in --broker works, and one line warns about ps."""
    if how == "url":
        args = ["--broker", locked_broker.url.replace("mqtt://", f"mqtt://sim:{SECRET_URL}@")]
    else:
        args = ["--broker", locked_broker.url, "--username", "sim", "--password", SECRET]
    replay = ["replay", str(_recording(tmp_path)), "--quiet", *args]
    result = CliRunner().invoke(main, replay, env=_env())
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("monitor replay: warning: a broker password on the command line")
    assert "--password-file" in warnings[0]
    assert SECRET not in result.output


# SECRET percent-encoded for a URL.
SECRET_URL = SECRET.replace("#", "%23").replace("/", "%2F").replace("?", "%3F").replace("@", "%40")


def test_run_warns_of_a_password_on_its_command_line() -> None:
    """`monitor run --password` prints the ps warning first (here before a settings error)."""
    args = ["run", "--password", SECRET, "--metrics-port", "-1"]
    result = CliRunner().invoke(main, args, env=_env())
    assert result.exit_code == 2
    first, *rest = result.output.splitlines()
    assert first.startswith("monitor run: warning: a broker password on the command line")
    assert rest[0] == "monitor run: invalid settings:"
    assert SECRET not in result.output


def test_run_reads_its_old_password_variable_with_a_warning() -> None:
    """MONITOR_BROKER_PASSWORD_FLAG (the old variable of run's --password) earns a warning."""
    env = _env(MONITOR_BROKER_PASSWORD_FLAG=SECRET)
    result = CliRunner().invoke(main, ["run", "--metrics-port", "-1"], env=env)
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == (
        "monitor run: warning: MONITOR_BROKER_PASSWORD_FLAG is deprecated and will stop "
        "working in the next release; use MONITOR_BROKER__PASSWORD or "
        "MONITOR_BROKER__PASSWORD_FILE"
    )
    assert "on the command line" not in result.output


@pytest.mark.parametrize("url", MALFORMED)
def test_a_password_in_a_malformed_url_earns_the_warning_too(url: str) -> None:
    """The warning does not depend on the URL parsing: '#' in the password still warns."""
    result = CliRunner().invoke(main, ["simulate", "--broker", url, "--duration", "1"], env=_env())
    assert result.exit_code == 2
    assert result.output.startswith("monitor simulate: warning: a broker password on the command")
