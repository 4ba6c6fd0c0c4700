"""Observability: Prometheus metrics (``metrics``), request ids and log formats (``logs``)."""
