"""Policy files and the metrics web-config: YAML with positions, validation, and the
permission check before a policy is trusted."""
