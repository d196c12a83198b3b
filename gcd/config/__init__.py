"""Policy files and the metrics web-config: YAML with positions, validation, and the
permission check before a policy is trusted."""

import gcd

gcd.import_pydantic_lean()  # before any policy model imports pydantic
