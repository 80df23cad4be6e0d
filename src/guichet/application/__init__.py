"""The application layer: the only place that coordinates several domains — issuance,
management, notifications and the scheduled work."""
