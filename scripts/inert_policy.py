"""The Debian package's /etc/gcd/policy.yaml: policy.example.yaml with its kinds commented out.

A package's service starts on install, before anyone has read the policy; so the shipped
policy touches nothing (a kind without its section is never collected) and keeps the
example's every comment, for the operator to uncomment what they want. The `images:` section
is the only kind the example leaves active; the optional kinds are commented already.

    python3 scripts/inert_policy.py policy.example.yaml > /etc/gcd/policy.yaml

Needs nothing but the standard library: debian/rules runs it with the build's python3.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADER = """\
# /etc/gcd/policy.yaml, as shipped by the gcd Debian package: it DELETES NOTHING.
# gcd.service runs from the moment the package is installed, so no kind is active until you
# uncomment it: the `images:` section below was commented out ("#: " lines); remove those
# marks (and the leading "# " of any optional section) to let gcd collect, then
#     gcd check /etc/gcd/policy.yaml && gcd plan --policy /etc/gcd/policy.yaml
#     systemctl reload gcd.service
# This file is a conffile: upgrades keep your edits. The full example is also in
# /usr/share/doc/gcd/examples/policy.example.yaml.
"""
MARK = "#: "
# A top-level key: a line that starts with neither a space nor a comment.
TOP_LEVEL = re.compile(r"^[^\s#]")


def inert(example: str) -> str:
    """The example with its `images:` section (up to the next top-level key) commented out."""
    lines = example.splitlines(keepends=True)
    out: list[str] = []
    inside = False
    for line in lines:
        if TOP_LEVEL.match(line):
            inside = line.startswith("images:")
        out.append(f"{MARK}{line}" if inside and line.strip() else line)
    if not any(line.startswith(f"{MARK}images:") for line in out):
        raise SystemExit("policy.example.yaml has no top-level images: section to comment out")
    return HEADER + "".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: inert_policy.py policy.example.yaml", file=sys.stderr)
        return 2
    sys.stdout.write(inert(Path(argv[0]).read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
