#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Restarts an Airflow Celery worker, or takes one just restarted, and waits until it is active and answers a
Celery ping with this run's settings."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_ping
short_description: Restart an Airflow Celery worker and wait until it answers, on this run's settings
description:
  - With C(restart), restarts the worker unit first (C(systemctl restart)); the Python that pings imports Airflow
    meanwhile, so the restart and that import take the time of the longer one.
  - Waits until the worker unit is active and its worker answers a Celery ping over its own broker, for at most
    C(install.timeout) seconds, then asks it for the digest of the settings it started with.
  - The return value C(answered) is false, with the reason in C(problem), when it does not answer, or answers with
    another digest than C(install.digest); the journal's error lines are part of the reason. Never fails on that;
    the role rolls back.
  - Changes nothing without C(restart). In check mode, restarts nothing and reports the restart as a change.
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
  remote_control:
    type: bool
    default: true
    description:
      - Whether the restarted worker's config leaves Celery's remote control on (C(worker_enable_remote_control)). Off,
        it cannot answer a ping, so the module waits until the unit is active, then requires it to stay active, with
        the same main process, for 10 s.
  restart:
    type: bool
    default: false
    description: Restart the worker unit first.
  drain_note:
    type: path
    description:
      - The note of the drain before the restart (the return value C(note) of
        M(airflow_fleet.celery_config.airflow_celery_config_drain)), removed once the worker answers, as the restarted
        worker consumes its configured queues again.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Restart the worker and wait until it answers a Celery ping
  airflow_celery_config_ping:
    install: "{{ install | combine({'digest': facts.digest}) }}"
    restart: true
  register: ping
"""

RETURN = r"""
answered:
  description: The restarted worker answered a ping, with this run's digest where it carries one.
  returned: always
  type: bool
restarted:
  description: The module restarted the unit (C(restart), not in check mode).
  returned: always
  type: bool
problem:
  description: Why it did not.
  returned: when answered is false
  type: str
node_name:
  description: The Celery node name pinged.
  returned: when the unit became active
  type: str
live:
  description: The worker's answer to C(inspect conf) (node, answered, digest).
  returned: when it answered
  type: dict
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils.airflow_celery_config_worker import INSTALL_SPEC, Worker
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_worker import INSTALL_SPEC, Worker

ARGUMENT_SPEC = dict(install=INSTALL_SPEC, remote_control=dict(type="bool", default=True),
                     restart=dict(type="bool", default=False), drain_note=dict(type="path", default=None))
# Seconds a worker without remote control must stay active after its start to count as back:
# it cannot answer a ping, and Airflow 2 workers that fail can exit a few seconds after starting.
SETTLE = 10


def journal_errors(module, unit, since):
    """The distinct error lines the unit logged since `since`: the reason a worker did not
    start is often a few tracebacks up, behind a misleading last one."""
    out = module.run_command(["journalctl", "-u", unit, "--no-pager", "-o", "cat", "--since", "@%d" % since])[1]
    errors = []
    for line in out.splitlines():
        line = line.strip()
        if re.match(r"[\w.]*(Error|Exception)\b.*:", line) and line not in errors:
            errors.append(line)
    return "; errors in its journal: " + " | ".join(errors[:5]) if errors else ""


def main_pid(module, unit):
    return module.run_command(["systemctl", "show", unit, "--property=MainPID", "--value"])[1].strip()


def unit_state(module, unit):
    return module.run_command(["systemctl", "is-active", unit])[1].strip()


def wait_started(module, unit, deadline):
    """The unit's state once it is active, or has failed or stopped, or at the deadline: after
    `restart` has returned, "inactive" or "failed" means the new process exited (Airflow 2
    workers can exit quietly, with status 0)."""
    state = unit_state(module, unit)
    while time.time() < deadline and state not in ("active", "failed", "inactive"):
        time.sleep(1)
        state = unit_state(module, unit)
    return state


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params["install"]
    restart = module.params["restart"]
    if restart and module.check_mode:
        module.exit_json(changed=True, restarted=False, answered=False, check_mode=True)
    unit = p["service"]
    worker = Worker(module, p)
    started = time.time()
    run = {"state": "", "restart_error": ""}

    def restart_and_wait():
        """Restart the unit, wait for it to start, and say whether and how long to ping."""
        if restart:
            rc, out, err = module.run_command(["systemctl", "restart", unit])
            if rc != 0:
                run["restart_error"] = "; systemctl restart said: " + (err.strip() or out.strip())
        deadline = time.time() + p["timeout"]
        run["state"] = wait_started(module, unit, deadline)
        return "go %.1f" % max(1, deadline - time.time()) if run["state"] == "active" else "stop"

    result = worker.result()
    result.update(restarted=restart, changed=restart)
    if not module.params["remote_control"]:
        restart_and_wait()
        if run["state"] == "active":
            pid = main_pid(module, unit)
            time.sleep(SETTLE)
            result["answered"] = unit_state(module, unit) == "active" and main_pid(module, unit) == pid
        else:
            result["answered"] = False
        if not result["answered"]:
            result["problem"] = "the worker unit %s did not stay active for %d s after its restart%s%s" % (
                unit, SETTLE, run["restart_error"], journal_errors(module, unit, started - 5))
        forget(module, result)
        module.exit_json(**result)
    answer = worker.ask("ping", meanwhile=restart_and_wait)
    if run["state"] == "active":
        result.update(answer)
    result["answered"] = bool(result.get("replies"))
    live = result.get("live") or {}
    if result["answered"] and p["digest"] and live.get("answered") and live.get("digest") != p["digest"]:
        # It came back, but not on this run's config: as bad as not coming back.
        result["answered"] = False
        result["problem"] = "the restarted worker %s answers with settings %s, not %s" % (
            live["node"], live.get("digest") or "not given by this role", p["digest"])
    if not result["answered"] and "problem" not in result:
        state = unit_state(module, unit)
        status = module.run_command(["systemctl", "show", unit, "--property=ExecMainStatus", "--value"])[1]
        result["problem"] = "the worker unit %s is %s (its last process exited with status %s) and %s did not " \
            "answer a Celery ping within %ss%s%s%s" % (
                unit, state, status.strip() or "?", result.get("node_name", "its worker"),
                p["timeout"], "; the broker did not answer either: " + result["broker_problem"]
                if result.get("broker_problem") else "", run["restart_error"], journal_errors(module, unit, started - 5))
    forget(module, result)
    module.exit_json(**result)


def forget(module, result):
    """Remove the drain's note once the restarted worker answers: it consumes its queues again."""
    note = module.params["drain_note"]
    if result["answered"] and note and os.path.exists(note):
        os.remove(note)
        result["changed"] = True


if __name__ == "__main__":
    main()
