"""An in-process event bus: the core announces what happened; features subscribe.

This is how the core stays ignorant of features (audit, webhooks, replication): they register
a handler in app.py and the core only ever calls `publish`. Who did it and from where comes
from the request context the web layer sets, so the core need not pass it around.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

log = logging.getLogger("moorage.events")

# Actions: push, pull, delete (manifests and tags, repositories), blob.push, blob.mount,
# blob.delete, login (a token issued, or a failed login), quota, gc, refused /v2 requests
# (web/refusals.py: manifest.push, blob.upload, ... with result "failure"), and management
# changes as "<resource>.<verb>".
_caller: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "moorage_caller", default=("", ""))


def set_caller(actor: str, address: str) -> None:
    """Record who is behind the current request (the web layer calls this once per request)."""
    _caller.set((actor, address))


# The id of the request being served (ops/logs.py), carried into the events it causes.
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("moorage_request_id",
                                                                  default="")


def set_request_id(value: str) -> None:
    _request_id.set(value)


def request_id() -> str:
    return _request_id.get()


def current_actor() -> str:
    """Who is behind the request being served, as set_caller recorded it ("" if unknown)."""
    return _caller.get()[0]


# What a background actor (a retention rule, GC) adds to the detail of every event it causes.
_cause: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "moorage_cause", default=None)


@contextmanager
def acting_as(actor: str, **cause: Any) -> Iterator[None]:
    """Within the block, events are done by `actor` (a rule, GC: not a person) and carry
    `cause` in their detail, so that the audit log names the rule behind a delete, not the
    nobody of a background job. Restored on exit: the worker thread serves other jobs."""
    caller = _caller.set((actor, ""))
    because = _cause.set(cause or None)
    try:
        yield
    finally:
        _cause.reset(because)
        _caller.reset(caller)


class _EventFields(NamedTuple):
    action: str
    repository: str | None
    digest: str | None
    media_type: str | None
    tag: str | None
    size: int | None
    result: str
    target: str
    actor: str
    address: str
    detail: dict[str, Any]
    at: float
    request_id: str


_GIVEN_BY_CONTEXT: Any = object()  # "not passed": the field comes from the request context
_new_tuple = tuple.__new__


class Event(_EventFields):
    """What happened, immutable (every subscriber sees the same event).

    A named tuple with its own constructor rather than a frozen dataclass: every pull makes
    one on the request path, and a frozen dataclass's __init__ (one object.__setattr__ and one
    default factory call per field) cost three times as much (~1.9 against ~0.6 µs).
    Unless given, who and from where come from the request being served (set_caller), or the
    background actor (acting_as), whose cause is then the detail; `at` is the time it is made
    and `request_id` the id of the request being served.
    """

    __slots__ = ()

    def __new__(cls, action: str, repository: str | None = None, digest: str | None = None,
                media_type: str | None = None, tag: str | None = None,
                size: int | None = None, result: str = "success", target: str = "",
                actor: str = _GIVEN_BY_CONTEXT, address: str = _GIVEN_BY_CONTEXT,
                detail: dict[str, Any] = _GIVEN_BY_CONTEXT, at: float = _GIVEN_BY_CONTEXT,
                request_id: str = _GIVEN_BY_CONTEXT) -> Event:
        if actor is _GIVEN_BY_CONTEXT or address is _GIVEN_BY_CONTEXT:
            caller = _caller.get()
            if actor is _GIVEN_BY_CONTEXT:
                actor = caller[0]
            if address is _GIVEN_BY_CONTEXT:
                address = caller[1]
        if detail is _GIVEN_BY_CONTEXT:
            cause = _cause.get()
            detail = dict(cause) if cause else {}
        return _new_tuple(cls, (action, repository, digest, media_type, tag, size, result,
                                target, actor, address, detail,
                                time.time() if at is _GIVEN_BY_CONTEXT else at,
                                _request_id.get() if request_id is _GIVEN_BY_CONTEXT
                                else request_id))

    def __eq__(self, other: object) -> bool:  # an event equals an event, not a bare tuple
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # the detail is a dict, as before

    def describe_target(self) -> str:
        if self.target:
            return self.target
        where = self.repository or ""
        if self.tag:
            where += f":{self.tag}"
        if self.digest:
            where += f"@{self.digest}"
        return where


Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:  # a broken subscriber must never fail a push or a pull
                log.exception("event handler %r failed on %s", handler, event.action)
