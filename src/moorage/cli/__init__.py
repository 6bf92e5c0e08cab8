"""The `moorage` command: `serve`, and the client commands that talk to /api/v1."""

import sys

# httpx imports its own command-line tool (click, pygments, rich syntax highlighting) when it
# can: ~0.1-0.2 s on every `moorage` command, for something we never use. Marking it absent
# before anything imports httpx makes httpx take its documented fallback.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
