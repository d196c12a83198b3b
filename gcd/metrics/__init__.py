"""Prometheus metrics: definitions on a registry passed in, the daemon's observer, the HTTP
server and the node_exporter textfile."""

DEFAULT_PORT = 9795
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"
"""Here, not in `server`, so that `gcd --help` shows it without importing prometheus_client."""
