"""End-to-end tests: the service with the real HAProxy, Prometheus, Alertmanager and Redis."""
