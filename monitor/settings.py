"""The daemon's settings: one pydantic-settings root with plain sections.

Sources, highest precedence first: CLI flags, `MONITOR_*` environment variables (nested
with ``__``, e.g. ``MONITOR_BROKER__URL``), a TOML file (``--config``), then defaults.
Read once at startup, validated, and passed down; nothing else reads the environment. The
other commands that talk to a broker read its section under the same names (`load_broker`).
A setting that takes null (off, or the model card's default) is given as ``null`` in the
environment and as the string ``"null"`` in TOML, which has no null (`NULL`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from monitor.core.detector import DetectorConfig
from monitor.core.vitals import SIGNAL_NAME_PATTERN, Registry, Vital, check_signal
from monitor.errors import SettingsError
from monitor.transports.mqtt.config import BrokerConfig

#: How a setting is set to null (None) in the environment and in a TOML file.
NULL = "null"

_SECTION = ConfigDict(extra="forbid")

#: The current names of the broker password; a deprecated name yields to them.
_PASSWORD_ENV = ("MONITOR_BROKER__PASSWORD", "MONITOR_BROKER__PASSWORD_FILE")


class BrokerSettings(BrokerConfig):
    """Where and how to connect to a broker.

    Attributes:
        protocol: "5", "3.1.1" or "auto". `monitor run` under "auto": the vitals on MQTT
            3.1.1 (5 with a persistent session), the alerts on a connection of their own,
            5 first and 3.1.1 when refused (only 5 reports an alert the broker refuses).
        password_file: A file holding the password (a trailing newline is dropped); read at
            startup. Prefer it, or the environment, to a password on the command line, where
            other local users see it in ``ps``.
    """

    password_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_password_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("password_file") in (None, ""):
            return data
        if data.get("password") is not None or _url_has_password(data.get("url")):
            raise ValueError(
                "give the broker password one way: password_file, password or in the URL"
            )
        path = Path(data["password_file"])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"cannot read password_file {path}: {reason}") from None
        password = text.removesuffix("\n").removesuffix("\r")
        if not password:
            raise ValueError(f"password_file {path} is empty")
        return dict(data, password=password)


class IngestSettings(BaseModel):
    """What the daemon subscribes to and how."""

    model_config = _SECTION

    topics: list[str] = Field(default_factory=lambda: ["vitals/+"], min_length=1)
    # An int range, not Literal[0, 1, 2]: environment values arrive as strings.
    qos: int = Field(default=1, ge=0, le=2)
    persistent_session: bool = Field(
        default=False,
        description="Keep the broker session (and its queued QoS>0 messages) across restarts; "
        "needs a fixed broker.client_id.",
    )
    session_expiry_s: int = Field(default=3600, ge=0)
    queue_size: int = Field(default=100_000, ge=1, description="Bounded incoming queue.")
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    max_future_skew_s: float = Field(
        default=5.0,
        gt=0,
        description="How far a sample time may lie ahead of its receive time plus the "
        "patient's learned clock offset (docs/time.md).",
    )
    max_age_s: float = Field(default=24 * 3600.0, gt=0)
    max_clock_offset_s: float = Field(
        default=3600.0,
        ge=0,
        description="Largest constant device clock offset learned per patient; a device "
        "further ahead is refused (clock_skew). 0: the wall clock only.",
    )
    clock_offset_alert_s: float = Field(
        default=60.0,
        gt=0,
        description="A learned clock offset larger than this (ahead, or behind once settled) "
        "raises one low-severity 'clock_offset' technical alert (none while max_future_skew_s "
        "is at least max_clock_offset_s: device clocks are then trusted outright).",
    )
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(
        default=1.5,
        gt=0,
        description="Cap of the jittered exponential backoff after a connection loss; low so "
        "that a broker coming back is found within about 2 s (docs/reliability.md).",
    )
    refused_retry_s: float = Field(
        default=10.0,
        gt=0,
        description="Wait after the broker refused the login or the TLS handshake failed: "
        "not transient, so never a tight reconnect loop.",
    )


class WindowSettings(BaseModel):
    """Per-patient windows and patient bookkeeping."""

    model_config = _SECTION

    max_patients: int = Field(default=10_000, ge=1)
    idle_ttl_s: float = Field(default=3600.0, gt=0)
    max_gap_s: float | None = Field(
        default=None,
        gt=0,
        description="A longer gap resets the window (default: 30 of the model card's sample "
        "periods, 30 s for the shipped 1 Hz model). For a stream slower than the model's "
        "period the limit stretches by the patient's previous interval over that period.",
    )
    stale_after_s: float | None = Field(
        default=None,
        gt=0,
        description="Silence after which a 'signal lost' technical alert is raised (default: "
        "8 of the model card's sample periods, 8 s at 1 Hz; stretched for a slower stream by "
        "the shorter of its last two intervals over the period: a once-a-minute stream is "
        "lost after 8 minutes, and one outage does not stretch the next).",
    )
    vital_lost_intervals: float | None = Field(
        default=4.0,
        gt=1,
        description="A vital the patient has sent at least twice that is then missing from "
        "its samples for longer than this many of its own last two intervals (the longer), "
        "and longer than stale_after_s, raises a 'vital_lost' technical alert, cleared by "
        "its next value (models with an observed mask; null: never).",
    )

    max_seq_jump: int = Field(
        default=100_000,
        ge=1,
        description="A larger forward jump of a patient's seq is suspect: accepted, its "
        "skipped numbers not counted, and the next sample of the real counter not late.",
    )

    def gap_s(self, sample_period_s: float) -> float:
        """`max_gap_s`, or 30 sample periods of the served model."""
        return self.max_gap_s if self.max_gap_s is not None else 30.0 * sample_period_s

    def stale_s(self, sample_period_s: float) -> float:
        """`stale_after_s`, or 8 sample periods of the served model."""
        if self.stale_after_s is not None:
            return self.stale_after_s
        return 8.0 * sample_period_s


class BatchSettings(BaseModel):
    """Micro-batching of windows for inference."""

    model_config = _SECTION

    max_batch: int = Field(default=256, ge=1)
    max_wait_ms: float = Field(default=2.0, ge=0)
    max_pending: int = Field(default=20_000, ge=1, description="Past this, work is shed.")


class ModelSettings(BaseModel):
    """The model served."""

    model_config = _SECTION

    path: Path | None = Field(default=None, description="Model directory; default: shipped.")
    device: Literal["auto", "cpu", "cuda"] | str = "auto"
    backend: Literal["auto", "torch", "onnxruntime"] = Field(
        default="auto",
        description="Forward pass: auto = ONNX Runtime on the CPU, torch on CUDA.",
    )
    stall_after_s: float = Field(
        default=10.0,
        gt=0,
        description="A model forward running longer (a hung GPU kernel, a deadlocked "
        "thread) raises `inference_stalled` (high, alerts/_system) and makes the daemon not "
        "ready until it ends (a forward takes milliseconds).",
    )


class AlertSettings(BaseModel):
    """Where alerts go."""

    model_config = _SECTION

    topic_prefix: str = Field(default="alerts", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_/-]{0,63}$")
    # An int range, not Literal[0, 1, 2]: environment values arrive as strings.
    qos: int = Field(default=1, ge=0, le=2)
    max_pending: int = Field(default=100_000, ge=1, description="Alerts held while offline.")
    state: bool = Field(
        default=True,
        description="Publish each patient's open alerts as one retained message on "
        "<state_prefix>/<patient_id> (an empty one once none is open), so a consumer that "
        "connects later sees every alert still open (docs/alerts.md, 'Open alerts').",
    )
    state_prefix: str = Field(
        default="alert-state",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_/-]{0,63}$",
        description="The state messages' topic prefix (the broker account needs write "
        "access to <state_prefix>/#).",
    )
    outbox: bool = Field(
        default=True,
        description="Keep alerts not yet delivered in a durable outbox (SQLite) and deliver "
        "them after a restart, in order, once (docs/reliability.md).",
    )
    outbox_path: Path = Field(
        default=Path("state/alert-outbox.sqlite3"),
        description="The outbox file (relative to the working directory); one daemon per "
        "file. It must be writable (a state volume, systemd StateDirectory); when it is not, "
        "the daemon serves without it and logs outbox_unavailable.",
    )


class StateSettings(BaseModel):
    """Per-patient monitoring state saved on shutdown and restored on start."""

    model_config = _SECTION

    snapshot: bool = Field(
        default=True,
        description="Save every patient's windows, residual scale and alert state (every "
        "checkpoint_interval_s and on a graceful shutdown) and restore them on start, so a "
        "restart does not leave patients unmonitored for a whole window, nor forget them "
        "(docs/reliability.md).",
    )
    snapshot_path: Path = Field(
        default=Path("state/patients.snapshot"),
        description="The snapshot file (relative to the working directory); one daemon per "
        "file. It is consumed (removed) when read, restored or refused.",
    )
    snapshot_max_age_s: float = Field(
        default=300.0,
        gt=0,
        description="An older snapshot is refused (snapshot_refused reason=too_old) and the "
        "daemon starts cold.",
    )
    checkpoint_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="Also write the snapshot this often while serving (off the event loop), "
        "so that a daemon killed without a graceful stop (SIGKILL, out of memory, a watchdog "
        "restart) restarts from state at most this old: it knows its patients, and one whose "
        "device went quiet meanwhile gets signal_lost. 0: only on a graceful stop. Must be "
        "below snapshot_max_age_s.",
    )

    @model_validator(mode="after")
    def _checkpoints_restorable(self) -> StateSettings:
        if self.checkpoint_interval_s >= self.snapshot_max_age_s:
            raise ValueError(
                f"checkpoint_interval_s ({self.checkpoint_interval_s:g}) must be below "
                f"snapshot_max_age_s ({self.snapshot_max_age_s:g}): a checkpoint that old "
                "would be refused at the next start"
            )
        return self


class MetricsSettings(BaseModel):
    """The HTTP endpoint for /metrics, /healthz and /readyz."""

    model_config = _SECTION

    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    idle_timeout_s: int = Field(
        default=10,
        ge=1,
        description="Close a connection that has not sent a complete request for this long.",
    )
    max_connections: int = Field(
        default=512,
        ge=1,
        le=4096,
        description="Connections held at once (each costs a file descriptor, not a thread); "
        "more wait in the listen backlog of 1,024 until an idle one is closed.",
    )
    stuck_after_s: float = Field(
        default=60.0,
        gt=0,
        description="/healthz answers 503 (a supervisor restarts the daemon) once the daemon "
        "has made no progress for this long: no housekeeping pass (its event loop is stuck) "
        "or one model forward running (inference hung). Above model.stall_after_s and "
        "housekeeping_interval_s.",
    )
    stuck_exit_s: float | None = Field(
        default=None,
        gt=0,
        description="Exit (code 3, from a watch thread: a held event loop cannot stop "
        "gracefully) once /healthz has answered 503 for this long, for a supervisor that "
        "restarts a process on exit but not on a failed health check (Docker Compose; the "
        "shipped compose.yaml sets 30). Unset: never (systemd's WatchdogSec and Kubernetes' "
        "liveness probe restart it).",
    )


class LogSettings(BaseModel):
    """Logging."""

    model_config = _SECTION

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash that replaces patient ids in logs; random per "
        "process when unset (pseudonyms then differ between runs).",
    )
    invalid_log_interval_s: float = Field(default=5.0, ge=0)


class SignalSettings(BaseModel):
    """A signal to register beside the built-in vitals (docs/messages.md, Signals)."""

    model_config = _SECTION

    name: str = Field(
        pattern=SIGNAL_NAME_PATTERN,
        description="Wire name: lowercase letters, digits and _; not a built-in vital's.",
    )
    unit: str = Field(min_length=1, description="Unit of the values, e.g. mV.")
    low: float = Field(description="Lowest plausible value; below it a sample is an artifact.")
    high: float = Field(description="Highest plausible value (> low).")
    sample_period_s: float | None = Field(
        default=None, gt=0, description="Seconds between samples it is usually recorded at."
    )
    description: str = Field(default="", description="Human-readable name.")
    flatline_samples: int | None = Field(
        default=None,
        ge=2,
        description="A run of this many identical values is a stuck sensor (default: the "
        "model card's learned rule).",
    )

    @model_validator(mode="after")
    def _valid(self) -> SignalSettings:
        check_signal(self.vital())
        return self

    def vital(self) -> Vital:
        """This signal as a registry entry."""
        return Vital(
            self.name,
            self.unit,
            self.low,
            self.high,
            self.description or self.name,
            self.sample_period_s,
            self.flatline_samples,
        )


# -- scale-out: shards over NATS (issue 17; docs/scale-out.md) ------------------------------


class ShardSettings(BaseModel):
    """Which share of the patients this daemon owns (`monitor run --shard K/N`).

    Unset `count` (the default): one daemon owns every patient, on `ingest.topics`. Set: the
    daemon subscribes to ``<topic prefix>/<k>/+`` for each partition k it owns (k mod count ==
    index) through the NATS server's MQTT listener, instead of `ingest.topics`.
    """

    model_config = _SECTION

    index: int = Field(default=0, ge=0, description="K: this shard's index, 0..count-1.")
    count: int | None = Field(
        default=None, ge=1, description="N: the number of shards; unset for one daemon."
    )
    partitions: int = Field(
        default=64,
        ge=1,
        le=65_536,
        description="P: the partition count of the NATS server's mapping; count divides it.",
    )
    topic_prefix: str = Field(
        default="vitals",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_/-]{0,63}$",
        description="Devices' prefix.",
    )

    @model_validator(mode="after")
    def _divides(self) -> ShardSettings:
        if self.count is not None:
            if self.partitions % self.count:
                raise ValueError(f"count {self.count} must divide partitions {self.partitions}")
            if self.index >= self.count:
                raise ValueError(f"index {self.index} must be below count {self.count}")
        return self

    @property
    def enabled(self) -> bool:
        """Whether this daemon is one shard of several (or of one, set explicitly)."""
        return self.count is not None

    def label(self) -> str:
        """The shard's identity in metrics, logs and the system alert topic: its index."""
        return str(self.index)


class NatsSettings(BaseModel):
    """The JetStream stream a shard rebuilds its windows from on start."""

    model_config = _SECTION

    url: str | None = Field(
        default=None,
        description="NATS URL (nats://[user:pass@]host:4222) for window recovery; unset: a "
        "shard starts with empty windows.",
    )
    stream: str = Field(
        default="VITALS",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The stream over vitals.*.* (max_msgs_per_subject: the history kept).",
    )
    alerts_stream: str | None = Field(
        default="ALERTS",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="A stream over alerts.> (what the shards published): a recovering shard "
        "publishes the alerts its replay decides that are not in it (samples its previous "
        "owner never scored). Unset or missing: every alert decided in the replay is "
        "suppressed, and those of samples the previous owner never scored are lost.",
    )
    recovery_timeout_s: float = Field(
        default=300.0, gt=0, description="Longest a recovery may take before going live anyway."
    )


class Settings(BaseSettings):
    """Every setting of `monitor run`."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid", env_parse_none_str=NULL
    )

    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    window: WindowSettings = Field(default_factory=WindowSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    model: ModelSettings = Field(default_factory=ModelSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    shard: ShardSettings = Field(default_factory=ShardSettings)
    nats: NatsSettings = Field(default_factory=NatsSettings)
    signals: list[SignalSettings] = Field(
        default_factory=list,
        description="Signals known beside the built-in vitals (keys below, `[[signals]]`). "
        "A model card lists those it was trained on, so serving it needs none here. In the "
        'environment a JSON list: `[{"name": "ecg_mv", "unit": "mV", "low": -5, "high": 5}]`.',
    )
    shutdown_grace_s: float = Field(default=10.0, gt=0)
    housekeeping_interval_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _stuck_after_stall(self) -> Settings:
        stuck = self.metrics.stuck_after_s
        if stuck <= self.model.stall_after_s or stuck <= self.housekeeping_interval_s:
            raise ValueError(
                "metrics.stuck_after_s must be above model.stall_after_s and "
                "housekeeping_interval_s (a stalled forward is reported before /healthz fails)"
            )
        return self

    def registry(self) -> Registry:
        """The built-in vitals plus the signals registered here."""
        return Registry(s.vital() for s in self.signals)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from CLI overrides, the environment and an optional TOML file.

    Args:
        config_file: A TOML file with the same sections as `Settings`.
        **overrides: Values from CLI flags (nested dicts per section); they win.

    Raises:
        SettingsError: Any value is invalid, the file is missing or is not TOML.
    """
    if config_file is not None and not config_file.is_file():
        raise SettingsError([f"config file {config_file} does not exist"])

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
            if config_file is not None:
                sources += (InitSettingsSource(settings_cls, _toml_values(config_file)),)
            return sources

    try:
        loaded = _FromFile(**overrides)
    except ValidationError as exc:
        # from None: a chained ValidationError would print its input, maybe a password.
        raise SettingsError(_problems(exc)) from None
    except ValueError as exc:  # a TOML syntax error
        raise SettingsError([f"{config_file}: {exc}"]) from exc
    return loaded


def _toml_values(path: Path) -> dict[str, Any]:
    """A TOML file's tables, each string `NULL` in them read as None (TOML has no null).

    Raises:
        ValueError: Not TOML (`tomllib.TOMLDecodeError`).
    """
    with path.open("rb") as f:
        values: dict[str, Any] = _nulls(tomllib.load(f))
    return values


def _nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return None if value == NULL else value


def _url_has_password(url: Any) -> bool:
    try:
        return url is not None and urlsplit(str(url)).password is not None
    except ValueError:  # a malformed URL: BrokerConfig says so
        return False


def _problems(exc: ValidationError) -> list[str]:
    """One line per error: the setting's dotted path and pydantic's message (never the input,
    which may be a password)."""
    problems = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])  # empty: a check across sections
        problems.append(f"{where}: {e['msg']}" if where else str(e["msg"]))
    return problems


class _BrokerOnly(BaseSettings):
    """The broker section alone, from the same environment names as `Settings`."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="ignore", env_parse_none_str=NULL
    )

    broker: BrokerSettings = Field(default_factory=BrokerSettings)


def load_broker(**overrides: Any) -> BrokerSettings:
    """Build broker settings for a command other than `run`: its flags, then the environment
    names `monitor run` reads (``MONITOR_BROKER__URL``, ``MONITOR_BROKER__PASSWORD_FILE``...).

    Args:
        **overrides: Values from the command's flags (keys of `BrokerSettings`); they win.

    Raises:
        SettingsError: A value is invalid; the lines name the setting, never a secret.
    """
    try:
        # Through __init__ (model_validate would skip the environment); init values win.
        values: dict[str, Any] = {"broker": overrides}
        return _BrokerOnly(**values).broker
    except ValidationError as exc:
        raise SettingsError(_problems(exc)) from None


def legacy_password(
    names: tuple[str, ...], environ: Mapping[str, str] = os.environ
) -> tuple[str | None, list[str]]:
    """The broker password from a deprecated environment variable, and the warnings to show.

    A deprecated name is used only when neither `MONITOR_BROKER__PASSWORD` nor
    `MONITOR_BROKER__PASSWORD_FILE` is set; either way, each one set earns one warning line.

    Args:
        names: The deprecated names this command read: ``MONITOR_BROKER_PASSWORD``
            (`record`, `replay`), ``MONITOR_SIM_PASSWORD`` (`simulate`) or
            ``MONITOR_BROKER_PASSWORD_FLAG`` (`run --password`).
        environ: The environment (injected for tests).
    """
    used = next((name for name in _PASSWORD_ENV if environ.get(name)), None)
    password: str | None = None
    warnings: list[str] = []
    for name in names:
        if not environ.get(name):
            continue
        if used is not None:
            warnings.append(f"{name} is deprecated and ignored: {used} is set")
            continue
        used, password = name, environ[name]
        warnings.append(
            f"{name} is deprecated and will stop working in the next release; "
            "use MONITOR_BROKER__PASSWORD or MONITOR_BROKER__PASSWORD_FILE"
        )
    return password, warnings
