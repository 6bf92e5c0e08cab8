"""Overview: usage against every quota of the edition, storage by namespace, pushes and
pulls over the last days, and recent activity (the last two from the audit log, for
administrators on editions that have one)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from moorage.web.console.site import ConsoleSite, Visit

DAYS = 14
_CHART_HEIGHT = 120


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    height: int
    kind: str
    label: str


def chart(days: list[dict[str, object]], width: int = 700) -> dict[str, object]:
    """Bars of pushes and pulls per day as SVG coordinates (drawn by the template: no
    script, no chart library)."""
    peak = max([1] + [int(d["pushes"]) for d in days] + [int(d["pulls"]) for d in days])  # type: ignore[call-overload]
    slot = width // max(1, len(days))
    bar = max(2, (slot - 6) // 2)
    bars: list[Bar] = []
    labels = []
    for i, day in enumerate(days):
        x = i * slot + 3
        for j, kind in enumerate(("pushes", "pulls")):
            value = int(day[kind])  # type: ignore[call-overload]
            height = round(_CHART_HEIGHT * value / peak)
            bars.append(Bar(x + j * bar, _CHART_HEIGHT - height, height,
                            "push" if kind == "pushes" else "pull",
                            f"{day['date']}: {value} {kind}"))
        labels.append((x, str(day["date"])[5:]))
    return {"bars": bars, "labels": labels, "width": width, "height": _CHART_HEIGHT + 16,
            "peak": peak, "base": _CHART_HEIGHT}


async def overview(visit: Visit) -> Response:
    info = await visit.get("/api/v1/info")
    namespaces = await visit.get("/api/v1/namespaces")
    if not info.ok:
        return visit.refused(info)
    data = info.data
    spaces = namespaces.data if namespaces.ok else []
    spaces = sorted(spaces, key=lambda n: -int(n.get("storage_used") or 0))
    activity = recent = None
    audit_note = ""
    if "audit_log" not in data.get("features", []):
        audit_note = "Activity needs the audit log (basic edition and up)."
    elif not visit.principal.is_admin:
        audit_note = "Activity comes from the audit log, which administrators read."
    else:
        days = await visit.get("/api/v1/audit/activity", days=DAYS)
        if days.ok:
            activity = {"days": days.data["days"], **chart(days.data["days"])}
            activity["total_pushes"] = sum(d["pushes"] for d in days.data["days"])
            activity["total_pulls"] = sum(d["pulls"] for d in days.data["days"])
        entries = await visit.get("/api/v1/audit", limit=10)
        if entries.ok:
            recent = entries.data["entries"]
    return visit.render("overview.html", title="Overview", info=data, namespaces=spaces[:20],
                        namespace_count=len(spaces), activity=activity, recent=recent,
                        audit_note=audit_note, days=DAYS)


def install(site: ConsoleSite) -> None:
    site.add_nav("Overview", "/", 0)
    site.get("/", overview)
