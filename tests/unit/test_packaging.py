"""The Debian package's generated files: the inert policy (scripts/inert_policy.py) and the
man page (scripts/manpage.py). The package itself is built and installed in tests/system."""

from __future__ import annotations

from pathlib import Path

from gcd.arguments import build_parser
from gcd.config.loader import parse_policy
from scripts import inert_policy, manpage

EXAMPLE = Path(__file__).resolve().parents[2] / "policy.example.yaml"


def test_the_shipped_policy_touches_no_kind() -> None:
    policy = parse_policy(inert_policy.inert(EXAMPLE.read_text()), "policy.yaml")
    kinds = (policy.images, policy.containers, policy.volumes, policy.build_cache)
    assert kinds == (None, None, None, None)
    assert policy.networks is None


def test_removing_the_marks_gives_back_the_example() -> None:
    shipped = inert_policy.inert(EXAMPLE.read_text())
    body = shipped.removeprefix(inert_policy.HEADER)
    assert body.replace(inert_policy.MARK, "") == EXAMPLE.read_text()
    example = parse_policy(EXAMPLE.read_text(), "example")
    assert example.images is not None  # the example itself does collect images


def test_the_man_page_names_every_command_and_option() -> None:
    page = manpage.render(build_parser(), "2026-01-01")
    assert page.startswith('.TH GCD 1 "2026-01-01"')
    for command in ("plan", "run", "daemon", "check", "hold", "release"):
        assert f".SS gcd {command}\n" in page
    assert "\\fB\\-\\-policy\\fR" in page
    # Help text that starts with "." or "'" would be read as a roff request: escaped.
    requests = {line.split()[0] for line in page.splitlines() if line.startswith((".", "'"))}
    assert requests == {".TH", ".SH", ".SS", ".TP"}


def test_help_text_cannot_turn_into_roff_requests() -> None:
    assert manpage.escape(".bad\\'q") == "\\&.bad\\e'q"
    assert manpage.escape("line\n'request") == "line\n\\&'request"
