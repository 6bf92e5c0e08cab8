"""The remote client's settings for one source or destination of replication or import:
the same timeouts, retries and CA handling for both, from their tuning."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from moorage.remote import Limits, RemoteConfig, RetryPolicy, Timeouts


class ClientTuning(Protocol):
    @property
    def step_timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def work_dir(self) -> Path | None: ...


def client_config(url: str, username: str | None, password: str | None, ca_pem: str | None,
                  insecure: bool, ca_name: str, tuning: ClientTuning,
                  user_agent: str) -> RemoteConfig:
    """A CA bundle is written to `<work_dir>/<ca_name>-ca.pem` (the TLS client reads a
    file); the username is used only with a password."""
    step = tuning.step_timeout
    ca_file = None
    if ca_pem:
        folder = tuning.work_dir or Path(tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        ca_file = folder / f"{ca_name}-ca.pem"
        ca_file.write_text(ca_pem)
        os.chmod(ca_file, 0o600)
    return RemoteConfig(url, username=username if password else None, password=password,
                        ca_file=ca_file, insecure=insecure,
                        timeouts=Timeouts(connect=min(10.0, step), read=step, write=step,
                                          pool=step, request=step * 2),
                        retry=RetryPolicy(attempts=tuning.retries, base_delay=0.5,
                                          max_delay=10.0, max_retry_after=60.0),
                        limits=Limits(), user_agent=user_agent)
