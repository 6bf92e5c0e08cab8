"""Requests that came through Moorage's own TLS front (domains/front.py).

The front replaces `X-Moorage-Front` with the secret of this start, and sets the client's
address and the scheme. A request that carries the secret is rewritten here, before anything
else looks at it, as if the client had reached the app directly: `scope["client"]` is the
client's address (network rules, rate limits, the audit log), `scope["scheme"]` is https
(the token realm, secure cookies). The secret header is removed, so no log, no handler and
no call the console makes on the user's behalf ever sees it. Without the secret, nothing
forwarded is believed.
"""

from __future__ import annotations

import hmac

from moorage.access.network import parse_address
from moorage.web.http import Receive, Scope, Send

_SECRET = b"x-moorage-front"
_FOR = b"x-forwarded-for"
_PROTO = b"x-forwarded-proto"


class FrontHeaders:
    def __init__(self, app: object, secret: str) -> None:
        self.app = app
        self.secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope["headers"]
        given = next((v for k, v in headers if k == _SECRET), None)
        if given is not None:
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in headers if k != _SECRET]
            if hmac.compare_digest(given, self.secret):
                found = dict((k, v) for k, v in headers if k in (_FOR, _PROTO))
                address = parse_address(found.get(_FOR, b"").decode("latin-1"))
                if address is not None:
                    scope["client"] = (str(address), 0)
                if found.get(_PROTO) in (b"https", b"http"):
                    scope["scheme"] = found[_PROTO].decode()
        await self.app(scope, receive, send)  # type: ignore[operator]
