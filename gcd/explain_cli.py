"""`gcd explain IMAGE|REF`: one image's whole story, from a plan like `gcd plan`'s (it records
first sightings as `gcd plan` does, and deletes nothing).

Exit codes: 0 told; 2 no such image on the engine (or misuse, or a bad policy); 3 the engine
is unreachable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gcd.config.trusted import load_trusted_policy
from gcd.core.image_story import ImageStory, find_image, tell
from gcd.cycle import plan_once, read_compose
from gcd.documents import LATEST_FORMAT, decision_record, write_json
from gcd.engine.client import Engine
from gcd.errors import ExitCode, UnknownImageError
from gcd.render.story import write_story

Command = Callable[[str, str], argparse.ArgumentParser]


def add_parser(command: Command, default_policy: Path) -> None:
    explain = command(
        "explain",
        "one image's story: tags, containers, ages, last use, every rule's verdict, bytes",
    )
    explain.add_argument("image", metavar="IMAGE|REF", help="an image id (or prefix) or reference")
    explain.add_argument(
        "--policy",
        type=Path,
        default=default_policy,
        help=f"policy file (default {default_policy})",
    )
    explain.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="default table"
    )


def explain(args: argparse.Namespace) -> int:
    policy = load_trusted_policy(args.policy)
    planned = plan_once(Engine(args.host), policy, args.state_dir)
    image = find_image(planned.snapshot, args.image)
    if image is None:
        raise UnknownImageError(args.image, len(planned.snapshot.images))
    # The rules as the plan saw them: compose rules with their files read.
    read, _ = read_compose(policy)
    story = tell(planned.snapshot, read, planned.plan, image)
    if args.output == "json":
        write_json(story_document(story), sys.stdout)
    else:
        write_story(story, sys.stdout)
    return ExitCode.OK


def story_document(story: ImageStory) -> dict[str, Any]:
    """`"document": "explain"`: the image's plan decision as in `gcd plan --output json`,
    its containers, every step and the bytes."""
    return {
        "format": LATEST_FORMAT,
        "document": "explain",
        "created_at": story.now.isoformat(),
        "decision": decision_record(story.decision),
        "containers": [{"id": c.id, "name": c.name, "state": c.state.value} for c in story.users],
        "steps": [
            {
                "name": s.name,
                "rule": s.rule.value,
                "holds": s.holds,
                "decides": s.decides,
                "detail": s.detail,
            }
            for s in story.steps
        ],
        "bytes": {
            "alone": story.alone_bytes,
            "with_plan": story.with_plan_bytes,
            "plan_freed": story.plan_freed_bytes,
        },
    }
