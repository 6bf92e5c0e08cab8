"""Retention planning as a pure function: what goes, what stays, and why."""

from __future__ import annotations

from moorage.db.policy import ArtifactRow, RetentionRuleRow
from moorage.policy.retention import plan_repository

NOW = 1_000_000.0
DAY = 86400


def rule(**kw: object) -> RetentionRuleRow:
    values: dict[str, object] = dict(id=1, namespace="team", repository_pattern="**",
                                     tag_pattern="*", keep_last=None, older_than_seconds=None,
                                     untagged=False, always_keep=None, schedule=None,
                                     enabled=True, created_at=0.0)
    values.update(kw)
    return RetentionRuleRow(**values)  # type: ignore[arg-type]


def art(digest: str, *tags: tuple[str, float], subject: str | None = None,
        child: bool = False) -> ArtifactRow:
    return ArtifactRow(digest, 0.0, subject, tuple(tags), child)


def d(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def never(_: str, __: str) -> bool:
    return False


def test_keep_last_n_by_push_time() -> None:
    artifacts = [art(d(i), (f"v{i}", NOW - i * DAY)) for i in range(5)]
    plan = plan_repository(rule(keep_last=2), "team/app", artifacts, never, NOW)
    assert sorted(plan.delete_tags) == ["v2", "v3", "v4"]
    assert sorted(plan.delete_manifests) == [d(2), d(3), d(4)]
    assert plan.kept["v0"] == plan.kept["v1"] == "among the newest 2"


def test_age_and_pattern_and_always_keep_combine() -> None:
    artifacts = [art(d(1), ("dev-1", NOW - 10 * DAY)), art(d(2), ("dev-2", NOW - DAY)),
                 art(d(3), ("release-1", NOW - 30 * DAY)),
                 art(d(4), ("dev-keep", NOW - 40 * DAY))]
    plan = plan_repository(rule(tag_pattern="dev-*", older_than_seconds=7 * DAY,
                                always_keep="*-keep"), "team/app", artifacts, never, NOW)
    assert plan.delete_tags == ["dev-1"]
    assert "release-1" not in plan.kept and "release-1" not in plan.delete_tags
    assert plan.kept["dev-2"] == "younger than 1w", "the duration as written, not 604800s"
    assert plan.delete_reasons == {"dev-1": "older than 1w"}
    assert plan.kept["dev-keep"].startswith("matches always-keep")


def test_manifest_with_surviving_tag_stays() -> None:
    artifacts = [art(d(1), ("old", NOW - 9 * DAY), ("stable", NOW - 9 * DAY))]
    plan = plan_repository(rule(tag_pattern="old"), "team/app", artifacts, never, NOW)
    assert plan.delete_tags == ["old"] and plan.delete_manifests == []


def test_untagged_children_and_referrers() -> None:
    image, index, child = d(1), d(2), d(3)
    sig_by_subject, sig_by_tag, untagged = d(4), d(5), d(6)
    artifacts = [
        art(image, ("v1", NOW - 5 * DAY)),
        art(index, ("multi", NOW)),
        art(child, child=True),
        art(sig_by_subject, subject=image),
        art(sig_by_tag, (f"sha256-{image[7:]}.sig", NOW)),
        art(untagged),
    ]
    plan = plan_repository(rule(tag_pattern="v*", untagged=True), "team/app", artifacts, never,
                           NOW)
    assert plan.delete_tags == ["v1"]
    assert plan.delete_manifests == [image, untagged, sig_by_subject, sig_by_tag]
    assert child not in plan.delete_manifests, "an index's child lives with its index"


def test_immutable_tags_are_never_planned() -> None:
    artifacts = [art(d(i), (f"v{i}", NOW - i * DAY)) for i in range(3)]
    plan = plan_repository(rule(), "team/app", artifacts,
                           lambda repo, tag: tag == "v1", NOW)
    assert sorted(plan.delete_tags) == ["v0", "v2"]
    assert plan.kept["v1"] == "immutable"


def test_repository_pattern_is_relative_to_namespace() -> None:
    from moorage.policy.retention import covers

    assert covers(rule(repository_pattern="apps/*"), "team/apps/web")
    assert not covers(rule(repository_pattern="apps/*"), "team/tools/web")
    assert covers(rule(), "team")
