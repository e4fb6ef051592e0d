# -*- coding: utf-8 -*-
"""What the worker's interpreter would import from, without importing Airflow: run by the
record module inside that interpreter (any Python 3.6+), as the unit's user with the unit's
environment, so PYTHONPATH and .pth files count as they do for the worker. Prints one JSON
line: the interpreter, its sys.path and every installed distribution found there (the
name of a dist-info or egg-info folder carries the version, so an upgrade changes it)."""

import json
import os
import sys

METADATA_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".pth")


def installed(path):
    """(entries of sys.path that exist, sorted metadata names found in them)."""
    entries, names = [], []
    for entry in path:
        # `python -c` puts the working directory first; the worker's airflow script does not.
        if entry in ("", "."):
            continue
        try:
            listing = os.listdir(entry)
        except OSError:
            continue
        entries.append(entry)
        names.extend(entry + "/" + name for name in listing if name.endswith(METADATA_SUFFIXES))
    return entries, sorted(names)


def main():
    entries, names = installed(sys.path)
    # Not a module: stdout is the answer the record module reads (sys.stdout, not print(),
    # which ansible-test bars from module_utils).
    sys.stdout.write(json.dumps({"executable": os.path.realpath(sys.executable), "version": sys.version,
                                 "path": entries, "distributions": names}) + "\n")


if __name__ == "__main__":
    main()
