#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read-only: the real files the role edits, and whether the folders they live in are safe."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_paths
short_description: Follow the links to the files the role edits and refuse folders others can write
description:
  - Resolves the links on the way to airflow.cfg, the module, the unit's drop-in and an
    EnvironmentFile, so the role edits (and backs up, and restores) the files they point to and
    keeps the links. The return value C(real) maps each input to the file it reaches, C(links) lists the inputs
    that went through a link.
  - Fails, naming the folder, its owner and its mode, when a folder the worker's import of the module
    goes through (every one from C(/) to the module, the links' folders included), or the module
    itself, can be written by anyone but root and the worker's user and group; or when the drop-in's
    folders can be written by anyone but root (a drop-in runs commands as root).
  - Never changes anything; safe in check mode.
options:
  user:
    type: str
    required: true
    description: The user the worker unit runs as.
  group:
    type: str
    required: true
    description: The group the worker unit runs as.
  cfg_path:
    type: path
    required: true
    description: The airflow.cfg the worker reads.
  module_dir:
    type: path
    required: true
    description: The folder of the Celery config module.
  module_name:
    type: str
    required: true
    description: The Celery config module's name; its file is C(<module_dir>/<module_name>.py).
  dropin:
    type: path
    required: true
    description: The role's drop-in file of the unit.
  env_file:
    type: path
    description: The unit's EnvironmentFile the role edits, if any.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Follow the links and check the folders
  airflow_celery_config_paths:
    user: airflow
    group: airflow
    cfg_path: /home/airflow/airflow/airflow.cfg
    module_dir: /home/airflow/airflow/config
    module_name: my_celery_config
    dropin: /etc/systemd/system/airflow-worker.service.d/zz-airflow-celery-config.conf
"""

RETURN = r"""
real:
  description:
    - For each of C(cfg_path), C(module_dir), C(module) (the module file), C(dropin), C(dropin_dir) and C(env_file),
      the real path.
  returned: always
  type: dict
links:
  description: The inputs that lead through a link, as C(input -> real path) lines.
  returned: always
  type: list
  elements: str
exists:
  description: For each key of C(real), whether that path exists (an existing folder has passed the checks above).
  returned: always
  type: dict
files:
  description:
    - For C(module) and C(dropin), what a write would compare, so the role skips one that has nothing to do, or null
      where no such regular file exists; C(sha1) of its content, and C(stat), its owner, group and mode as in
      C(root:airflow 0640).
  returned: always
  type: dict
"""

import grp
import hashlib
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils.airflow_celery_config_safety import unsafe_writers, walk_path
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_safety import unsafe_writers, walk_path


def describe(path):
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


ARGUMENT_SPEC = dict(
    user=dict(type="str", required=True),
    group=dict(type="str", required=True),
    cfg_path=dict(type="path", required=True),
    module_dir=dict(type="path", required=True),
    module_name=dict(type="str", required=True),
    dropin=dict(type="path", required=True),
    env_file=dict(type="path"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        user = pwd.getpwnam(p["user"])
        group = grp.getgrnam(p["group"])
    except KeyError as exc:
        module.fail_json(msg="the worker unit's user or group does not exist: %s" % exc)
    worker = ({0, user.pw_uid}, {0, group.gr_gid})
    inputs = {"cfg_path": p["cfg_path"], "module_dir": p["module_dir"],
              "module": os.path.join(p["module_dir"], p["module_name"] + ".py"),
              "dropin": p["dropin"], "dropin_dir": os.path.dirname(p["dropin"]), "env_file": p["env_file"]}
    real, links, looked_in = {}, [], {}
    for name, path in inputs.items():
        if path is None:
            real[name] = None
            continue
        try:
            looked_in[name], real[name] = walk_path(path)
        except OSError as exc:
            module.fail_json(msg="%s: %s" % (path, exc))
        if real[name] != os.path.abspath(path):
            links.append("%s -> %s" % (path, real[name]))

    # (what, folders, who may write them, what to do): code the worker imports, then the drop-in,
    # which systemd runs as root.
    who_worker = "root, user %s and group %s" % (user.pw_name, group.gr_name)
    checks = [
        ("airflow_celery_config_module_dir: the worker imports %s" % inputs["module"],
         looked_in["module"] + [real["module_dir"], real["module"]], worker, who_worker),
        ("the unit's drop-in %s" % p["dropin"], looked_in["dropin"] + [real["dropin"]], ({0}, {0}), "root"),
    ]
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
                module.fail_json(
                    msg="%s, but %s (%s) can be written by %s, not only by %s: any of them could replace "
                        "what runs there. Nothing was written. Make it writable by %s only (`%s`), or choose "
                        "another path, then run again" % (what, path, shown, writers, who, who, "; ".join(fixes)))
    module.exit_json(changed=False, real=real, links=links,
                     exists={name: path is not None and os.path.exists(path) for name, path in real.items()},
                     files={name: file_facts(real[name]) for name in ("module", "dropin")})


if __name__ == "__main__":
    main()
