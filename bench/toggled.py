"""`moorage serve` with a layer taken out, for the on/off rows of bench/toggles.py only.

    MOORAGE_BENCH_OFF=audit,metrics python bench/toggled.py serve --listen … --workers 2

Moorage has no setting that turns its audit log or its metrics off: the audit log is part of
the editions that have it, and every request is counted for /metrics. To price each, this
launcher wraps `moorage.app.create_app` before the CLI runs `serve`; granian forks its workers
from this process, so each builds the usual app and then drops what is named:

- `audit`: the audit recorder no longer hears the event bus (pulls, pushes, deletions are
  not recorded; the flusher still runs, with nothing to write);
- `metrics`: the per-request middleware (count, latency, bytes by route template), the event
  bus handler and the cache-lookup hook are taken out (/metrics still answers, with less).

It reaches into private attributes of the app on purpose, and fails loudly (the worker does
not start) when one of them is no longer where it was, rather than measure nothing.
"""

from __future__ import annotations

import os
import sys
from typing import Any

KNOWN = ("audit", "metrics")


def _without(bus: Any, handler: Any, what: str) -> None:
    handlers = bus._handlers  # noqa: SLF001 - the bench's own business
    if handler not in handlers:
        raise RuntimeError(f"bench/toggled.py: {what} is not subscribed to the event bus")
    handlers.remove(handler)


def strip(app: Any, off: set[str]) -> Any:
    """`app` (a MoorageApp) without the layers named in `off`."""
    registry = app.instance.registry
    if "audit" in off:
        if app.instance.audit is None:
            raise RuntimeError("bench/toggled.py: this edition has no audit log to turn off")
        _without(registry.bus, app.instance.audit, "the audit recorder")
    if "metrics" in off:
        from moorage.ops.metrics import ObservedRequests

        outer = app._http  # noqa: SLF001
        if not isinstance(outer, ObservedRequests):
            raise RuntimeError("bench/toggled.py: the request metrics middleware moved")
        outer.counting = False  # the request ids stay; nothing is counted
        _without(registry.bus, app.metrics.on_event, "the metrics event handler")
        registry.on_cache_lookup = lambda kind, hit: None
    return app


def main() -> None:
    off = {name for name in os.environ.get("MOORAGE_BENCH_OFF", "").split(",") if name}
    unknown = off - set(KNOWN)
    if unknown:
        sys.exit(f"bench/toggled.py: MOORAGE_BENCH_OFF names {sorted(unknown)}; "
                 f"known: {', '.join(KNOWN)}")
    import moorage.app

    made = moorage.app.create_app
    moorage.app.create_app = lambda: strip(made(), off)  # type: ignore[assignment]
    from moorage.cli.main import main as cli

    sys.argv = ["moorage", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
