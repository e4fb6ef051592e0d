# -*- coding: utf-8 -*-
"""What the role must never print, and which folders may hold code the worker imports.

Shared by the role's modules; pure functions, tested without a host.
"""

from __future__ import annotations

import json
import os
import re
import stat

# Setting names whose values carry credentials: URLs (broker_url, result_backend with a
# password), anything named like a password or secret, and the Redis Sentinel client options.
# The one definition: the child masks effective values with it, the modules mask what they
# return with it.
SECRET_PATTERN = r"url|password|secret|backend$|sentinel_kwargs"
SECRET_NAME = re.compile(SECRET_PATTERN, re.IGNORECASE)

# Shorter strings would mask every occurrence of common words or digits in the output.
MIN_SECRET_LENGTH = 4


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def secret_names(settings, prefix=""):
    """Dotted names of the settings (at any depth) whose name says they carry a credential."""
    names = []
    if isinstance(settings, dict):
        for key, value in sorted(settings.items()):
            name = prefix + str(key)
            if SECRET_NAME.search(str(key)):
                names.append(name)
            else:
                names.extend(secret_names(value, name + "."))
    return names


def secret_values(settings):
    """Every string under a credential-carrying name, as it may appear in output: itself and
    JSON-escaped. Whole values only: a URL's password alone (often a plain word such as the
    user's name) would mask every path and name that contains it."""
    values = set()

    def walk(node):
        if not isinstance(node, dict):
            if isinstance(node, (list, tuple)):
                for item in node:
                    walk(item)
            return
        for key, value in node.items():
            if SECRET_NAME.search(str(key)):
                for leaf in _leaves(value):
                    values.add(leaf)
                    values.add(json.dumps(leaf)[1:-1])
            else:
                walk(value)

    walk(settings)
    return {value for value in values if len(value) >= MIN_SECRET_LENGTH}


def walk_path(path):
    """The directories the kernel looks names up in to reach `path`, following symbolic links
    as it does, and the real path (as far as it exists; missing components are appended).
    A writer of any of these directories can swap what `path` leads to."""
    pending = [part for part in os.path.abspath(path).split("/") if part]
    pending.reverse()
    current = "/"
    looked_in = []
    hops = 0
    missing = []
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        if missing:
            missing.append(name)
            continue
        if current not in looked_in:
            looked_in.append(current)
        candidate = os.path.join(current, name)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError("too many levels of symbolic links: %s" % path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending.extend(reversed([part for part in target.split("/") if part]))
            continue
        if not os.path.lexists(candidate):
            missing.append(name)
            continue
        current = candidate
    return looked_in, os.path.join(current, *missing) if missing else current


def unsafe_writers(st, uids, gids):
    """Who besides `uids` and `gids` can change what a folder (or file) with stat `st` holds,
    by its owner and mode bits, or None."""
    found = []
    if st.st_uid not in uids:
        found.append("its owner (uid %d)" % st.st_uid)
    if st.st_mode & stat.S_IWGRP and st.st_gid not in gids:
        found.append("its group (gid %d)" % st.st_gid)
    if st.st_mode & stat.S_IWOTH:
        found.append("every user")
    return ", ".join(found) or None
