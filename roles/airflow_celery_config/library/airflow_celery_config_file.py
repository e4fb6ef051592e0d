#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Write a file the role rendered on the control node, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_file
short_description: Write a rendered file, with its owner and mode, in one call
description:
  - Writes C(content) to C(dest) where the file differs or is missing, then sets its owner, group and mode.
  - The role renders its templates on the control node (the C(ansible.builtin.template) lookup) and gives the
    text to this module, which compares, validates, backs up and writes in one remote call; the template
    action takes five to seven.
  - The new content is written beside C(dest) and moved over it, so a reader sees the old file or the new one.
  - C(content) is never logged or returned (the Celery config module may hold credentials); a unified diff of
    the lines that change is returned only where the task asks for one (diff mode).
  - Supports check mode.
options:
  dest:
    type: path
    required: true
    description: The file; its folder must exist. A link is replaced, not followed; give the real path.
  content:
    type: str
    required: true
    description: The whole file.
  owner:
    type: str
    description: The file's owner; unset, left as it is (a new file gets the module's user).
  group:
    type: str
    description: The file's group; unset, left as it is.
  mode:
    type: str
    description: The file's mode, in octal (C(0640)); unset, left as it is.
  validate:
    type: str
    description:
      - A command run on the new content before it replaces C(dest), with C(%s) for the path of that content. A
        non-zero exit fails the task and leaves C(dest) as it was.
  backup:
    type: bool
    default: false
    description: Copy C(dest) beside itself before replacing it; the return value C(backup_file) names the copy.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Write the Celery config module
  airflow_celery_config_file:
    dest: /home/airflow/airflow/config/my_celery_config.py
    content: "{{ lookup('ansible.builtin.template', 'celery_config.py.j2') }}"
    owner: root
    group: airflow
    mode: "0640"
    validate: /opt/airflow/venv/bin/python -m py_compile %s
    backup: true
"""

RETURN = r"""
dest:
  description: The file written.
  returned: always
  type: str
backup_file:
  description: The copy of the previous file.
  returned: when the content changed, with backup=true, and not in check mode
  type: str
"""

import difflib
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    content=dict(type="str", required=True, no_log=True),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="str"),
    validate=dict(type="str"),
    backup=dict(type="bool", default=False),
)


def read(module, path):
    """The file's bytes, or None where there is no file."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        module.fail_json(msg="cannot read %s: %s" % (path, exc), dest=path)


def write(module, dest, data, validate, backup):
    """Write `data` beside `dest`, validate it, back `dest` up if asked, move the new file over
    it. Returns the backup's path, or None."""
    backup_file = None
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".%s." % os.path.basename(dest))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if validate:
            if "%s" not in validate:
                module.fail_json(msg="validate must contain %%s: %s" % validate, dest=dest)
            rc, out, err = module.run_command(validate % tmp)
            if rc != 0:
                module.fail_json(msg="%s was not written: %s failed (rc %d): %s" % (dest, validate, rc, (err or out).strip()),
                                 dest=dest)
        if backup and os.path.exists(dest):
            backup_file = module.backup_local(dest)
        module.atomic_move(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return backup_file


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    dest = p["dest"]
    data = to_bytes(p["content"], errors="surrogate_or_strict")
    before = read(module, dest)
    result = dict(changed=before != data, dest=dest)
    if module._diff and result["changed"]:
        # The changed lines, not the whole text: the output masks the content wherever it appears whole.
        lines = difflib.unified_diff(to_text(before or b"").splitlines(True), p["content"].splitlines(True),
                                     "before: %s" % dest, "after: %s" % dest)
        result["diff"] = dict(prepared="".join(lines))
    if result["changed"] and not module.check_mode:
        backup_file = write(module, dest, data, p["validate"], p["backup"])
        if backup_file:
            result["backup_file"] = backup_file
    if os.path.exists(dest):
        # What is wrong is reported as would-change in check mode, and set otherwise.
        changed = module.set_owner_if_different(dest, p["owner"], result["changed"])
        changed = module.set_group_if_different(dest, p["group"], changed)
        result["changed"] = module.set_mode_if_different(dest, p["mode"], changed)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
