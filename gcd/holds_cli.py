"""`gcd hold`, `gcd release`, `gcd holds`: the commands a CI job runs with only the Docker
socket. They never open the state directory, take the lock or read a policy (gcd.engine.holds).

Exit codes: 0 done; 2 misuse, including holding an image that is not on the engine and
`release` of a reference no hold matches; 1 the engine refused; 3 the engine is unreachable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gcd.core.units import parse_duration
from gcd.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from gcd.core.holds import Hold
    from gcd.engine.client import Engine

Command = Callable[[str, str], argparse.ArgumentParser]


def _engine(host: str | None) -> Engine:
    """Imported only by the commands that talk to the engine: not by `gcd --help`."""
    from gcd.engine.client import Engine

    return Engine(host)


def hold_duration(text: str) -> timedelta:
    """`--for`: the policy's duration syntax (`90s`, `30m`, `2h`, `1d`), 1s..30d."""
    from gcd.core.holds import check_duration  # the records it checks against: not for --help

    try:
        duration = parse_duration(text)
        check_duration(duration)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return duration


def add_parsers(command: Command) -> None:
    hold = command("hold", "protect images from gcd and docker image prune -a for a while")
    hold.add_argument("references", nargs="+", metavar="REF", help="image references or ids")
    hold.add_argument(
        "--for",
        dest="duration",
        type=hold_duration,
        required=True,
        metavar="DURATION",
        help="how long (30s, 15m, 2h, 1d; 1s to 30d)",
    )
    hold.add_argument("--reason", default="", help="why, shown by gcd holds and in plans")
    release = command("release", "end holds early")
    which = release.add_mutually_exclusive_group(required=True)
    which.add_argument("references", nargs="*", default=[], metavar="REF")
    which.add_argument(
        "--all-mine", action="store_true", help="every hold of this owner (see gcd holds)"
    )
    release.add_argument(
        "--any-owner",
        action="store_true",
        help="REF: end the holds of other owners too (by default only this owner's)",
    )
    listing = command("holds", "list the holds on the engine")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")


def _hold(args: argparse.Namespace) -> int:
    from gcd.core.holds import format_expiry
    from gcd.core.kind import short_id
    from gcd.engine import holds

    engine = _engine(args.host)
    missing = [r for r in args.references if holds.resolve(engine, r) is None]
    if missing:  # before any hold is placed: all of them, or none
        raise UsageError(
            f"cannot hold {', '.join(missing)}: no such image on this engine; pull or build it "
            "first (nothing was held)"
        )
    now = datetime.now(UTC)
    for reference in args.references:
        hold = holds.place(engine, reference, args.duration, args.reason, now)
        until = format_expiry(hold.expires or now)
        named = "" if reference in (hold.image_id, short_id(hold.image_id)) else f" ({reference})"
        print(f"held {hold.image_id}{named} until {until} as {hold.name}")
    return ExitCode.OK


def _release(args: argparse.Namespace) -> int:
    from gcd.engine import holds

    engine = _engine(args.host)
    present = holds.current(engine)
    me = holds.owner()
    if args.all_mine:
        chosen = [h for h in present if h.owner == me]
    else:
        chosen = []
        for reference in args.references:
            image_id = holds.resolve(engine, reference)
            found = [h for h in present if holds.matches(h, reference, image_id)]
            if not found:
                raise UsageError(f"no hold matches {reference}; see gcd holds")
            mine = [h for h in found if args.any_owner or h.owner == me]
            if not mine:  # another job's hold of a shared image is not this job's to end
                others = ", ".join(sorted({h.owner for h in found}))
                raise UsageError(
                    f"{reference} is held only by other owners ({others}), not {me}; "
                    "--any-owner ends their holds too"
                )
            chosen.extend(h for h in mine if h not in chosen)
    for name in holds.release(engine, chosen):
        print(f"released {name}")
    if not chosen:
        print("no holds to release")
    return ExitCode.OK


def _document(hold: Hold, now: datetime) -> dict[str, object]:
    from gcd.core.holds import format_expiry

    return {
        "container": hold.container_id,
        "name": hold.name,
        "image": hold.image_id,
        "reference": hold.reference,
        "expires": format_expiry(hold.expires) if hold.expires else None,
        "expired": hold.expired(now),
        "owner": hold.owner,
        "reason": hold.reason,
    }


def _holds(args: argparse.Namespace) -> int:
    from gcd.core.holds import format_expiry
    from gcd.core.kind import short_id

    now = datetime.now(UTC)
    from gcd.engine import holds

    engine = _engine(args.host)
    present = holds.current(engine)
    if args.output == "json":
        from gcd.documents import write_json

        write_json({"holds": [_document(h, now) for h in present]}, sys.stdout)
        return ExitCode.OK
    print(f"{'IMAGE':<19} {'REFERENCE':<24} {'EXPIRES':<21} {'OWNER':<28} REASON")
    for h in present:
        expires = format_expiry(h.expires) if h.expires else "?"
        expires += " (expired)" if h.expired(now) else ""
        print(
            f"{short_id(h.image_id):<19} {h.reference:<24} {expires:<21} {h.owner:<28} {h.reason}"
        )
    return ExitCode.OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "hold": _hold,
    "release": _release,
    "holds": _holds,
}
