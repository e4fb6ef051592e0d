#!/usr/bin/env python3
"""Passes a command's output through, each line prefixed with `[LABEL] `, and appends the
wall time of each Molecule step it sees, and of the whole stream, to the times file that
scripts/times_table.py prints at the end of `make test`.

  molecule test -s NAME 2>&1 | scripts/timelog.py LABEL

Times go to the file $ACC_TIMES names (the Makefile sets it), one row per part: LABEL, PART,
SECONDS; without ACC_TIMES the lines are only prefixed.
Molecule announces each step as `[SCENARIO > STEP] Executing` and ends it with
`[SCENARIO > STEP] Executed: ...`."""
import os
import re
import sys
import time

STEP = re.compile(r"\[[^\]>]+ > (?P<step>[\w-]+)\] (?P<event>Executing|Executed)")


def record(label, part, seconds):
    path = os.environ.get("ACC_TIMES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write("%s\t%s\t%.0f\n" % (label, part, seconds))


def main(label):
    started = time.monotonic()
    step, step_started = None, None
    for line in sys.stdin:
        sys.stdout.write("[%s] %s" % (label, line))
        sys.stdout.flush()
        match = STEP.search(line)
        if not match:
            continue
        now = time.monotonic()
        if match.group("event") == "Executing":
            step, step_started = match.group("step"), now
        elif step == match.group("step"):
            record(label, step, now - step_started)
            step = None
    if step:  # the stream ended inside a step: it failed there
        record(label, step + " (failed)", time.monotonic() - step_started)
    record(label, "all", time.monotonic() - started)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
