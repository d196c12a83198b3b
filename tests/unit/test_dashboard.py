"""The shipped dashboard and alert rules query only metrics and labels gcd really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gcd.core.kind import Kind
from gcd.metrics.definitions import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "gcd.json"
RULES = DEPLOY / "prometheus" / "gcd.rules.yaml"

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
}
NOT_GCD = {
    "up": "Prometheus's own scrape health of the gcd job",
    "node_textfile_mtime_seconds": "node_exporter's age of the timer's textfile (label file)",
}
TARGET_LABELS = {"instance", "job", "le", "file"}
KEYWORDS = {"and", "or", "unless", "offset", "bool"}
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.$:])([a-zA-Z_:][\w:]*)(\s*\()?")


def exported() -> tuple[set[str], set[str]]:
    """Series names (with the suffixes each type adds) and label names Metrics registers."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    # Series that exist only once something is recorded:
    metrics.record_disk(0.5, 0.5, 0.8, 0.7, pressure=False)
    metrics.record_docker_usage({Kind.IMAGE: 1})
    metrics.record_policy_loaded(b"version: 1\n")
    names: set[str] = set()
    labels: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    for family in registry.collect():
        for sample in family.samples:
            labels.update(sample.labels)
    return names, labels


def references(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) a PromQL expression uses. Functions, aggregations and
    keywords are told apart by syntax: a name before `(` is a function."""
    labels: set[str] = set()
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for matchers in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for clause in _CLAUSE.findall(text):
        labels.update(name.strip() for name in clause.split(",") if name.strip())
    text = _CLAUSE.sub(" ", text)
    metrics = {
        name for name, call in _IDENTIFIER.findall(text) if not call and name not in KEYWORDS
    }
    return metrics, labels


def dashboard_queries() -> Iterator[tuple[str, str]]:
    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            title = node.get("title", where)
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    yield title, value
                else:
                    yield from walk(value, title)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    document = json.loads(DASHBOARD.read_text())
    yield from walk(document["panels"], "panels")
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert match, f"variable {variable['name']}: unexpected query"
            yield f"variable {variable['name']}", f"{match[1]}{{{match[2]}!=''}}"


def rule_queries() -> Iterator[tuple[str, str]]:
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


QUERIES = [*dashboard_queries(), *rule_queries()]


class TestTheParser:
    def test_finds_metrics_and_labels_not_functions_or_keywords(self) -> None:
        metrics, labels = references(
            'sum by (job, instance) (increase(gcd_removals_total{outcome=~"a|b"}[1h] offset 1h))'
            " > 0 and on (instance) time() - gcd_start_time_seconds > 3 * 3600"
        )
        assert metrics == {"gcd_removals_total", "gcd_start_time_seconds"}
        assert labels == {"job", "instance", "outcome"}

    def test_ignores_label_values_and_grafana_variables(self) -> None:
        metrics, labels = references('x_total{instance=~"$instance", a="gcd_fake"}[$__range]')
        assert metrics == {"x_total"}
        assert labels == {"instance", "a"}


def test_there_are_queries_to_check() -> None:
    assert len([q for q in QUERIES if "gcd_" in q[1]]) >= 20


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[f"{w}: {e}" for w, e in QUERIES])
def test_every_query_uses_only_exported_metrics_and_labels(where: str, expr: str) -> None:
    names, labels = exported()
    used_metrics, used_labels = references(expr)
    assert used_metrics, f"{where}: no metric in {expr!r}"
    unknown = used_metrics - names - set(NOT_GCD)
    assert not unknown, f"{where}: {sorted(unknown)} are not exported by gcd.metrics.Metrics"
    unknown_labels = used_labels - labels - TARGET_LABELS
    assert not unknown_labels, f"{where}: labels {sorted(unknown_labels)} are not exported"


def test_host_panels_follow_the_host_selector() -> None:
    document = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["instance"]["multi"]
    assert variables["instance"]["includeAll"]
    host_row = next(
        p for p in document["panels"] if p["type"] == "row" and "$instance" in p["title"]
    )
    below = [p for p in document["panels"] if p["gridPos"]["y"] > host_row["gridPos"]["y"]]
    assert below
    for panel in below:
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]


def test_fleet_panels_rank_hosts() -> None:
    document = json.loads(DASHBOARD.read_text())
    titles = {p["title"]: p for p in document["panels"]}
    for title in ("Hosts by disk use", "Hosts by bytes freed"):
        assert titles[title]["targets"][0]["expr"].startswith("topk(")
    assert "Hosts with failing cycles" in titles


def test_every_alert_is_per_host_and_says_what_to_do() -> None:
    document = yaml.safe_load(RULES.read_text())
    alerts = [rule for group in document["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "GcdDown",
        "GcdNoSuccessfulCycle",
        "GcdEngineUnreachable",
        "GcdDiskPressureUnresolved",
        "GcdSafetyAbort",
        "GcdRemovalErrorsRising",
    }
    for alert in alerts:
        assert set(alert["annotations"]) == {"summary", "description", "what_to_do"}
        assert "{{ $labels.instance }}" in alert["annotations"]["summary"]
        assert alert["labels"]["severity"] in {"warning", "critical"}
        for aggregation in re.findall(r"\b(?:sum|max|min|count|avg)\b\s*(\w*)", alert["expr"]):
            assert aggregation == "by", f"{alert['alert']}: aggregate by (job, instance)"
