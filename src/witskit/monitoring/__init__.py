"""Prometheus metrics and health checks (import the submodules: ``.metrics``, ``.health``)."""
