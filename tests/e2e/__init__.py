"""End-to-end tests: real Prometheus and Alertmanager around a real monitor."""
