"""Networks: the `networks:` section of the policy. Pure.

Guards first: never the engine's own networks (`bridge`, `host`, `none`) nor swarm's, never a
network any container (in any state) is attached to or the engine lists an endpoint of. A
user-defined network nothing has used for `unused_for` goes. Networks hold no bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gcd.core.kind import Kind

KIND = Kind.NETWORK


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    unused_for: timedelta
