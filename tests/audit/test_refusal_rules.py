"""Which refused /v2 requests are recorded (moorage.web.refusals, pure: no server)."""

from __future__ import annotations

import pytest

from moorage.oci.errors import RegistryError
from moorage.web.refusals import ACTIONS, WRITES, refusal

DIGEST = "sha256:" + "b" * 64
DENIED = RegistryError("DENIED", "guest alice has role guest", detail={"reason": "role"})
CHALLENGE = RegistryError("UNAUTHORIZED", "authentication required")


def decide(kind: str, method: str, error: RegistryError, credentials: bool,
           **params: str | None):  # type: ignore[no-untyped-def]
    return refusal(kind, method, "team/app", params, error, "alice", "10.0.0.1", credentials)


@pytest.mark.parametrize(("kind", "method"), sorted(ACTIONS))
def test_a_challenge_without_credentials_is_never_recorded(kind: str, method: str) -> None:
    assert decide(kind, method, CHALLENGE, credentials=False) is None


@pytest.mark.parametrize(("kind", "method"), sorted(ACTIONS))
def test_a_refusal_of_credentials_is_always_recorded(kind: str, method: str) -> None:
    for error in (DENIED, CHALLENGE):
        event = decide(kind, method, error, credentials=True)
        assert event is not None and event.result == "failure"
        assert event.action == ACTIONS[kind, method]
        assert event.detail["status"] == error.status and event.detail["method"] == method


@pytest.mark.parametrize(("kind", "method"), sorted(ACTIONS))
def test_an_anonymous_403_is_recorded_for_writes_only(kind: str, method: str) -> None:
    event = decide(kind, method, DENIED, credentials=False)
    assert (event is not None) == (ACTIONS[kind, method] in WRITES)


def test_what_is_not_an_access_decision_is_not_a_refusal() -> None:
    for error in (RegistryError("MANIFEST_UNKNOWN"), RegistryError("TOOMANYREQUESTS"),
                  RegistryError("NAME_INVALID"),
                  RegistryError("DENIED", "over quota", detail={"reason": "quota"})):
        assert decide("manifest", "PUT", error, credentials=True) is None, error


def test_the_target_and_the_rule_of_a_policy() -> None:
    immutable = RegistryError("DENIED", "immutable v1",
                              detail={"reason": "immutable", "rule": 7})
    by_tag = decide("manifest", "DELETE", immutable, True, reference="v1")
    assert by_tag is not None and by_tag.describe_target() == "team/app:v1"
    assert by_tag.detail["rule"] == "immutability:7"
    by_digest = decide("blob", "DELETE", DENIED, True, digest=DIGEST)
    assert by_digest is not None and by_digest.describe_target() == f"team/app@{DIGEST}"
    assert by_digest.detail["refused_by"] == "role"
    upload = decide("upload", "PATCH", DENIED, True, upload_id="u-1")
    assert upload is not None and upload.detail["upload"] == "u-1"
    assert (upload.actor, upload.address) == ("alice", "10.0.0.1")
