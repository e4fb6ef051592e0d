#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Set one option in one section of an ini file as Airflow's configparser reads it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_ini
short_description: Set one option of airflow.cfg, as Airflow reads it, in the file a link points to
description:
  - Sets the option C(option) in the section C(section) of an existing ini file the way Airflow's configparser
    reads it.
  - An option spelled with other capitals or with spaces around it is the same option and is
    replaced in place; a comment line naming it is left alone; a missing section is added at
    the end.
  - CRLF line endings and a missing final newline are kept.
  - A symbolic link is followed, and the file it points to is edited in place of the link, which is
    kept, and keeps its owner and mode. The return value C(path) names the file edited.
  - Never returns the file's content or a diff (airflow.cfg holds passwords); a value whose option
    name or JSON keys say it carries a credential is masked in every output.
  - Supports check mode.
options:
  path:
    type: path
    required: true
    description: The ini file; never created.
  section:
    type: str
    required: true
    description: Section name, case-sensitive as in Airflow (C(celery), C(team1=celery)).
  option:
    type: str
    required: true
    description: Option name; matched case-insensitively.
  value:
    type: str
    required: true
    description: One line.
  backup:
    type: bool
    default: false
    description:
      - Copy the file (the link's target) beside itself before changing it; the return value C(backup_file) names
        the copy.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Point airflow.cfg at the module
  airflow_celery_config_ini:
    path: /home/airflow/airflow/airflow.cfg
    section: celery
    option: celery_config_options
    value: my_celery_config.CELERY_CONFIG
    backup: true
"""

RETURN = r"""
path:
  description: The real file edited (or that would be), after following links.
  returned: always
  type: str
link:
  description: The link given in the option C(path) when it is one, else null.
  returned: always
  type: str
action:
  description: "C(unchanged), C(replaced), C(added) (to the section) or C(section added)."
  returned: always
  type: str
backup_file:
  description: The copy made before the change.
  returned: when changed, with backup=true, and not in check mode
  type: str
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils.airflow_celery_config_ini import IniError, set_option
    from ansible.module_utils.airflow_celery_config_safety import SECRET_NAME, secret_values
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_ini import IniError, set_option
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_safety import SECRET_NAME, secret_values


ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    section=dict(type="str", required=True),
    option=dict(type="str", required=True),
    value=dict(type="str", required=True),
    backup=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    # Before anything can fail: a credential in the value never reaches the output.
    if SECRET_NAME.search(p["option"]):
        module.no_log_values.update(secret_values({p["option"]: p["value"]}))
    else:
        try:
            module.no_log_values.update(secret_values(json.loads(p["value"])))
        except ValueError:
            pass
    link = p["path"] if os.path.islink(p["path"]) else None
    real = os.path.realpath(p["path"])
    result = dict(changed=False, path=real, link=link)
    try:
        with open(real, "rb") as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        module.fail_json(msg="cannot read %s%s: %s" % (p["path"], " (-> %s)" % real if link else "", exc), **result)
    try:
        new, action = set_option(text, p["section"], p["option"], p["value"])
    except IniError as exc:
        module.fail_json(msg="%s: %s" % (real, exc), **result)
    result["action"] = action
    if new == text:
        module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    if p["backup"]:
        result["backup_file"] = module.backup_local(real)
    # A new file beside the real one, moved over it: atomic_move gives it the real file's owner,
    # mode and SELinux context, and the link (if any) keeps pointing at it.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".%s." % os.path.basename(real))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(new.encode("utf-8", "surrogateescape"))
        module.atomic_move(tmp, real)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
