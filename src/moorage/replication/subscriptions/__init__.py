"""Artifact subscriptions (issue 18, item 3): follow an upstream repository into a local
one with a tag filter (glob, regex or SemVer range) on a schedule, optionally keeping only
the newest N. model.py and filters.py are pure; store.py holds the tables; service.py the
management and the run (a job on the copy engine)."""

from __future__ import annotations
