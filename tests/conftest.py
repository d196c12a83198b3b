"""Suite-wide settings."""

from __future__ import annotations

from hypothesis import settings

# The suite runs beside dockerd on two cores: wall-clock deadlines would only measure the load.
settings.register_profile("gcd", deadline=None)
settings.load_profile("gcd")
