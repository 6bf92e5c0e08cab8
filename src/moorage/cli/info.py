"""`moorage info`: what the instance is: version, edition, features and quota usage."""

from __future__ import annotations

from moorage.cli.client import connect
from moorage.cli.output import JsonFlag, details, print_json, say, table


def info(json_out: JsonFlag = False) -> None:
    """Show the server's version, edition, features and quotas with their usage."""
    with connect() as api:
        data = api.get("/info")
        if json_out:
            print_json(data)
            return
        details([("server", api.url), ("version", data["version"]),
                 ("edition", data["edition"]), ("authentication", data["auth"]),
                 ("sign-in", ", ".join(data.get("sign_in", ["local"])))]
                + [("single sign-on", f"{m['display_name']} (OpenID Connect, console "
                                      f"{m['url']})") for m in data.get("single_sign_on", [])])
    say("")
    table(["QUOTA", "USED", "LIMIT"],
          [(name, q["used"], "unlimited" if q["limit"] is None else q["limit"])
           for name, q in data["quotas"].items()])
    say("")
    on = [name for name, enabled in data["features"].items() if enabled]
    off = [name for name, enabled in data["features"].items() if not enabled]
    say("features: " + (", ".join(on) or "none"))
    if off:
        say("not in this edition: " + ", ".join(off))
    scanning = data.get("scanning")
    if scanning:
        say(f"scanning: engines {', '.join(scanning['engines'])}; "
            f"{scanning['harbor_adapters']} Harbor adapters; "
            f"Syft {'yes' if scanning['syft'] else 'no'}")
