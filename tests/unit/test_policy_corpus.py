"""The corpus of bad policies (`tests/data/bad-policies/`, one file per attack) and the files too
big to store (generated here), through the real `gcd check` under a 1 GiB address-space limit:
each is refused with `file:line:col`, exit 2, no traceback, quickly, and a bomb fails the test
instead of the machine. On main before this work: 10,000 brackets, a 9^10 alias bomb,
`min_age: 99999999999d` and `max_size: 9…9PiB` were tracebacks, `every/jitter: 999999999d`,
`t/app`, `T/App:*`, `.*`, `regex:` and a cron line that never fires were "ok", and a FIFO hung."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gcd.config.loader import MAX_POLICY_BYTES, load_policy
from gcd.errors import PolicyError
from tests.figures import Figure, record

CORPUS = Path(__file__).parent.parent / "data" / "bad-policies"
FILES = sorted(CORPUS.glob("*.yaml"))
MEMORY_LIMIT = 1 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _generated(directory: Path) -> list[Path]:
    """Files too large to keep in the repository, and files that are not files."""
    made = {
        "huge-scalar.yaml": "images:\n  keep:\n    - newest: " + "x" * 900_000 + "\n",
        "huge-key.yaml": "k" * 900_000 + ": 1\n",
        "huge-anchor-name.yaml": "a: *" + "b" * 900_000 + "\n",
        "huge-regex.yaml": 'images:\n  keep:\n    - reference: ["regex:'
        + "(a|b" * 150_000  # unbalanced: RE2 refuses it, and its message quotes it
        + '"]\n',
        "over-the-cap.yaml": "version: 1\n" + "#" * MAX_POLICY_BYTES + "\n",
        "fifty-megabytes-bad.yaml": "images: " + "x" * 50_000_000 + "\n",
    }
    paths = []
    for name, text in made.items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    fifo = directory / "fifo.yaml"
    os.mkfifo(fifo)
    return [*paths, fifo, Path("/dev/zero"), directory]


def test_the_corpus_has_a_file_per_class() -> None:
    assert len(FILES) >= 40
    names = {path.stem for path in FILES}
    for needed in ("alias-bomb-key", "alias-bomb-merge-key", "deep-flow", "huge-count"):
        assert needed in names


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_each_file_is_refused_at_a_position(path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert time.monotonic() - started < 5  # under 0.2 s each; generous for CI
    assert error.value.problems
    for problem in error.value.problems:
        assert problem.line >= 1
        assert problem.column >= 1
        assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: ")
        assert len(str(problem)) < 1600  # an excerpt, never the whole value


def test_gcd_check_refuses_every_file_with_its_position(tmp_path: Path) -> None:
    paths = [*FILES, *_generated(tmp_path)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gcd", "check", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "MemoryError" not in done.stderr
    assert done.stdout == ""  # no "ok"
    lines = done.stderr.splitlines()
    for path in paths:
        placed = re.compile(rf"^{re.escape(str(path))}:\d+:\d+: ")
        assert any(placed.match(line) for line in lines), path
    assert len(done.stderr) < 64 * 1024 * len(paths)  # no 50 MB echo
    assert max(len(line) for line in lines) < 2000
    assert elapsed < 5 * len(paths)  # each well under a second; one start-up
    record(Figure(area="bad policy", scenario="corpus through gcd check", inputs=len(paths)))
