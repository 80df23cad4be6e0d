"""The gateway: the per-call control chain in front of every API."""
