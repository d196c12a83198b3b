"""One adapter per kind: how the executor re-checks and removes an object of that kind."""
