"""gcd: policy-driven garbage collection for Docker hosts."""

__version__ = "0.1.0"
