"""`gcd explain`: one image's story as text for people (its JSON: `gcd.explain_cli`)."""

from __future__ import annotations

from typing import IO

from gcd.core.ages import AgeStart
from gcd.core.image_story import ImageStory
from gcd.core.units import format_bytes, format_duration

AGE_FROM = {
    AgeStart.ARRIVAL: "arrival, the engine's own record of when the image was written here",
    AgeStart.TAGGED: "tagged, the engine's LastTagTime (a build or docker tag)",
    AgeStart.FIRST_SEEN: "first_seen, no record: when gcd first saw it (safety.unknown_age)",
    AgeStart.CREATED: "created, no record: its Created (safety.unknown_age: created)",
    AgeStart.RECORDED: "recorded, gcd's state: started on an earlier run",
}


def _last_use(story: ImageStory) -> str:
    used = story.image.last_used
    if used is None:
        return "never (no container seen using it since gcd first saw it)"
    idle = story.now - used
    return f"{format_duration(idle)} ago ({used.isoformat()})"


def story_lines(story: ImageStory) -> list[str]:
    image, decision = story.image, story.decision
    action = "delete" if decision.deletes else "keep"
    lines = [
        f"image {image.id}",
        "  tags:       " + (", ".join(r.familiar for r in image.tags) or "none (dangling)"),
        "  digests:    " + (", ".join(str(r) for r in image.digests) or "none"),
        "  containers: "
        + (", ".join(f"{c.name} ({c.state.value})" for c in story.users) or "none"),
        f"  local age:  {format_duration(decision.age)} (since {image.seen_at.isoformat()}; "
        f"started from: {AGE_FROM[image.age_from]})",
        "  created:    " + (image.created.isoformat() if image.created else "unknown"),
        f"  last use:   {_last_use(story)}",
        f"  size:       {format_bytes(image.size_bytes)}",
        "rules, in the order gcd tries them:",
    ]
    for step in story.steps:
        verdict = "holds" if step.holds else "no"
        mark = "→" if step.decides else " "
        lines.append(f"  {mark} {step.rule.value:<22} {verdict:<5} {step.name}: {step.detail}")
    lines += [
        f"plan: {action} ({decision.rule.value}): {decision.detail}",
        f"frees alone: {format_bytes(story.alone_bytes)}; "
        f"with the rest of the plan: {format_bytes(story.with_plan_bytes)} more "
        f"(the plan with it frees {format_bytes(story.plan_freed_bytes)})",
    ]
    return lines


def write_story(story: ImageStory, out: IO[str]) -> None:
    out.writelines(line + "\n" for line in story_lines(story))
