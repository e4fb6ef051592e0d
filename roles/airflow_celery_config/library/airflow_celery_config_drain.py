#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Gives a running Airflow Celery worker back the queues an interrupted drain left cancelled."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_drain
short_description: Give an Airflow Celery worker back the queues an interrupted drain left cancelled
description:
  - A drain (M(airflow_fleet.celery_config.airflow_celery_config_ping) with C(drain)) writes a note naming the worker's
    queues before it cancels the worker's consumers. A run that dies mid-drain (Ctrl-C, a lost connection) leaves the
    worker up, healthy-looking and taking no task, and leaves the note.
  - This module gives the worker back the queues its note names (Celery's C(add_consumer)) and removes the note.
    Without a note it does nothing. A worker that is not active loses its note, as when it starts again it consumes all
    its queues.
  - A worker that does not answer remote control (C(worker_enable_remote_control) off, or its broker down) gives
    C(answered=false) and the reason in C(problem), and the note stays for the next run; the module never fails on
    that.
  - Does nothing in check mode.
options:
  install:
    type: dict
    required: true
    description:
      - The worker install; the same dict as the C(install) option of
        M(airflow_fleet.celery_config.airflow_celery_config_facts).
    suboptions:
      python:
        type: path
        required: true
        description: The worker venv's interpreter.
      airflow_home:
        type: path
        required: true
        description: The worker's AIRFLOW_HOME; the module fails when the unit runs with another one.
      cfg_path:
        type: path
        required: true
        description: The airflow.cfg the worker reads.
      service:
        type: str
        required: true
        description: The worker's systemd unit.
      module_dir:
        type: path
        required: true
        description: The folder of the Celery config module.
      module_name:
        type: str
        required: true
        description: The Celery config module's name, a Python identifier.
      dict_name:
        type: str
        required: true
        description: The dict in the module that C(celery_config_options) points at, a Python identifier.
      settings:
        type: dict
        default: {}
        description: Managed Celery settings and their intended values.
      node_name:
        type: str
        default: ''
        description: Celery node name of the worker; empty means C(celery@<hostname>).
      timeout:
        type: int
        default: 120
        description: Seconds M(airflow_fleet.celery_config.airflow_celery_config_ping) waits.
      extra_setting_names:
        type: list
        elements: str
        default: []
        description: Setting names to accept beyond Celery's own.
      manage_env:
        type: bool
        default: false
        description: Accept a unit environment that sets C(celery_config_options); the role then rewrites it.
      read_idle_timeout:
        type: bool
        default: false
        description:
          - Connect to the result-backend database as the worker would and report the server's idle timeout in
            the return value C(db_idle_timeout); a database it cannot read gives a warning, not a failure.
      dropin_path:
        type: path
        description: The role's drop-in of the unit; its time counts as a config change.
      digest:
        type: str
        default: ''
        description: The return value C(digest) of this module, what the check and the ping expect the worker to run.
      stop_timeout:
        type: int
        default: 0
        description: Seconds a stop waits for running tasks; named in the warning about them.
  note_dir:
    type: path
    default: /var/lib/airflow_celery_config
    description:
      - The folder of the drain's note (the ping module's C(drain.note_dir)).
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Give the worker back the queues an interrupted drain left cancelled
  airflow_celery_config_drain:
    install: "{{ install }}"
  register: gave_back
"""

RETURN = r"""
answered:
  description: Whether the worker answered the remote-control command that gives its queues back.
  returned: always
  type: bool
problem:
  description: Why it could not be given its queues back.
  returned: when a command was not answered
  type: str
queues:
  description: The names of the queues given back.
  returned: always
  type: list
  elements: str
note:
  description: The path of the drain's note.
  returned: always
  type: str
imports:
  description: How many times this call imported Airflow in the worker's interpreter.
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils.airflow_celery_config_drain import NOTE_DIR, note_path, read_note
    from ansible.module_utils.airflow_celery_config_worker import INSTALL_SPEC, Worker
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_drain import (
        NOTE_DIR, note_path, read_note)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_worker import (
        INSTALL_SPEC, Worker)

ARGUMENT_SPEC = dict(
    install=INSTALL_SPEC,
    note_dir=dict(type="path", default=NOTE_DIR),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    path = note_path(p["note_dir"], p["install"]["service"])
    note = read_note(path)
    result = dict(changed=False, note=path, queues=[queue["name"] for queue in note["queues"]] if note else [], imports=0)
    if module.check_mode:
        module.exit_json(answered=False, problem="check mode", **result)
    worker = Worker(module, p["install"])
    if not worker.active:
        # A worker that starts again consumes all its queues: a note has nothing left to give back.
        if note is not None:
            os.remove(path)
        result.update(changed=note is not None, queues=[])
        module.exit_json(answered=False, problem="the worker unit %s is not active" % p["install"]["service"], **result)
    if note is None:
        module.exit_json(answered=True, **result)
    answer = worker.ask("resume", queues=note["queues"])
    result["imports"] = 1
    if answer.get("problem"):
        # The note stays, so the next run tries again.
        module.exit_json(answered=False, problem=answer["problem"], **result)
    os.remove(path)
    result["changed"] = True
    module.exit_json(answered=True, **result)


if __name__ == "__main__":
    main()
