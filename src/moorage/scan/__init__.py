"""Vulnerability scanning (issue 16): inventories of images, SBOMs, OSV advisories, engines,
reports and fix plans. A feature: installed from app.py on the edition's `scanning` switch;
the core only announces pushes and answers hooks.
"""
