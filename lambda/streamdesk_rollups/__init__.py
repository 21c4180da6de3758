"""Rollups of the requests table's stream: per-minute and per-hour counts, error groups, latency sketches."""
