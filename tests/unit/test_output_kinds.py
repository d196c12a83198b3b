"""Plans and runs with every kind: the tables name each row's kind and object and count each
kind; JSON format 2 keeps each kind's own fields under its name; format 1 stays a document
about images only, its figures the images' alone."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from gcd.documents import plan_document, run_document, write_json
from gcd.render import write_plan_table, write_run_table
from tests.unit.kinds_plan import (
    ANONYMOUS,
    CACHE,
    EXITED,
    FREED,
    NAMED,
    NETWORK,
    OLD,
    PINNED,
    PLAN,
    REPORT,
    SERVICE,
    UNNAMED_CACHE,
)


def roundtrip(document: dict[str, Any]) -> dict[str, Any]:
    out = io.StringIO()
    write_json(document, out)
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in document["decisions"]}


class TestFormat2:
    def test_each_kind_has_its_own_fields_under_its_name(self) -> None:
        decisions = by_id(roundtrip(plan_document(PLAN)))
        container = decisions[EXITED.id]
        assert (container["kind"], container["names"]) == ("container", ["ci-job-7"])
        assert container["container"] == {
            "name": "ci-job-7",
            "image": "app:1",
            "state": "exited",
            "finished_at": "2026-05-28T12:00:00+00:00",
            "restart_policy": "no",
        }
        assert decisions[SERVICE.id]["container"]["finished_at"] is None
        assert decisions[SERVICE.id]["container"]["restart_policy"] == "unless-stopped"
        assert decisions[ANONYMOUS.name]["volume"] == {
            "name": "f" * 64,
            "anonymous": True,
            "driver": "local",
            "last_used": None,
        }
        assert decisions[ANONYMOUS.name]["names"] == []
        assert decisions[NAMED.name]["volume"]["anonymous"] is False
        assert decisions[CACHE.id]["build_cache"] == {
            "type": "source.local",
            "description": "local source for context",
            "shared": False,
            "in_use": False,
            "last_used": "2026-05-24T12:00:00+00:00",
        }
        assert decisions[UNNAMED_CACHE.id]["build_cache"]["last_used"] is None
        assert decisions[NETWORK.id]["network"] == {
            "name": "ci-net",
            "driver": "bridge",
            "scope": "local",
            "last_used": None,
        }
        assert set(decisions[OLD.id]["image"]) == {
            "references",
            "digests",
            "seen_at",
            "created",
            "last_used",
            "age_from",
        }
        # Only its own kind's fields: no decision carries another kind's object.
        kinds = {"image", "container", "volume", "build_cache", "network"}
        for decision in decisions.values():
            assert kinds & set(decision) == {decision["kind"]}

    def test_the_summary_counts_each_kind(self) -> None:
        summary = plan_document(PLAN)["summary"]
        assert (summary["objects"], summary["delete"], summary["keep"]) == (9, 6, 3)
        assert {kind: s["objects"] for kind, s in summary["by_kind"].items()} == {
            "image": 2,
            "container": 2,
            "volume": 2,
            "build_cache": 2,
            "network": 1,
        }
        assert summary["by_kind"]["volume"]["by_rule"] == {"delete.unused": 2}
        assert summary["by_kind"]["container"] == {
            "objects": 2,
            "delete": 1,
            "keep": 1,
            "by_rule": {"delete.exited": 1, "keep.service": 1},
        }
        assert (summary["freed_bytes"], summary["total_bytes"]) == (
            PLAN.freed_bytes,
            PLAN.total_bytes,
        )

    def test_a_run_counts_statuses_per_kind(self) -> None:
        document = roundtrip(run_document(PLAN, REPORT, FREED))
        assert [o["kind"] for o in document["outcomes"]] == [
            "container",
            "image",
            "volume",
            "volume",
            "network",
            "build_cache",
        ]
        by_kind = document["result"]["by_kind"]
        assert by_kind["volume"]["by_status"]["conflict"] == 1
        assert by_kind["volume"]["by_status"]["removed"] == 1
        assert by_kind["build_cache"]["by_status"]["removed"] == 1
        assert document["result"]["freed_bytes"] == FREED


class TestFormat1:
    def test_a_plan_is_about_images_only(self) -> None:
        document = roundtrip(plan_document(PLAN, 1))
        assert [d["id"] for d in document["decisions"]] == [OLD.id, PINNED.id]
        assert all("kind" not in d for d in document["decisions"])
        summary = document["summary"]
        assert (summary["images"], summary["delete"], summary["keep"]) == (2, 1, 1)
        assert summary["by_rule"] == {"keep.reference": 1, "delete.unkept": 1}
        # The images' bytes alone: OLD's layer freed, both images' layers in total.
        assert (summary["freed_bytes"], summary["total_bytes"]) == (100, 200)

    def test_a_run_is_about_images_only(self) -> None:
        document = roundtrip(run_document(PLAN, REPORT, FREED, 1))
        assert [o["id"] for o in document["outcomes"]] == [OLD.id]
        result = document["result"]
        assert result["freed_bytes"] == 100
        assert result["by_status"]["removed"] == 1
        assert result["by_status"]["conflict"] == 0
        assert list(result) == ["aborted", "freed_bytes", "by_status"]


def table(write: Any, *args: Any) -> list[str]:
    out = io.StringIO()
    write(*args, out)
    return out.getvalue().splitlines()


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split("[│┃]", line)]


class TestTables:
    @pytest.fixture(autouse=True)
    def no_columns(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("COLUMNS", raising=False)

    def test_the_plan_table_names_each_kind_and_object(self) -> None:
        lines = table(write_plan_table, PLAN)
        assert re.split(r"\s{2,}", lines[0])[:3] == ["KIND", "NAME", "ID"]
        rows = lines[2 : lines.index("RULE            ACTION  COUNT      SIZE     FREES")]
        # Grouped: images by repository, then each kind; newest first within a group.
        assert [re.split(r"\s{2,}", line)[:2] for line in rows if line] == [
            ["image", "alpine:3.19"],
            ["image", "app:1"],
            ["container", "ci-svc-db"],
            ["container", "ci-job-7"],
            ["volume", "<anonymous>"],
            ["volume", "ci-cache-go"],
            ["build_cache", "regular"],  # no description: its type
            ["build_cache", "local source for context"],
            ["network", "ci-net"],
        ]
        assert lines[-1] == (
            "2 containers, 2 images, 2 volumes, 1 network, 2 build-cache records: "
            "6 to delete, 3 kept; frees 12.0 KiB of 12.2 KiB"
        )

    def test_the_run_table_names_each_kind_and_counts_each_kind(self) -> None:
        lines = table(write_run_table, REPORT, FREED)
        assert cells(lines[0])[:3] == ["KIND", "NAME", "ID"]
        assert [cells(line)[:2] for line in lines[2:-1]] == [
            ["container", "ci-job-7"],
            ["image", "app:1"],
            ["volume", "<anonymous>"],
            ["volume", "ci-cache-go"],
            ["network", "ci-net"],
            ["build_cache", "local source for context"],
        ]
        assert lines[-1] == (
            f"freed 5.1 KiB ({FREED} bytes); 1 container: 1 removed; 1 image: 1 removed; "
            "2 volumes: 1 removed, 1 conflict; 1 network: 1 removed; "
            "1 build-cache record: 1 removed"
        )
