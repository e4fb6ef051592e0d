#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Stops a running Airflow Celery worker taking new tasks and waits for its running ones, or gives its queues back."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_drain
short_description: Drain an Airflow Celery worker before its restart, or give it its queues back
description:
  - With C(state=drained), cancels the running worker's consumer of each queue (Celery's C(cancel_consumer)), so
    that the other workers take the queue's new tasks, then waits until the worker has no active and no reserved
    task (C(inspect active), C(inspect reserved)) for at most C(round) seconds. Call it again until C(idle) or
    C(expired) is true; each call reports the tasks it still waits for.
  - Before cancelling anything it writes a note naming the queues (in C(note_dir)), so that a run that dies
    mid-drain leaves the queues known. The note also holds when the drain began, the moment the first call
    cancelled the consumers (not counting the import of Airflow before it); C(timeout) counts from then.
  - With C(state=consuming), gives the worker back the queues its note names (Celery's C(add_consumer)) and removes
    the note. Without a note it does nothing. After a restart,
    M(airflow_fleet.celery_config.airflow_celery_config_ping) removes the note, as a new worker consumes its queues.
  - A worker that does not answer remote control (C(worker_enable_remote_control) off, or its broker down) gives
    C(drainable=false) and the reason in C(problem); the module never fails on that.
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
  state:
    type: str
    required: true
    choices: [drained, consuming]
    description:
      - C(drained) to stop the worker taking tasks and wait for its running ones, C(consuming) to give its queues back.
  queues:
    type: list
    elements: dict
    default: []
    description:
      - The queues the worker consumes, as the live check's C(live.queues) gives them (C(name), C(exchange),
        C(exchange_type), C(routing_key)). A note left by an earlier drain adds its own.
  timeout:
    type: int
    default: 600
    description:
      - Seconds the whole drain may wait for running tasks, counted from the drain's first call.
  round:
    type: int
    description:
      - Seconds one call waits at most before it reports. Unset, a quarter of C(timeout), from 5 to 30 s.
  note_dir:
    type: path
    default: /var/lib/airflow_celery_config
    description:
      - The folder of the drain's note.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Stop the worker taking tasks and wait for its running ones
  airflow_celery_config_drain:
    install: "{{ install }}"
    state: drained
    queues: "{{ check.live.queues }}"
    timeout: 600
  register: drain

- name: Give the worker its queues back
  airflow_celery_config_drain:
    install: "{{ install }}"
    state: consuming
"""

RETURN = r"""
drainable:
  description: Whether the worker answered the drain's remote-control commands.
  returned: always
  type: bool
problem:
  description: Why it could not be drained, or given its queues back.
  returned: when a command was not answered
  type: str
queues:
  description: The names of the queues cancelled, or given back.
  returned: always
  type: list
  elements: str
idle:
  description: The worker has no active and no reserved task.
  returned: with state=drained
  type: bool
expired:
  description: The drain has waited C(timeout) seconds.
  returned: with state=drained
  type: bool
left:
  description: Seconds of the drain left.
  returned: with state=drained
  type: int
busy:
  description: The tasks it waits for, the longest running first, each with C(name), C(id) and C(seconds) (null for a reserved task).
  returned: with state=drained
  type: list
  elements: dict
busy_summary:
  description: How many tasks, and the longest one's age, in one phrase.
  returned: with state=drained
  type: str
busy_text:
  description: The tasks, each with its name, id and age, for the log.
  returned: with state=drained
  type: str
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
    from ansible.module_utils.airflow_celery_config_drain import (
        NOTE_DIR, begin, note_path, outcome, read_note, round_seconds, seconds_left, write_note)
    from ansible.module_utils.airflow_celery_config_worker import INSTALL_SPEC, Worker
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_drain import (
        NOTE_DIR, begin, note_path, outcome, read_note, round_seconds, seconds_left, write_note)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_worker import (
        INSTALL_SPEC, Worker)

ARGUMENT_SPEC = dict(
    install=INSTALL_SPEC,
    state=dict(type="str", required=True, choices=["drained", "consuming"]),
    queues=dict(type="list", elements="dict", default=[]),
    timeout=dict(type="int", default=600),
    round=dict(type="int", default=None),
    note_dir=dict(type="path", default=NOTE_DIR),
)


def drained(module, worker, path, note):
    p = module.params
    queues, started = begin(path, note, p["queues"])
    result = dict(changed=note is None or len(queues) > len(note["queues"]), note=path,
                  queues=[queue["name"] for queue in queues])
    wait = round_seconds(p["round"], p["timeout"], seconds_left(started, p["timeout"]))
    answer = worker.ask("drain", queues=queues, wait=wait, timeout=wait)
    result["imports"] = 1
    if note is None and answer.get("cancelled_at"):
        # The drain timeout counts from when the worker stopped taking tasks, not from the
        # import of Airflow before that (seconds on a loaded host).
        started = answer["cancelled_at"]
        write_note(path, queues, started)
    if answer.get("problem"):
        # Some of it may have happened: give back whatever it did cancel. Where that fails too,
        # the note stays for the next run.
        result["imports"] = 2
        if not worker.ask("resume", queues=queues).get("problem"):
            os.remove(path)
        module.exit_json(drainable=False, problem=answer["problem"], **result)
    module.exit_json(drainable=True, **dict(result, **outcome(answer, started, p["timeout"])))


def consuming(module, worker, path, note):
    result = dict(changed=False, note=path, queues=[queue["name"] for queue in note["queues"]] if note else [], imports=0)
    if note is None:
        module.exit_json(drainable=True, **result)
    answer = worker.ask("resume", queues=note["queues"])
    result["imports"] = 1
    if answer.get("problem"):
        # The note stays, so the next run tries again.
        module.exit_json(drainable=False, problem=answer["problem"], **result)
    os.remove(path)
    module.exit_json(drainable=True, **dict(result, changed=True))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    path = note_path(p["note_dir"], p["install"]["service"])
    note = read_note(path)
    if module.check_mode:
        module.exit_json(changed=False, drainable=False, problem="check mode", note=path, imports=0,
                         queues=[queue["name"] for queue in note["queues"]] if note else [])
    worker = Worker(module, p["install"])
    if not worker.active:
        # A worker that starts again consumes all its queues: a note has nothing left to give back.
        if note is not None:
            os.remove(path)
        module.exit_json(changed=bool(note), drainable=False, problem="the worker unit %s is not active"
                         % p["install"]["service"], note=path, queues=[], imports=0)
    (drained if p["state"] == "drained" else consuming)(module, worker, path, note)


if __name__ == "__main__":
    main()
