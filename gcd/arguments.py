"""The `gcd` command line: its commands, options and their defaults (argparse)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gcd import __version__, explain_cli, holds_cli
from gcd.formats import FORMATS, LATEST_FORMAT
from gcd.host.permissions import OVERRIDE_ENV, OVERRIDE_OPTION
from gcd.host.statedir import DEFAULT_STATE_DIR
from gcd.metrics import DEFAULT_ADDRESS as DEFAULT_METRICS_ADDRESS

__all__ = ["DEFAULT_POLICY", "build_parser"]

DEFAULT_POLICY = Path("/etc/gcd/policy.yaml")


def _common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Global options, accepted before or after the command (`gcd run --once --host X`).
    On the commands their default is SUPPRESS, so they only override when given."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--host",
        default=default(None),
        help="Docker engine address (default: DOCKER_HOST, else the local socket)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default(DEFAULT_STATE_DIR),
        help=f"first-seen and last-use times and the lock (default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--log-format", choices=("auto", "json", "console"), default=default("auto")
    )
    parser.add_argument(
        OVERRIDE_OPTION,
        action="store_true",
        default=default(False),
        help="act on a policy or state directory that others could write, logging a warning "
        f"each time instead of refusing (also {OVERRIDE_ENV}=1; meant for tests)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default=default("info")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gcd", description="Policy-driven garbage collection for Docker hosts."
    )
    parser.add_argument("--version", action="version", version=f"gcd {__version__}")
    _common_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _common_options(sub, defaults=False)
        return sub

    def with_policy(sub: argparse.ArgumentParser, output: bool = True) -> None:
        sub.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="policy file")
        if output:
            sub.add_argument("-o", "--output", choices=("table", "json"), default="table")
            sub.add_argument(
                "--format-version",
                type=int,
                choices=FORMATS,
                default=LATEST_FORMAT,
                help=f"JSON format (default {LATEST_FORMAT}; 1 is the images-only format of "
                "gcd 0.1, kept for one release)",
            )

    with_policy(command("plan", "show what a run would do; deletes nothing"))
    run = command("run", "evaluate the policy and delete what it does not keep")
    with_policy(run)
    run.add_argument("--once", action="store_true", required=True, help="one run, then exit")
    run.add_argument(
        "--textfile",
        type=Path,
        metavar="DIR",
        help="write metrics to DIR/gcd.prom for node_exporter's textfile collector",
    )
    run.add_argument(
        "--first-scrape-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --textfile, when DIR has no gcd.prom yet: write it at 0 and wait this long "
        "before the run, so that Prometheus sees the run's increments (default 0)",
    )
    daemon = command("daemon", "run cycles on the policy's schedule and under disk pressure")
    with_policy(daemon, output=False)
    daemon.add_argument(
        "--metrics-address",
        default=DEFAULT_METRICS_ADDRESS,
        metavar="HOST:PORT",
        help=f"serve Prometheus metrics here (default {DEFAULT_METRICS_ADDRESS}; 'off' to disable)",
    )
    daemon.add_argument(
        "--web-config",
        type=Path,
        metavar="FILE",
        help="TLS and basic auth for the metrics endpoint (Prometheus exporter web-config format)",
    )
    daemon.add_argument(
        "--first-scrape-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="the first cycle waits for the first scrape of the metrics, at most this long "
        "(default 60; 0: no wait), so that increase() counts it",
    )
    holds_cli.add_parsers(command)
    explain_cli.add_parser(command, DEFAULT_POLICY)
    check = command("check", "validate policy files")
    check.add_argument("files", type=Path, nargs="+")
    test = command(
        "test-pattern",
        "which rule of a policy would decide each image reference, a container or a volume",
    )
    test.add_argument("file", type=Path)
    test.add_argument("references", nargs="*", metavar="REFERENCE", help="image references")
    about = test.add_mutually_exclusive_group()
    about.add_argument(
        "--container", metavar="NAME", help="a stopped container: its keep rule, service or age"
    )
    about.add_argument("--volume", metavar="NAME", help="a volume: its keep rule or pattern")
    test.add_argument("--image", metavar="REF", help="the image --container was created from")
    test.add_argument(
        "--restart-policy",
        metavar="POLICY",
        default="no",
        help="--container's restart policy (anything but no makes it a service)",
    )
    test.add_argument(
        "--label",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a label of --container or --volume (repeat for several)",
    )
    return parser
