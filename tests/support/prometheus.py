"""A throwaway Prometheus server (Debian's `prometheus`) on a free loopback port, with a scrape
config of the test's, queried over its HTTP API, stopped by PID."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import stop_group
from tests.support.server import free_port


class PrometheusServer:
    def __init__(self, folder: Path, target: str, metrics_token: str = "",
                 scrape_interval: str = "1s") -> None:
        self.folder = Path(folder)
        self.port = free_port()
        self.target = target  # HOST:PORT of the Moorage to scrape
        self.token = metrics_token
        self.scrape_interval = scrape_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.folder / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        job: dict[str, Any] = {"job_name": "moorage", "metrics_path": "/metrics",
                               "static_configs": [{"targets": [self.target]}]}
        if self.token:
            job["authorization"] = {"type": "Bearer", "credentials": self.token}
        return {"global": {"scrape_interval": self.scrape_interval,
                           "scrape_timeout": self.scrape_interval},
                "scrape_configs": [job]}

    def start(self, timeout: float = 60.0) -> "PrometheusServer":
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.skip("prometheus is not installed (apt-get install prometheus)")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [exe, f"--config.file={config}", f"--storage.tsdb.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_group(self.proc, grace=10)
        self._log.close()

    # -- the HTTP API -------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of a PromQL expression (`/api/v1/query`)."""
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        resp.raise_for_status()
        body = resp.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The value of an expression that gives one series (a sum, say), or None."""
        found = self.query(expr)
        return float(found[0]["value"][1]) if found else None

    def wait_for(self, expr: str, accept: Callable[[float], bool] = lambda v: v > 0,
                 timeout: float = 90.0) -> float:
        """Poll until the expression has a value `accept` takes; a bound for a hang, not a
        timing assertion (scrapes are a second apart, and the workers write their counts
        at most a second after a request)."""
        deadline = time.monotonic() + timeout
        found = None
        while time.monotonic() < deadline:
            found = self.value(expr)
            if found is not None and accept(found):
                return found
            time.sleep(0.5)
        raise AssertionError(f"{expr} is {found} after {timeout}s; targets: "
                             f"{self.targets()}\n{self.log()}")

    def label_values(self, label: str, match: str) -> list[str]:
        resp = httpx.get(f"{self.url}/api/v1/label/{label}/values",
                         params={"match[]": match}, timeout=10)
        resp.raise_for_status()
        return resp.json()["data"]

    def targets(self) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
        return [{k: t.get(k) for k in ("health", "lastError", "scrapeUrl")}
                for t in resp.json()["data"]["activeTargets"]]
