#!/usr/bin/env python3
"""Prints the wall times `make test` collected (scripts/timelog.py, scripts/build-images.sh):
one row per image build and per scenario run, one column per Molecule step, in minutes and
seconds. A step that ran twice (destroy) shows its sum.

  scripts/times_table.py TIMES_FILE"""
import collections
import os
import sys

STEPS = ["dependency", "destroy", "syntax", "create", "prepare", "side_effect", "check", "converge",
         "idempotence", "verify"]


def clock(seconds):
    return "%d:%02d" % divmod(int(seconds), 60)


def read(path):
    rows = collections.OrderedDict()
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            label, part, seconds = line.rstrip("\n").split("\t")
            parts = rows.setdefault(label, collections.OrderedDict())
            parts[part] = parts.get(part, 0) + float(seconds)
    return rows


def table(rows):
    parts = [step for step in STEPS if any(step in row for row in rows.values())]
    parts += sorted({part for row in rows.values() for part in row if part not in STEPS and part != "all"})
    parts.append("all")
    width = max([len(label) for label in rows] + [8])
    lines = ["%-*s  %s" % (width, "run", " ".join("%11s" % part for part in parts))]
    for label, row in rows.items():
        cells = [clock(row[part]) if part in row else "-" for part in parts]
        lines.append("%-*s  %s" % (width, label, " ".join("%11s" % cell for cell in cells)))
    return "\n".join(lines)


def main(path):
    if not os.path.exists(path):
        sys.exit("no wall times recorded in %s" % path)
    print("Wall times (m:ss), from %s:" % path)
    print(table(read(path)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
