"""A real Prometheus server started by a test on a free loopback port.

It scrapes one target every second, loads the given rule files, and answers instant queries
through its HTTP API, so tests can check PromQL against what a daemon actually exports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.mosquitto import free_port


class PrometheusQueryError(RuntimeError):
    """Prometheus refused a query (parse or evaluation error)."""

    def __init__(self, expr: str, error: str) -> None:
        super().__init__(f"{error}: {expr}")
        self.expr = expr
        self.error = error


@dataclass
class Prometheus:
    """A Prometheus process on 127.0.0.1:port scraping `target` as job `job_name`.

    Attributes:
        workdir: Folder for the generated config, the TSDB and the log.
        target: The scraped `host:port`.
        rule_files: Rule files loaded by the server (absolute paths).
        job_name: The scrape job's name, as rules select it (`up{job=...}`).
        scrape_interval: Scrape and rule evaluation interval.
    """

    workdir: Path
    target: str
    rule_files: Sequence[Path] = ()
    job_name: str = "vitals-monitor"
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Prometheus's own log (stdout and stderr)."""
        return self.workdir / "prometheus.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: no YAML library needed to write the config.
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {"job_name": self.job_name, "static_configs": self._static_configs()}
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _static_configs(self) -> list[dict[str, Any]]:
        """The job's targets (one: `target`)."""
        return [{"targets": [self.target]}]

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until /-/ready answers 200."""
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        config = self._write_config()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                # S310: the URL is always http://127.0.0.1:<port>, built here.
                ready = f"{self.url}/-/ready"
                with urllib.request.urlopen(ready, timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"prometheus not ready after {timeout}s")

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            url = f"{self.url}{path}{query}"
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - see start()
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            # 400/422: Prometheus explains the error in the JSON body.
            with exc:
                body = json.loads(exc.read())
        if body.get("status") != "success":
            raise PrometheusQueryError(params.get("query", path), str(body.get("error")))
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant query now.

        Args:
            expr: A PromQL expression.

        Returns:
            The result vector: dicts with `metric` (labels) and `value` ([time, "value"]).

        Raises:
            PrometheusQueryError: Prometheus could not parse or evaluate the expression.
        """
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule, with its `health`, `lastError` and `lastEvaluation`."""
        groups = self._get("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
