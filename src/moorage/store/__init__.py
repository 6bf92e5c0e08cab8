"""Blob stores: bytes only, keyed by digest; staging areas for uploads in progress."""
