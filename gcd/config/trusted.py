"""The policy for a command that deletes: refused when others could change it (permissions.py).

`gcd plan`, `gcd run --once` and `gcd daemon` (at start and on every SIGHUP) load the policy
through here; `gcd check` and `gcd test-pattern`, which delete nothing, only warn.
"""

from __future__ import annotations

from pathlib import Path

from gcd.config.loader import load_policy
from gcd.core.policy import Policy
from gcd.errors import InsecurePolicyError
from gcd.host.permissions import Finding, enforce, mode_finding, owner_finding, path_findings

POLICY_WHY = "whoever can change it decides what gcd deletes"


def policy_findings(path: Path) -> list[Finding]:
    """Everything that lets someone besides root and the running user change the policy."""
    findings, status = path_findings(path)
    if status is not None:
        findings += filter(
            None,
            [
                owner_finding(str(path), status, "root"),
                mode_finding(str(path), status, sticky_ok=False),
            ],
        )
    return findings


def load_trusted_policy(path: Path) -> Policy:
    """The policy at `path` for a command that deletes: `InsecurePolicyError` (exit 2) when
    others could change it (unless overridden), else `load_policy`'s answer."""
    enforce(policy_findings(path), f"the policy {path}", POLICY_WHY, InsecurePolicyError)
    return load_policy(path)
