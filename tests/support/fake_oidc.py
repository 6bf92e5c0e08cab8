"""A deliberately faulty OpenID provider on a loopback port, for what a real one never does:
discovery that is not JSON, a key set without keys, an ID token signed with another key or
carrying another nonce, a token answer that is garbage, a connection dropped mid-answer.

In its "good" mode it is a correct (if minimal) provider: it checks the client secret and
the PKCE verifier and signs a valid ID token, so a test can show that a failure comes from
the one fault its mode injects. The test switches modes with `POST /_mode`. Run as a process
of its own (`python -m tests.support.fake_oidc PORT CLIENT_ID CLIENT_SECRET`), stopped by PID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

MODES = ("good", "garbage-discovery", "huge-discovery", "garbage-jwks", "slow-token",
         "bad-signature", "wrong-nonce", "wrong-state", "garbage-token", "expired", "hangup",
         "no-username", "token-refused")


def serve(port: int, client_id: str, client_secret: str, cert: str = "", key: str = ""
          ) -> None:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    base = f"{'https' if cert else 'http'}://127.0.0.1:{port}"
    good_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
    other_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
    state = {"mode": "good"}
    pending: dict[str, dict[str, str]] = {}  # code -> the authorization request
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: object, status: int = 200) -> None:
            self._send(status, json.dumps(data).encode())

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            mode = state["mode"]
            if url.path == "/.well-known/openid-configuration":
                if mode == "garbage-discovery":
                    self._send(200, b"<html><body>Welcome to nginx!</body></html>",
                               "text/html")
                    return
                if mode == "huge-discovery":  # 2 MiB of one JSON string
                    self._send(200, b'{"issuer": "' + b"x" * (2 << 20) + b'"}')
                    return
                self._json({"issuer": base, "authorization_endpoint": base + "/authorize",
                            "token_endpoint": base + "/token", "jwks_uri": base + "/jwks",
                            "code_challenge_methods_supported": ["S256"],
                            "token_endpoint_auth_methods_supported": ["client_secret_basic"]})
            elif url.path == "/jwks":
                if mode == "garbage-jwks":
                    self._json({"keys": "none today"})
                    return
                self._json({"keys": [good_key.as_dict(private=False)]})
            elif url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                code = secrets.token_urlsafe(16)
                with lock:
                    pending[code] = query
                answer_state = "forged-" + query.get("state", "") if mode == "wrong-state" \
                    else query.get("state", "")
                where = query["redirect_uri"] + "?" + urlencode({"code": code,
                                                                  "state": answer_state})
                self._send(302, b"", "text/plain", {"location": where})
            else:
                self._send(404, b"{}")

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode()
            if url.path == "/_mode":
                state["mode"] = body
                self._json({"mode": body})
                return
            if url.path != "/token":
                self._send(404, b"{}")
                return
            mode = state["mode"]
            if mode == "slow-token":  # longer than Moorage waits (oidc_timeout_seconds)
                time.sleep(600)
                return
            if mode == "hangup":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if mode == "garbage-token":
                self._send(200, b"\x00\xffnot json at all", "application/octet-stream")
                return
            form = {k: v[0] for k, v in parse_qs(body).items()}
            expected = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()
                                                   ).decode()
            with lock:
                request = pending.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                                 ).decode().rstrip("=")
            if mode == "token-refused" or self.headers.get("authorization") != expected \
                    or request is None or request.get("code_challenge") != challenge \
                    or request.get("code_challenge_method") != "S256" \
                    or form.get("redirect_uri") != request.get("redirect_uri"):
                self._json({"error": "invalid_grant",
                            "error_description": "grant request is invalid"}, 400)
                return
            now = int(time.time())
            claims = {"iss": base, "aud": client_id, "sub": "subject-frank",
                      "iat": now, "exp": now + 300, "nonce": request.get("nonce", ""),
                      "preferred_username": "frank", "groups": ["fakers"]}
            if mode == "wrong-nonce":
                claims["nonce"] = "a-nonce-of-another-sign-in"
            if mode == "expired":
                claims["iat"], claims["exp"] = now - 7200, now - 3600
            if mode == "no-username":
                del claims["preferred_username"]
            key = other_key if mode == "bad-signature" else good_key
            token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
            self._json({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                        "expires_in": 300, "id_token": token})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if cert:  # HTTPS with a certificate of a CA made in the test
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"fake provider on {base}", flush=True)
    server.serve_forever()


class FakeProvider:
    """The process, seen from a test: start, switch modes, stop (by PID), start again."""

    def __init__(self, port: int, client_id: str = "moorage",
                 client_secret: str = "fake-client-secret-0123456789",
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.tls = tls  # (certificate, key, the CA file that trusts it)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.tls[2])) if self.tls else True

    def settings(self) -> dict[str, str]:
        return {"MOORAGE_OIDC_ISSUER": self.issuer, "MOORAGE_OIDC_CLIENT_ID": self.client_id,
                "MOORAGE_OIDC_CLIENT_SECRET": self.client_secret,
                "MOORAGE_OIDC_DISPLAY_NAME": "Faulty SSO", "MOORAGE_OIDC_TIMEOUT_SECONDS": "15"}

    def start(self) -> "FakeProvider":
        from tests.support.processes import wait_until

        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_oidc", str(self.port), self.client_id,
             self.client_secret, *([str(p) for p in self.tls[:2]] if self.tls else [])],
            cwd=root, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                return httpx.get(self.issuer + "/jwks", timeout=5,
                                 verify=self.verify).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(answers, bound=120, step=0.1):
            raise RuntimeError("the fake provider did not start")
        return self

    def mode(self, mode: str) -> None:
        assert mode in MODES
        httpx.post(self.issuer + "/_mode", content=mode, timeout=30,
                   verify=self.verify).raise_for_status()

    def stop(self) -> None:
        from tests.support.processes import stop_group

        stop_group(self.proc, grace=15)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], *sys.argv[4:6])
