#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Reads the managed settings through the worker's own Celery app and asks the running worker for its own."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_check
short_description: Check that an Airflow Celery worker's app, and the running worker, have the managed settings
description:
  - Builds the worker's Celery app exactly as C(airflow celery worker) does, in the worker's own Python as the
    unit's user with the unit's environment (for C(--team NAME) in the unit's ExecStart, the provider's
    C(create_celery_app(ExecutorConf(team_name=NAME)))), and compares every managed setting with its intended value
    (return value C(mismatch_reasons)).
  - Reports the airflow.cfg JSON options the provider could take the settings from instead (return value
    C(fallbacks), in the section the worker reads, C(cfg_section)) and which one carries them (C(applied_via)).
  - Asks the running worker, over its own broker, for the digest of the managed settings it started with (Celery's
    C(inspect conf)) and decides from it, or from the process start time and the config files' times, whether the
    running worker needs a restart (return value C(restart_reason)).
  - Never fails on a mismatch, only reports it; never changes anything; safe in check mode.
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
  warn_restart:
    type: bool
    default: false
    description:
      - Warn when the worker needs a restart and runs tasks that the stop may cut.
      - False where the run will not restart it (check mode, or the role variable C(airflow_celery_config_restart) false).
  drain_timeout:
    type: int
    description:
      - Seconds a drain waits for running tasks (the role variable C(airflow_celery_config_drain_timeout), 0 without a
        drain); unset, no such warning. With C(task_acks_late), warn where the broker gives up on a running task sooner than the drain or the
        stop (C(install.stop_timeout)) waits for it, as a Redis or SQS C(visibility_timeout) shorter than either, or
        either longer than RabbitMQ's default C(consumer_timeout) of 1800 s.
  reuse:
    type: dict
    description:
      - The return value C(now) of this run's M(airflow_fleet.celery_config.airflow_celery_config_facts), used
        instead of building the app again when its digest is C(install.digest) and nothing in C(written) stands in
        the way.
      - Where C(written) is empty, its read of the files as they were stands.
      - Where C(written) holds the Celery config module alone and C(restart) is true, its prediction for the new
        module stands (C(after_module_write)), if it made one. It makes one only where the app takes the module's
        dict as it stands and the running worker answers remote control, so that the restart's ping can ask the
        restarted worker for the digest (M(airflow_fleet.celery_config.airflow_celery_config_ping)).
  written:
    type: list
    elements: path
    default: []
    description: The files this run changed (in check mode, none).
  restart:
    type: bool
    default: false
    description: Whether a restart of the worker follows this read.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Read the settings the worker's Celery app runs with
  airflow_celery_config_check:
    install: "{{ install | combine({'digest': facts.digest}) }}"
    reuse: "{{ facts.now }}"
  register: check
"""

RETURN = r"""
versions:
  description: The airflow, celery and celery_provider versions in the worker's venv.
  returned: always
  type: dict
read_from:
  description: >-
    Where the read comes from: C(app) (the app built now), C(facts) (the facts module's read, nothing written since)
    or C(prediction) (the facts module's prediction for the module this run wrote). Only C(app) imports Airflow.
  returned: always
  type: str
app_module:
  description: Where the worker's app comes from.
  returned: always
  type: str
cfg_section:
  description: The airflow.cfg section the worker's Celery settings come from (C(celery), or C(NAME=celery) for a team).
  returned: always
  type: str
effective:
  description: The managed and the stale-connection settings as the app holds them (credentials masked).
  returned: always
  type: dict
mismatch_reasons:
  description: Why the worker's app would not run the managed settings (empty if it does).
  returned: always
  type: list
  elements: str
fallbacks:
  description:
    - The airflow.cfg JSON options that could carry the settings, best first.
    - Each has C(option), C(holds) (the one setting it carries, or null for all), C(covers), C(in_effect) and its
      current value.
  returned: always
  type: list
  elements: dict
applied_via:
  description: The airflow.cfg option that carries the settings to the worker's app.
  returned: always
  type: str
live:
  description:
    - The running worker's answer to C(inspect conf) (node, answered, digest, active tasks), and the others that
      answer when it does not.
  returned: when the unit is active
  type: dict
worker:
  description: "The unit: C(active), C(started_at) and C(config_changed_at) (epoch seconds)."
  returned: always
  type: dict
restart_reason:
  description: Why the running worker needs a restart to run the settings, or null.
  returned: always
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils.airflow_celery_config_settings import (
        DIGEST_CARRIERS, applied_via, broker_limit_warning, mismatch_reasons, read_to_reuse, restart_reason, restart_warning)
    from ansible.module_utils.airflow_celery_config_unit import newest_mtime, start_time
    from ansible.module_utils.airflow_celery_config_worker import INSTALL_SPEC, SHADOW_VARIABLE, Worker
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_settings import (
        DIGEST_CARRIERS, applied_via, broker_limit_warning, mismatch_reasons, read_to_reuse, restart_reason, restart_warning)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_unit import newest_mtime, start_time
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_worker import (
        INSTALL_SPEC, SHADOW_VARIABLE, Worker)

ARGUMENT_SPEC = dict(
    install=INSTALL_SPEC,
    warn_restart=dict(type="bool", default=False),
    drain_timeout=dict(type="int", default=None),
    reuse=dict(type="dict", default=None),
    written=dict(type="list", elements="path", default=[]),
    restart=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params["install"]
    worker = Worker(module, p)
    result = worker.result()
    module_file = os.path.join(p["module_dir"], p["module_name"] + ".py")
    read, result["read_from"] = read_to_reuse(
        module.params["reuse"], p["digest"], [os.path.realpath(path) for path in module.params["written"]],
        os.path.realpath(module_file), module.params["restart"])
    result.update(read if read is not None else worker.ask("check"))
    result["applied_via"] = applied_via(result["fallbacks"])
    result["worker"] = dict(active=worker.active,
                            started_at=start_time(worker.props.get("ExecMainStartTimestampMonotonic")),
                            config_changed_at=newest_mtime(worker.config_files()))
    result["restart_reason"] = restart_reason(
        result["worker"]["active"], result.get("live") or {}, p["digest"] if result["applied_via"] in DIGEST_CARRIERS else None,
        result["worker"]["started_at"], result["worker"]["config_changed_at"])
    warning = restart_warning(result, p["stop_timeout"]) if module.params["warn_restart"] else None
    if warning:
        module.warn(warning)
    warning = module.params["drain_timeout"] is not None and broker_limit_warning(
        result, module.params["drain_timeout"], p["stop_timeout"])
    if warning:
        module.warn(warning)
    result["mismatch_reasons"] = mismatch_reasons(result, p["settings"], "%s.%s" % (p["module_name"], p["dict_name"]),
                                                  SHADOW_VARIABLE)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
