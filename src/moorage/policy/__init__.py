"""Policies the core consults: tag immutability, retention (tag cleanup)."""
