"""The shipped alert rules and dashboard queries, checked by Prometheus's own promtool.

`promtool check rules` lints the rules, `promtool test rules` runs their unit tests (each alert
firing and not firing, per host), and every dashboard query, with Grafana's variables filled
in, must parse as PromQL too. scripts/bootstrap installs promtool (Debian package
`prometheus`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMTOOL = shutil.which("promtool")
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        PROMTOOL is None, reason="promtool is missing: apt-get install -y prometheus"
    ),
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "gcd.rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "gcd.rules.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "gcd.json"
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1d",
    "$instance": ".*",
}


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_the_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_unit_tests_firing_and_not_firing() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == alerts
    assert quiet == alerts


def test_a_broken_expectation_makes_promtool_fail(tmp_path: Path) -> None:
    """The unit tests can fail: a copy expecting a host that is fine to alert does."""
    shutil.copy(RULES, tmp_path / RULES.name)
    text = RULE_TESTS.read_text().replace(
        'exp_labels: {severity: critical, job: gcd, instance: "build-1:9795"}',
        'exp_labels: {severity: critical, job: gcd, instance: "build-2:9795"}',
        1,
    )
    (tmp_path / RULE_TESTS.name).write_text(text)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def _dashboard_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_exprs(item)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool has no offline PromQL parser of its own, but it parses recording rules."""
    exprs = sorted(set(_dashboard_exprs(json.loads(DASHBOARD.read_text())["panels"])))
    assert exprs
    rules = []
    for number, query in enumerate(exprs):
        expr = query
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert not re.search(r"\$\w+", expr), f"unknown Grafana variable in {query!r}"
        rules.append({"record": f"gcd_dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
