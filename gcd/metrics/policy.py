"""The policy figures of `Metrics`: the policy in force, its reloads, what compose rules read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from prometheus_client import Gauge

from gcd.core.compose import ComposeImages

__all__ = ["PolicyFigures"]


class PolicyFigures:
    """Mixed into `gcd.metrics.definitions.Metrics`, which defines these series."""

    policy_info: Gauge
    policy_reload_success: Gauge
    compose_files: Gauge
    compose_globs_unmatched: Gauge

    def record_policy_loaded(self, content: bytes) -> str:
        """The policy file's bytes now in force; returns their sha256 (hex)."""
        digest = hashlib.sha256(content).hexdigest()
        self.policy_info.clear()
        self.policy_info.labels(digest).set(1)
        self.policy_reload_success.set(1)
        return digest

    def record_policy_reload_failed(self) -> None:
        """A reload was rejected; the previous policy (and its gcd_policy_info) stays."""
        self.policy_reload_success.set(0)

    def record_compose(self, read: Iterable[ComposeImages]) -> None:
        """What the compose rules read in a cycle: files by state, globs matching none."""
        failed: set[str] = set()
        ok: set[str] = set()
        unmatched = 0
        for images in read:
            failed |= {failure.file for failure in images.failures}
            ok |= set(images.files)
            unmatched += len(images.unmatched_globs)
        self.compose_files.labels("ok").set(len(ok - failed))
        self.compose_files.labels("failed").set(len(failed))
        self.compose_globs_unmatched.set(unmatched)
