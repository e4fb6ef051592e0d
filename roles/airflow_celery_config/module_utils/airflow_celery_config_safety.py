# -*- coding: utf-8 -*-
"""What the role must never print, and which folders may hold code the worker imports.

Shared by the role's modules; functions of their arguments and the files they name, tested
without a host.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
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


class UnsafePath(Exception):
    """A path the role must not write, or have the worker import from; the message says why."""


def describe(path):
    """The stat of `path` and its owner, group and mode as in `root:airflow 0640`."""
    st = os.stat(path)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return st, "%s:%s %04o" % (owner, group, st.st_mode & 0o7777)


def file_facts(path):
    """What a write of `path` compares: its content's sha1 and its owner, group and mode."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return {"sha1": hashlib.sha1(handle.read()).hexdigest(), "stat": describe(path)[1]}


def path_facts(user, group, cfg_path, module_dir, module_name, dropin, env_file=None):
    """The files the role edits, behind any links, for the worker unit's `user` and `group`
    (pwd and grp entries): `real` (each input's real path), `links` (inputs that go through a
    link), `exists`, and `files` (file_facts of the module and the drop-in). Raises UnsafePath
    where a folder the worker's import of the module goes through (the links' folders
    included), or the module, can be written by anyone but root and the worker's user and
    group, or the drop-in's folders by anyone but root: a drop-in runs commands as root."""
    worker = ({0, user.pw_uid}, {0, group.gr_gid})
    inputs = {"cfg_path": cfg_path, "module_dir": module_dir, "module": os.path.join(module_dir, module_name + ".py"),
              "dropin": dropin, "dropin_dir": dropin and os.path.dirname(dropin), "env_file": env_file}
    real, links, looked_in = {}, [], {}
    for name, path in inputs.items():
        if path is None:
            real[name] = None
            continue
        try:
            looked_in[name], real[name] = walk_path(path)
        except OSError as exc:
            raise UnsafePath("%s: %s" % (path, exc))
        if real[name] != os.path.abspath(path):
            links.append("%s -> %s" % (path, real[name]))

    # (what, folders, who may write them, what to do): code the worker imports, then the drop-in,
    # which systemd runs as root.
    who_worker = "root, user %s and group %s" % (user.pw_name, group.gr_name)
    checks = [
        ("airflow_celery_config_module_dir: the worker imports %s" % inputs["module"],
         looked_in["module"] + [real["module_dir"], real["module"]], worker, who_worker),
    ] + ([("the unit's drop-in %s" % dropin, looked_in["dropin"] + [real["dropin"]], ({0}, {0}), "root")] if dropin else [])
    for what, paths, (uids, gids), who in checks:
        for path in paths:
            if not os.path.exists(path):
                continue
            st, shown = describe(path)
            writers = unsafe_writers(st, uids, gids)
            if writers:
                fixes = (["chown root %s" % path] if st.st_uid not in uids else []) + \
                        (["chmod g-w %s" % path] if "its group" in writers else []) + \
                        (["chmod o-w %s" % path] if "every user" in writers else [])
                raise UnsafePath(
                    "%s, but %s (%s) can be written by %s, not only by %s: any of them could replace "
                    "what runs there. Nothing was written. Make it writable by %s only (`%s`), or choose "
                    "another path, then run again" % (what, path, shown, writers, who, who, "; ".join(fixes)))
    return dict(real=real, links=links,
                exists={name: path is not None and os.path.exists(path) for name, path in real.items()},
                files={name: real[name] and file_facts(real[name]) for name in ("module", "dropin")})
