"""Caches: in-process LRU by default; Redis when replicas must share."""
