"""Argon2 never runs on an event loop: a structural check at the service level.

`verify_password` and `hash_password` refuse to run on a thread that is running an event
loop, so any path that would stall the loop with ~40 ms of argon2 fails loudly instead. The
services are then driven inside a real event loop, with a real database and real argon2:
each door must check a wrong password (and an unknown user's) without tripping the guard.
Over HTTP, the same guard turns such a regression into a 500, which the throttle tests
(wrong passwords answered 401 on every door) would see.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from moorage.access.secrets import hash_password, verify_password
from moorage.app import build_instance
from moorage.oci.errors import RegistryError
from moorage.settings import load_settings
from moorage.web.token_api import TokenAPI


def test_argon2_refuses_to_run_on_an_event_loop() -> None:
    hashed = hash_password("correct horse")
    assert verify_password(hashed, "correct horse")

    async def on_the_loop() -> None:
        verify_password(hashed, "correct horse")

    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(on_the_loop())

    async def in_a_thread() -> bool:
        return await asyncio.to_thread(verify_password, hashed, "correct horse")

    assert asyncio.run(in_a_thread())


def _scope(path: str, method: str = "GET", query: bytes = b"",
           auth: tuple[str, str] | None = None) -> dict[str, object]:
    headers = [(b"host", b"registry.test")]
    if auth:
        headers.append((b"authorization",
                        b"Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode())))
    return {"type": "http", "method": method, "path": path, "query_string": query,
            "headers": headers, "client": ("192.0.2.10", 4000), "scheme": "http",
            "server": ("127.0.0.1", 5000)}


@pytest.mark.parametrize("username", ["admin", "nobody"])
def test_every_door_checks_passwords_off_the_loop(tmp_path: Path, username: str) -> None:
    # Five wrong passwords in a row: no lockout here, it would answer the last ones with 429.
    settings = load_settings(environ={}, overrides={"data_dir": tmp_path,
                                                    "login_lockout_failures": 0})
    instance = build_instance(settings)
    instance.manager.bootstrap_admin("the-admin-password")
    access = instance.access
    wrong = (username, "not-the-password")

    async def doors() -> list[int]:
        statuses = []
        for call in (lambda: access.base(_scope("/v2/", auth=wrong)),
                     lambda: access.authorize(_scope("/v2/team/app/tags/list", auth=wrong),
                                              "team/app", "pull"),
                     lambda: access.catalog_filter(_scope("/v2/_catalog", auth=wrong))):
            with pytest.raises(RegistryError) as refused:
                await call()
            statuses.append(refused.value.status)
        api = TokenAPI(access, 3600)
        for method, query, body in (("GET", b"service=moorage", b""),
                                    ("POST", b"", f"grant_type=password&username={username}"
                                                  f"&password=nope&service=moorage".encode())):
            sent: list[dict[str, object]] = []

            async def receive() -> dict[str, object]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, object]) -> None:
                sent.append(message)

            await api(_scope("/auth/token", method, query, wrong if method == "GET" else None),
                      receive, send)
            statuses.append(int(sent[0]["status"]))  # type: ignore[call-overload]
            assert b"event loop" not in b"".join(m.get("body", b"") for m in sent)  # type: ignore[misc]
        return statuses

    assert asyncio.run(doors()) == [401, 401, 401, 401, 401]

    async def right() -> int:
        caller = await access.authorize(_scope("/v2/team/app/tags/list",
                                               auth=("admin", "the-admin-password")),
                                        "team/app", "pull")
        return 0 if caller.principal and caller.principal.is_admin else 1

    assert asyncio.run(right()) == 0, "the right password works through the same paths"
