"""The pure core: records, rules, policy, evaluation, accounting. Standard library and re2
only (import-linter enforces it); every decision is made here, nothing is done here."""
