"""Error codes: the spec's code and status, and the JSON body clients parse."""

from __future__ import annotations

import json

import pytest

from moorage.oci.errors import ERROR_CODES, RegistryError

# The distribution spec's code table with the status each is used with.
SPEC_STATUS = {
    "BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400, "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400, "NAME_UNKNOWN": 404, "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405, "TOOMANYREQUESTS": 429,
}


@pytest.mark.parametrize("code,status", sorted(SPEC_STATUS.items()))
def test_every_spec_code_is_known_with_its_status(code: str, status: int) -> None:
    assert ERROR_CODES[code][0] == status
    assert RegistryError(code).status == status


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_body_has_the_spec_shape(code: str) -> None:
    body = json.loads(RegistryError(code).body())
    assert list(body) == ["errors"]
    (error,) = body["errors"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert code.replace("_", "").isalpha() and code.isupper()


def test_detail_message_status_and_headers_are_kept() -> None:
    exc = RegistryError("BLOB_UNKNOWN", "gone", detail={"digest": "sha256:x"}, status=410,
                        headers={"X-A": "1"})
    assert exc.status == 410
    assert exc.headers == {"X-A": "1"}
    assert json.loads(exc.body()) == {"errors": [
        {"code": "BLOB_UNKNOWN", "message": "gone", "detail": {"digest": "sha256:x"}}]}


def test_non_ascii_messages_stay_valid_json() -> None:
    body = RegistryError("NAME_INVALID", "invalid repository name 'é\\n\"'").body()
    assert json.loads(body)["errors"][0]["message"] == "invalid repository name 'é\\n\"'"


def test_unknown_codes_are_a_programming_error() -> None:
    with pytest.raises(KeyError):
        RegistryError("NOT_A_CODE")
