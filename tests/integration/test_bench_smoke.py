"""The benchmarks' machinery at a tiny size, so that `python -m bench.scale` cannot rot: a
private Docker 26.1, a crafted host of 30 images, 3 containers and 10 victims, one round of
every figure. Asserts what each step must have done (every victim deleted by both arms, calls
counted, RSS sampled), never a timing."""

from __future__ import annotations

import os
import re

import pytest

from bench import startup
from bench.engine import DOCKER_26
from bench.scale import run_size

# The bench always starts its own Docker 26.1, whatever engine the suite runs on: it runs in
# the matrix's docker-26 leg (`-m core`, after scripts/engines has installed that engine), once.
pytestmark = [
    pytest.mark.core,
    pytest.mark.skipif(
        os.environ.get("GCD_TEST_ENGINE") != "docker-26",
        reason="runs in the docker-26 leg of the engine matrix (GCD_TEST_ENGINE=docker-26)",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0 or not (DOCKER_26 / ".installed").is_file(),
        reason="the bench starts its own Docker 26.1 (root, scripts/engines docker-26)",
    ),
]


def test_every_figure_of_the_scale_bench_comes_out_at_a_tiny_size() -> None:
    lines = run_size(
        30, repeat=1, cycles=3, victims=10, containers=3, rest_cycles=2, timeouts="settle=0.2"
    )
    text = "\n".join(lines)
    assert text.startswith("30 images (30 listed), 3 containers"), text
    assert re.search(r"delete 10: images/s .* ratio +\d+\.\d\d×", text), text
    assert re.search(r"until the last removal: images/s .* ratio +\d+\.\d\d×", text), text
    per_image = re.search(r"API calls per deleted image: (\d+\.\d\d)", text)
    assert per_image is not None, text
    assert float(per_image[1]) >= 1.0  # at least the delete itself was counted
    for name in ("warm `gcd plan` process", "root / raw lists", "store out of reach / raw"):
        assert name in text, text
    assert re.search(r"first sight: [1-9]\d* requests on [1-9]\d* connections", text), text
    assert re.search(r"first sight CPU: gcd [\d.]+s, engine [\d.]+s", text), text
    assert re.search(r"at rest .*: [\d.]+, [\d.]+$", text, re.MULTILINE), text
    assert "daemon cycles back to back: 3 in" in text, text


def test_the_startup_bench_times_every_command() -> None:
    lines = startup.measure(1)
    assert len(lines) == 1 + len(startup.COMMANDS)
    assert all("×" in line for line in lines[1:])
