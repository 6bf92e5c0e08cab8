"""The scan service tests' server (advanced edition, scan on push, the fixture's Jinja2 and
urllib3 advisories imported) for the fix plan tests."""

from tests.scan.service.conftest import server  # noqa: F401 - the fixture
