"""Encryption turned on over blobs stored in plaintext, without encryption_allow_plaintext:
the server says so when it starts (with the command to run), and a GET of such a blob gets a
clear registry error, never a 500. Over real HTTP against a real server."""

from __future__ import annotations

import os

from tests.lifecycle.helpers import OCI_MANIFEST, admin_client, make_image, push


def test_plaintext_blobs_under_encryption_are_named_at_start_and_refused_clearly(
        make_registry) -> None:  # type: ignore[no-untyped-def]
    plain = make_registry("data")
    image = make_image([os.urandom(30_000)], "before encryption")
    with admin_client(plain) as client:
        assert push(client, "team/app", "v1", image).status_code == 201
    plain.stop()

    server = make_registry("data", env={"MOORAGE_ENCRYPTION": "true"})
    log = server.log()
    assert "stored in plaintext" in log and "moorage keys rewrap" in log, log
    assert "encryption_allow_plaintext" in log
    with admin_client(server) as client:
        assert client.get("/v2/team/app/manifests/v1",
                          headers={"Accept": OCI_MANIFEST}).status_code == 200
        for blob in image.blobs:
            resp = client.get(f"/v2/team/app/blobs/{blob}")
            assert resp.status_code == 503, (resp.status_code, resp.text)
            error = resp.json()["errors"][0]
            assert error["code"] == "UNKNOWN"
            assert "not encrypted" in error["message"] and "rewrap" in error["message"]
        # a push of new content is encrypted and served as usual
        fresh = make_image([os.urandom(1000)], "after")
        assert push(client, "team/app", "v2", fresh).status_code == 201
        for blob, data in fresh.blobs.items():
            assert client.get(f"/v2/team/app/blobs/{blob}").content == data
    assert "Traceback" not in server.log()
