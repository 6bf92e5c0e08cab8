"""The Harbor kind against the Harbor API stand-in (tests/support/harbor_api.py) in front of a
real Distribution: projects and repositories are listed through `/api/v2.0` page by page
(its `_catalog` is closed, as Harbor's is to non-administrators), then the v2 pulls are the
Distribution's own."""

from __future__ import annotations

import asyncio

import pytest

from tests.replication.imports.conftest import HarborApi
from tests.replication.imports.helpers import (Seeded, digests_at, expected,
                                               start_import, wait_finished)
from tests.replication.rules.conftest import BASIC_PASSWORD, BASIC_USER
from tests.support.server import MoorageServer


def _auth() -> dict[str, str]:
    return {"username": BASIC_USER, "password": BASIC_PASSWORD}


def test_a_harbor_project_is_imported_through_its_api(importer: MoorageServer,
                                                      harbor: HarborApi,
                                                      seeded: Seeded) -> None:
    job = start_import(importer, url=harbor.url, kind="harbor", namespace="other",
                       into="harbor", **_auth())
    done = wait_finished(importer, job["id"])
    assert done["status"] == "succeeded", done
    other = seeded.named("other")
    assert (done["repositories_done"], done["tags_done"]) == (len(other), len(other))
    assert asyncio.run(digests_at(importer, other, "harbor/")) == expected(other)
    asked = harbor.requests()
    assert any(r["path"] == "/api/v2.0/projects/other/repositories" and r["status"] == 200
               for r in asked), asked
    assert not any(r["path"] == "/v2/_catalog" for r in asked)


@pytest.mark.slow
def test_a_whole_harbor_is_listed_page_by_page(importer: MoorageServer, harbor: HarborApi,
                                               seeded: Seeded) -> None:
    """190 repositories in project bulk: two pages of Harbor's largest page size."""
    job = start_import(importer, url=harbor.url, kind="harbor", into="everything",
                       repositories=None, **_auth())
    done = wait_finished(importer, job["id"])
    assert done["status"] == "succeeded", done
    assert done["repositories_total"] == len(seeded.images) == 200
    assert asyncio.run(digests_at(importer, seeded.images, "everything/")) \
        == expected(seeded.images)
    pages = [r for r in harbor.requests() if r["path"] == "/api/v2.0/projects/bulk/repositories"]
    assert {r["query"] for r in pages} >= {"page=1&page_size=100", "page=2&page_size=100"}
    assert any(r["path"] == "/api/v2.0/projects" for r in harbor.requests())


def test_harbor_credentials_refused_fail_clearly(importer: MoorageServer,
                                                 harbor: HarborApi) -> None:
    job = start_import(importer, url=harbor.url, kind="harbor", username=BASIC_USER,
                       password="wrong-harbor-password-7")
    done = wait_finished(importer, job["id"])
    assert done["status"] == "failed" and "refused" in done["message"], done
    assert "wrong-harbor-password-7" not in str(done)


def test_the_distribution_kind_against_harbor_says_the_catalog_is_closed(
        importer: MoorageServer, harbor: HarborApi) -> None:
    job = start_import(importer, url=harbor.url, **_auth())
    done = wait_finished(importer, job["id"])
    assert done["status"] == "failed" and "catalog" in done["message"], done


