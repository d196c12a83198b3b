"""The `gcd` command: raw arguments → settings → one action. Exit codes in gcd.errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from gcd import __version__
from gcd.config import load_policy
from gcd.cycle import DEFAULT_STATE_DIR, plan_once, run_once
from gcd.engine import Engine
from gcd.errors import ExitCode, GcdError, PolicyError
from gcd.executor import OutcomeStatus
from gcd.logs import configure_logging
from gcd.model import ReferenceError, parse_reference
from gcd.render import (
    plan_document,
    run_document,
    write_json,
    write_plan_table,
    write_run_table,
)
from gcd.rules import Policy

DEFAULT_POLICY = Path("/etc/gcd/policy.yaml")
FAILED_STATUSES = (OutcomeStatus.FAILED, OutcomeStatus.TIMEOUT)

log = structlog.get_logger("gcd.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gcd", description="Policy-driven garbage collection for Docker hosts."
    )
    parser.add_argument("--version", action="version", version=f"gcd {__version__}")
    parser.add_argument("--host", help="Docker engine address (default: DOCKER_HOST or socket)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"where first-seen times and the lock live (default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument("--log-format", choices=("auto", "json", "console"), default="auto")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_policy(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="policy file")
        sub.add_argument("-o", "--output", choices=("table", "json"), default="table")

    with_policy(commands.add_parser("plan", help="show what a run would do; deletes nothing"))
    run = commands.add_parser("run", help="evaluate the policy and delete what it does not keep")
    with_policy(run)
    run.add_argument("--once", action="store_true", required=True, help="one run, then exit")
    daemon = commands.add_parser(
        "daemon", help="run cycles on the policy's schedule and under disk pressure"
    )
    daemon.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="policy file")
    check = commands.add_parser("check", help="validate policy files")
    check.add_argument("files", type=Path, nargs="+")
    test = commands.add_parser("test-pattern", help="which keep rule would hold each reference")
    test.add_argument("file", type=Path)
    test.add_argument("references", nargs="+")
    return parser


def _plan(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    planned = plan_once(Engine(args.host), policy, args.state_dir)
    if args.output == "json":
        write_json(plan_document(planned.plan), sys.stdout)
    else:
        write_plan_table(planned.plan, sys.stdout)
    return ExitCode.RUN_REFUSED if planned.plan.refusal else ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    result = run_once(Engine(args.host), policy, args.state_dir)
    if args.output == "json":
        write_json(run_document(result.plan, result.report, result.freed_bytes), sys.stdout)
    else:
        write_run_table(result.report, result.freed_bytes, sys.stdout)
    if result.report.aborted:
        print(f"gcd: run aborted: {result.report.aborted}", file=sys.stderr)
        return ExitCode.ENGINE_UNREACHABLE
    if any(result.report.count(status) for status in FAILED_STATUSES):
        return ExitCode.SOME_FAILED
    return ExitCode.OK


def _daemon(args: argparse.Namespace) -> int:
    from gcd.daemon import Daemon, DaemonSettings  # noqa: PLC0415 - keeps one-shot start-up lean

    policy = load_policy(args.policy)
    settings = DaemonSettings(policy_path=args.policy, state_dir=args.state_dir, host=args.host)
    return Daemon(settings, policy).run()


def _check(args: argparse.Namespace) -> int:
    problems = 0
    for path in args.files:
        try:
            load_policy(path)
        except PolicyError as exc:
            problems += len(exc.problems)
            print(exc, file=sys.stderr)
        else:
            print(f"{path}: ok")
    return ExitCode.BAD_POLICY_OR_USAGE if problems else ExitCode.OK


def describe_reference(policy: Policy, text: str) -> str:
    """What the policy's keep rules say about one reference, without an engine: the first
    rule that holds on the reference alone, and the conditional rules before it."""
    reference = parse_reference(text)
    if policy.images is None:
        return "not touched: the policy has no images section"
    conditional: list[str] = []
    for rule in policy.images.keep:
        if rule.references and not any(p.matches(reference) for p in rule.references):
            continue
        conditions = []
        if rule.labels:
            conditions.append("its labels match")
        if rule.newest is not None:
            conditions.append(f"it is among the {rule.newest} newest of {reference.repository}")
        if rule.younger_than is not None or rule.used_within is not None:
            conditions.append("its local age or last use is recent enough")
        if conditions:
            conditional.append(
                f"{rule.describe()} ({rule.rule_id.value}) if " + " and ".join(conditions)
            )
            continue
        answer = f"kept by {rule.describe()} ({rule.rule_id.value})"
        return answer + ("; earlier, " + "; ".join(conditional) if conditional else "")
    if conditional:
        return "kept only by " + "; or ".join(conditional)
    return "no keep rule holds: deleted once older than safety.min_age and unused"


def _test_pattern(args: argparse.Namespace) -> int:
    policy = load_policy(args.file)
    status: int = ExitCode.OK
    for text in args.references:
        try:
            answer = describe_reference(policy, text)
        except ReferenceError as exc:
            answer, status = f"error: {exc}", ExitCode.BAD_POLICY_OR_USAGE
        print(f"{text}: {answer}")
    return status


COMMANDS = {
    "plan": _plan,
    "run": _run,
    "daemon": _daemon,
    "check": _check,
    "test-pattern": _test_pattern,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    try:
        return int(COMMANDS[args.command](args))
    except GcdError as exc:
        print(f"gcd: {exc}", file=sys.stderr)
        log.error("command_failed", command=args.command, error=str(exc), type=type(exc).__name__)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
