"""The advisory database of the vulnerability scanner: import of OSV dumps and Alpine's
secdb (importer.py), version order per ecosystem (versions.py, apk.py), severity from CVSS
(severity.py), and matching of installed packages (matching.py). Queries in store.py; the
read-only API in api.py, installed by app.py."""
