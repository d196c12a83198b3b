"""gcd(1), the man page of the Debian package, rendered from gcd's own argparse parser.

Derived from `--help` so that it cannot drift from the commands: every subcommand with its
description and options, plus the files the package installs. debian/rules runs it with the
package's virtualenv python:

    python scripts/manpage.py > gcd.1
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from gcd import __version__
from gcd.arguments import build_parser

FILES = (
    ("/etc/gcd/policy.yaml", "The policy (a conffile). As shipped it deletes nothing."),
    ("/var/lib/gcd", "The state: first-seen times, last use, the run lock; removed on purge."),
    ("/lib/systemd/system/gcd.service", "The daemon, enabled on install."),
    ("/lib/systemd/system/gcd.timer", "An hourly gcd-run.service, the daemon's alternative."),
    ("/usr/share/gcd/prometheus/gcd.rules.yaml", "Prometheus recording and alerting rules."),
    ("/usr/share/gcd/grafana/gcd.json", "The Grafana dashboard."),
    ("/opt/venvs/gcd", "gcd and its Python dependencies, run by the system's python3."),
)


def escape(text: str) -> str:
    """Roff-safe text: backslashes and minus signs escaped, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(
        f"\\&{line}" if line.startswith((".", "'")) else line for line in text.splitlines()
    )


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser, shown: frozenset[str] = frozenset()) -> list[str]:
    """The options of `parser` as tagged paragraphs, but those in `shown` (said once above)."""
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if shown.intersection(action.option_strings):
            continue
        if action.option_strings:
            choices = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else None
            metavar = action.metavar or choices or action.dest.upper()
            metavar = "" if action.nargs == 0 else f" {metavar}"
            names = ", ".join(f"\\fB{escape(name)}\\fR" for name in action.option_strings)
            head = f"{names}{escape(str(metavar))}"
        else:
            head = f"\\fI{escape(str(action.metavar or action.dest))}\\fR"
        text = (action.help or "") % {"default": action.default, "prog": parser.prog}
        lines += [".TP", head, escape(text)]
    return lines


def render(parser: argparse.ArgumentParser, date: str) -> str:
    lines = [
        f'.TH GCD 1 "{date}" "gcd {__version__}" "User Commands"',
        ".SH NAME",
        "gcd \\- policy\\-driven garbage collection for Docker hosts",
        ".SH SYNOPSIS",
        "\\fBgcd\\fR [\\fIoptions\\fR] \\fIcommand\\fR [\\fIcommand options\\fR]",
        ".SH DESCRIPTION",
        escape(parser.description or ""),
        "Start with \\fBgcd plan \\-\\-policy /etc/gcd/policy.yaml\\fR: it deletes nothing.",
        ".SH OPTIONS",
        "These are accepted before the command or after it.",
        *_options(parser),
        ".SH COMMANDS",
    ]
    # The global options are accepted by every command too; each command lists its own only.
    common = frozenset(name for action in parser._actions for name in action.option_strings)
    for name, sub in _subcommands(parser).items():
        own = _options(sub, common)
        lines += [f".SS gcd {escape(name)}", escape(sub.description or ""), *own]
    lines.append(".SH FILES")
    for path, what in FILES:
        lines += [".TP", f"\\fI{escape(path)}\\fR", escape(what)]
    lines += [
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBdocker\\fR(1); /usr/share/doc/gcd/README.md.gz",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    # The date of the build, in the header only; SOURCE_DATE_EPOCH keeps builds reproducible.
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None
    when = datetime.fromtimestamp(epoch, UTC) if epoch else datetime.now(UTC)
    sys.stdout.write(render(build_parser(), when.strftime("%Y-%m-%d")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
