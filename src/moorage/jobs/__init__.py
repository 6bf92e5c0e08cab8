"""Durable background work: a queue in the metadata database, schedules, workers."""
