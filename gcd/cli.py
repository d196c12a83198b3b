"""The `gcd` command: raw arguments → settings → one action. Exit codes in gcd.errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gcd import explain_cli, holds_cli
from gcd.arguments import build_parser
from gcd.errors import (
    ExitCode,
    GcdError,
    PolicyError,
    RunRefusedError,
    UsageError,
)
from gcd.host.permissions import allow_insecure_permissions
from gcd.logs import configure_logging

if TYPE_CHECKING:
    from gcd.core.policy import Policy
    from gcd.cycle import RunResult

# Only `plan`, `run` and `daemon` import the engine (docker, requests), metrics
# (prometheus_client) and scheduler (apscheduler) stacks, inside the functions that run them:
# `gcd --help`, `check` and `test-pattern` start without them (tests/unit/test_startup.py).


def _log() -> Any:
    """structlog is imported by the first command that logs, not by `gcd --help` (gcd.logs)."""
    import structlog

    return structlog.get_logger("gcd.cli")


def _plan(args: argparse.Namespace) -> int:
    from gcd.config.sites import Unmatched, unmatched_patterns
    from gcd.config.stacks import ComposeWarning, compose_warnings
    from gcd.config.trusted import load_trusted_policy
    from gcd.cycle import plan_once
    from gcd.documents import plan_document, write_json
    from gcd.engine.client import Engine

    policy = load_trusted_policy(args.policy)
    planned = plan_once(Engine(args.host), policy, args.state_dir)
    warnings = unmatched_patterns(policy, planned.snapshot)
    for unmatched in warnings:
        print(f"gcd: warning: {unmatched}", file=sys.stderr)
        _log().warning(
            "keep_pattern_matches_nothing",
            file=unmatched.file,
            line=unmatched.line,
            column=unmatched.column,
            field=unmatched.field,
            pattern=unmatched.pattern,
        )
    composed = compose_warnings(planned.compose)  # logged by cycle.read_compose
    for warning in composed:
        print(f"gcd: warning: {warning}", file=sys.stderr)
    if args.output == "json":
        every: list[Unmatched | ComposeWarning] = [*warnings, *composed]
        write_json(plan_document(planned.plan, args.format_version, every), sys.stdout)
    else:
        from gcd.render import write_plan_table  # rich: for the table only

        write_plan_table(planned.plan, sys.stdout)
    return ExitCode.RUN_REFUSED if planned.plan.refusal else ExitCode.OK


def _run(args: argparse.Namespace) -> int:
    from gcd.config.trusted import load_trusted_policy
    from gcd.cycle import run_once
    from gcd.engine.client import Engine

    policy = load_trusted_policy(args.policy)
    if args.textfile is not None:
        from gcd.timer import TextfileRun, run_with_textfile

        result = run_with_textfile(
            TextfileRun(args.policy, args.state_dir, args.textfile, args.first_scrape_wait),
            Engine(args.host),
            policy,
        )
        return _report_run(args, result)
    result = run_once(Engine(args.host), policy, args.state_dir)
    return _report_run(args, result)


def _report_run(args: argparse.Namespace, result: RunResult) -> int:
    from gcd.documents import run_document, write_json
    from gcd.engine.outcomes import OutcomeStatus

    if result.plan.refusal is not None:
        if args.output == "json":
            write_json(run_document(result.plan, result.report, 0, args.format_version), sys.stdout)
        error = RunRefusedError(result.plan.refusal)
        print(f"gcd: {error}", file=sys.stderr)
        return int(error.exit_code)
    if args.output == "json":
        write_json(
            run_document(result.plan, result.report, result.freed_bytes, args.format_version),
            sys.stdout,
        )
    else:
        from gcd.render import write_run_table  # rich: for the table only

        write_run_table(result.report, result.freed_bytes, sys.stdout)
    if result.report.aborted:
        print(f"gcd: run aborted: {result.report.aborted}", file=sys.stderr)
        return ExitCode.ENGINE_UNREACHABLE
    failed = (OutcomeStatus.FAILED, OutcomeStatus.TIMEOUT)
    if any(result.report.count(status) for status in failed):
        return ExitCode.SOME_FAILED
    return ExitCode.OK


def _daemon(args: argparse.Namespace) -> int:
    from gcd.config.trusted import load_trusted_policy
    from gcd.config.webconfig import load_web_config
    from gcd.daemon import Daemon, DaemonSettings
    from gcd.engine.client import Engine
    from gcd.host.state import State
    from gcd.host.statedir import ensure_state_dir
    from gcd.metrics.definitions import Metrics
    from gcd.metrics.observer import MetricsObserver
    from gcd.metrics.registry import daemon_registry
    from gcd.metrics.server import MetricsServer

    policy = load_trusted_policy(args.policy)
    engine = Engine(args.host)  # a malformed address is exit 2 before anything starts
    ensure_state_dir(args.state_dir)
    State.load(args.state_dir)  # a damaged database stops the daemon here, not every cycle
    web_config = load_web_config(args.web_config) if args.web_config else None
    registry = daemon_registry()
    metrics = Metrics(registry)
    server = None
    if args.metrics_address != "off":
        server = MetricsServer(registry, args.metrics_address, web_config)
        server.start()
    settings = DaemonSettings(
        policy_path=args.policy,
        state_dir=args.state_dir,
        host=args.host,
        first_scrape_wait_seconds=args.first_scrape_wait,
    )
    observer = MetricsObserver(metrics)
    scraped = server.scraped if server is not None else None
    try:
        return Daemon(settings, policy, observer, engine=engine, scraped=scraped).run()
    finally:
        if server is not None:
            server.stop()


def _warn_if_insecure(path: Path) -> None:
    """`check` and `test-pattern` delete nothing, so a policy that others could change is only a
    warning there: CI validates policies in checkouts with loose modes, and `gcd check` on the
    installed file should say that plan, run and the daemon will refuse it."""
    from gcd.config.trusted import policy_findings

    for finding in policy_findings(path):
        print(
            f"gcd: warning: {finding}; gcd plan, run and daemon refuse this policy",
            file=sys.stderr,
        )


def _check(args: argparse.Namespace) -> int:
    from gcd.config.loader import load_policy

    problems = 0
    for path in args.files:
        _warn_if_insecure(path)
        try:
            load_policy(path)
        except PolicyError as exc:
            problems += len(exc.problems)
            print(exc, file=sys.stderr)
        else:
            print(f"{path}: ok")
    return ExitCode.BAD_POLICY_OR_USAGE if problems else ExitCode.OK


def describe_reference(policy: Policy, text: str) -> str:
    """What the policy's keep rules say about one reference, without an engine."""
    from gcd.core.kinds.images import explain_reference
    from gcd.core.references import parse_reference

    if policy.images is None:
        return "not touched: the policy has no images section"
    return explain_reference(policy.images, parse_reference(text))


def _labels(given: list[str]) -> dict[str, str]:
    labels = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--label takes KEY=VALUE, got {item!r}")
        labels[key] = value
    return labels


def _describe_objects(args: argparse.Namespace, policy: Policy) -> list[str]:
    """`--container` and `--volume`: one line each, as `container NAME: answer`."""
    from gcd.core.explain import container_named, explain_container, explain_volume, volume_named
    from gcd.core.references import parse_reference

    labels = _labels(args.label)
    if args.container is None and (args.image or args.restart_policy != "no"):
        raise UsageError("--image and --restart-policy describe a --container")
    if args.container is None and args.volume is None:
        if labels:
            raise UsageError("--label describes a --container or a --volume")
        return []
    if args.volume is not None:
        volume = volume_named(args.volume, labels)
        return [f"volume {args.volume}: {explain_volume(policy.volumes, volume)}"]
    if args.image:
        parse_reference(args.image)  # an InvalidReferenceError says what is wrong with it
    container = container_named(args.container, args.image or "", labels, args.restart_policy)
    return [f"container {container.name}: {explain_container(policy.containers, container)}"]


def _test_pattern(args: argparse.Namespace) -> int:
    if not args.references and args.container is None and args.volume is None:
        raise UsageError("test-pattern needs image references, --container NAME or --volume NAME")
    from gcd.config.loader import load_policy
    from gcd.core.references import InvalidReferenceError

    _warn_if_insecure(args.file)
    policy = load_policy(args.file)
    status: int = ExitCode.OK
    for text in args.references:
        try:
            answer = describe_reference(policy, text)
        except InvalidReferenceError as exc:
            answer, status = f"error: {exc}", ExitCode.BAD_POLICY_OR_USAGE
        print(f"{text}: {answer}")
    try:
        lines = _describe_objects(args, policy)
    except InvalidReferenceError as exc:
        print(f"--image {args.image}: error: {exc}")
        return ExitCode.BAD_POLICY_OR_USAGE
    for line in lines:
        print(line)
    return status


COMMANDS = {
    "plan": _plan,
    "run": _run,
    "daemon": _daemon,
    "check": _check,
    "test-pattern": _test_pattern,
    **holds_cli.COMMANDS,
    "explain": explain_cli.explain,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    allow_insecure_permissions(args.allow_insecure_permissions)
    try:
        return int(COMMANDS[args.command](args))
    except GcdError as exc:
        print(f"gcd: {exc}", file=sys.stderr)
        _log().error(
            "command_failed", command=args.command, error=str(exc), type=type(exc).__name__
        )
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    finally:
        allow_insecure_permissions(False)
