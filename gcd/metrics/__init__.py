"""Prometheus metrics: definitions on a registry passed in, the daemon's observer, the HTTP
server and the node_exporter textfile."""
