#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Reads what the role decides on from one Airflow Celery worker install, and fails on bad input."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_facts
short_description: Read an Airflow Celery worker's install and check the role's input, without changing anything
description:
  - Runs the worker's own Python as the worker unit's user, with the unit's environment, imports
    Airflow there and reports versions, the module holding C(DEFAULT_CELERY_CONFIG), the unit's
    environment and airflow.cfg facts.
  - Fails, before the role writes anything, on input that cannot work on this host, naming the input.
  - Resolves the links on the way to airflow.cfg, the module, the unit's drop-in and an EnvironmentFile that sets
    C(celery_config_options) (with C(install.manage_env)), so the role edits, backs up and restores the files they
    point to and keeps the links (return value C(paths)). Before it imports anything, fails, naming the folder, its
    owner and its mode, when a folder the worker's import of the module goes through (every one from C(/) to the
    module, the links' folders included), or the module itself, can be written by anyone but root and the worker's
    user and group; or when the drop-in's folders can be written by anyone but root (a drop-in runs commands as
    root).
  - Fits C(database_engine_options.pool_recycle) below the result-backend database's idle timeout
    (C(install.read_idle_timeout)) and names the settings (return value C(digest)).
  - In the same import, reads the worker's Celery app and the running worker the way
    M(airflow_fleet.celery_config.airflow_celery_config_check) does (return value C(now)), so a run that writes
    nothing imports Airflow once.
  - Never changes anything; safe in check mode.
options:
  install:
    type: dict
    required: true
    description:
      - The worker install, as the role's inputs name it; M(airflow_fleet.celery_config.airflow_celery_config_check),
        M(airflow_fleet.celery_config.airflow_celery_config_ping) and
        M(airflow_fleet.celery_config.airflow_celery_config_drain) take the same dict.
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
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Read the worker's install and fit the settings
  airflow_celery_config_facts:
    install:
      python: /opt/airflow/venv/bin/python
      airflow_home: /home/airflow/airflow
      cfg_path: /home/airflow/airflow/airflow.cfg
      service: airflow-worker
      module_dir: /home/airflow/airflow/config
      module_name: my_celery_config
      dict_name: CELERY_CONFIG
      settings: {database_engine_options: {pool_pre_ping: true, pool_recycle: 1800}}
      read_idle_timeout: true
  register: facts
"""

RETURN = r"""
versions:
  description: The airflow, celery and celery_provider versions in the worker's venv.
  returned: always
  type: dict
service_user:
  description: The unit's user.
  returned: always
  type: str
service_group:
  description: The unit's group.
  returned: always
  type: str
team:
  description: The NAME of C(--team NAME) in the unit's ExecStart, or null.
  returned: always
  type: str
config_options_from_env:
  description: "The unit's C(AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS): C(value), C(origin) and C(file); or null."
  returned: always
  type: dict
secret_settings:
  description: Names of the settings whose values are never shown.
  returned: always
  type: list
  elements: str
check_mode:
  description: Whether the run is in check mode (a play's check_mode too).
  returned: always
  type: bool
cfg:
  description:
    - "airflow.cfg: C(exists), C(value) (of C([celery] celery_config_options)), C(duplicates), and C(holds): whether
      the file gives C(celery_config_options) the value C(<module_name>.<dict_name>) as
      M(airflow_fleet.celery_config.airflow_celery_config_ini) would leave it, so that module has nothing to do."
  returned: always
  type: dict
module_dir_exists:
  description: Whether the module's folder exists.
  returned: always
  type: bool
paths:
  description:
    - The files the role edits. C(real) maps each of C(cfg_path), C(module_dir), C(module) (the module file),
      C(dropin), C(dropin_dir) and C(env_file) to its real path; C(links) lists the inputs that lead through a
      link, as C(input -> real path) lines; C(exists) says for each key of C(real) whether that path exists.
    - C(files), for C(module) and C(dropin), is what a write would compare, so the role skips one that has nothing
      to do, or null where no such regular file exists; C(sha1) of its content, and C(stat), its owner, group and
      mode as in C(root:airflow 0640).
  returned: always
  type: dict
default_config_module:
  description: The module holding C(DEFAULT_CELERY_CONFIG).
  returned: always
  type: str
db_idle_timeout:
  description: The server's idle timeout (backend, variable, seconds) or the problem that stopped the read.
  returned: with install.read_idle_timeout
  type: dict
fitted_pool_recycle:
  description:
    - The pool_recycle chosen below the server's idle timeout, or null where the configured one stays.
    - Only this, not the settings, since Ansible masks a returned credential, which the role would then write.
  returned: always
  type: int
recycle_report:
  description: One line on the server's idle timeout and the pool_recycle chosen.
  returned: always
  type: str
digest:
  description: Names the managed settings; the module puts it in the worker's Celery config.
  returned: always
  type: str
digest_key:
  description: The key of the worker's Celery config that carries the digest.
  returned: always
  type: str
drain_note:
  description:
    - Whether a drain's note lies on the host for this unit, naming queues that a drain cut short left cancelled
      (M(airflow_fleet.celery_config.airflow_celery_config_drain) gives them back).
  returned: always
  type: bool
now:
  description:
    - What M(airflow_fleet.celery_config.airflow_celery_config_check) would return, read from the same import of
      Airflow with the settings fitted as the return value C(digest) names them, while the files are as they are (null if that read failed).
    - Its C(after_module_write) is the same read predicted for the Celery config module holding these settings,
      with nothing else changed, or null where the app does not take the module's dict as it stands (a team
      worker, another module named, a setting of the dict the app does not hold, or an airflow.cfg option merged
      over it).
    - Pass it back as that module's C(reuse) option, with the files the run changed.
  returned: always
  type: dict
"""

import grp
import inspect
import os
import time

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils import airflow_celery_config_settings as shared_settings
    from ansible.module_utils.airflow_celery_config_drain import NOTE_DIR, note_path
    from ansible.module_utils.airflow_celery_config_ini import IniError, read_options, set_option
    from ansible.module_utils.airflow_celery_config_safety import UnsafePath, path_facts
    from ansible.module_utils.airflow_celery_config_settings import DIGEST_KEY, digest, fit_pool_recycle
    from ansible.module_utils.airflow_celery_config_unit import start_time
    from ansible.module_utils.airflow_celery_config_worker import DEFAULT_CONFIG_MODULES, INSTALL_SPEC, SHADOW_VARIABLE, Worker
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils import airflow_celery_config_settings as shared_settings
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_drain import NOTE_DIR, note_path
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_ini import IniError, read_options, set_option
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_safety import UnsafePath, path_facts
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_settings import (
        DIGEST_KEY, digest, fit_pool_recycle)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_unit import start_time
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_worker import (
        DEFAULT_CONFIG_MODULES, INSTALL_SPEC, SHADOW_VARIABLE, Worker)

ARGUMENT_SPEC = dict(install=INSTALL_SPEC)
# Seconds after its start within which a worker that does not answer yet may still be starting.
WORKER_START_GRACE = 30
# Seconds to wait for a silent worker before its node name is called wrong. A worker that lost
# its broker retries on Celery's back-off, up to 30 s apart, so after a broker outage it can stay
# silent that long while workers that kept their connection answer at once.
RECONNECT_WAIT = 35


def readable_by(user, path):
    """Whether `user` may read `path` by its mode bits (the module itself runs as root)."""
    st = os.stat(path)
    if user.pw_uid == 0:
        return True
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & 0o400)
    if st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(st.st_mode & 0o040)
    return bool(st.st_mode & 0o004)


def cfg_facts(module, path, wanted):
    """airflow.cfg as Airflow reads it: the value of [celery] celery_config_options, the options
    set on more than one line, which Airflow refuses, and whether the option holds `wanted`."""
    facts = {"exists": os.path.isfile(path), "value": None, "duplicates": [], "holds": False}
    if not facts["exists"]:
        return facts
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        module.fail_json(msg="airflow_celery_config_cfg_path: cannot read %s: %s" % (path, exc))
    found = read_options(text)
    # ConfigParser keeps the last of repeated lines; a file with any fails below anyway.
    facts["value"] = found.get(("celery", "celery_config_options"), [(None, None)])[-1][1]
    facts["duplicates"] = ["[%s] %s on lines %s" % (section, option, ", ".join(str(number) for number, _value in lines))
                           for (section, option), lines in sorted(found.items()) if len(lines) > 1]
    try:
        facts["holds"] = set_option(text, "celery", "celery_config_options", wanted)[1] == "unchanged"
    except IniError:
        pass  # The ini module names the problem.
    return facts


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params["install"]
    worker = Worker(module, p)
    user = worker.user
    result = worker.result()
    cfg = cfg_facts(module, p["cfg_path"], "%s.%s" % (p["module_name"], p["dict_name"]))
    if not cfg["exists"]:
        module.fail_json(msg="airflow_celery_config_cfg_path: %s does not exist" % p["cfg_path"])
    if not readable_by(user, p["cfg_path"]):
        module.fail_json(msg="airflow_celery_config_cfg_path: %s is not readable by %s, the user the unit %s "
                             "runs as, so the worker cannot read it either: fix its owner or mode first"
                             % (p["cfg_path"], user.pw_name, p["service"]))
    if cfg["duplicates"]:
        module.fail_json(msg="airflow_celery_config_cfg_path: %s repeats options, which Airflow refuses "
                             "to start with; remove the extra lines first: %s"
                             % (p["cfg_path"], "; ".join(cfg["duplicates"])))
    result["cfg"] = cfg
    result["module_dir_exists"] = os.path.isdir(p["module_dir"])
    # Before the worker's Python imports anything from those folders.
    env_source = result["config_options_from_env"] or {}
    try:
        result["paths"] = path_facts(user, grp.getgrnam(result["service_group"]), p["cfg_path"], p["module_dir"],
                                     p["module_name"], p["dropin_path"], env_source.get("file") if p["manage_env"] else None)
    except KeyError as exc:
        module.fail_json(msg="the worker unit's group does not exist: %s" % exc)
    except UnsafePath as exc:
        module.fail_json(msg=str(exc))
    result["drain_note"] = os.path.exists(note_path(NOTE_DIR, p["service"]))
    # The child fits and names the settings with the same code as this module, to read
    # ahead what the check would (RV(now)).
    result.update(worker.ask("facts", settings_code=inspect.getsource(shared_settings)))
    taken = result.get("module_name_taken_by")
    if taken and os.path.dirname(os.path.realpath(taken)) != os.path.realpath(p["module_dir"]):
        module.fail_json(msg="airflow_celery_config_module_name: %r is already importable from %s; "
                             "pick a name no installed module uses" % (p["module_name"], taken))
    if not result.get("default_config_module"):
        module.fail_json(msg="no module with DEFAULT_CELERY_CONFIG found for Airflow %s (tried %s): "
                             "install the celery provider in %s"
                             % (result["versions"]["airflow"], ", ".join(DEFAULT_CONFIG_MODULES), p["python"]))
    if result.get("setting_errors"):
        errors = result["setting_errors"]
        hint = ("; names of Celery extensions can be allowed with airflow_celery_config_extra_setting_names"
                if any("is not a setting of Celery" in error for error in errors) else "")
        module.fail_json(msg="airflow_celery_config_settings: %s%s" % ("; ".join(errors), hint))
    settings, result["recycle_report"] = fit_pool_recycle(
        p["settings"], result.get("db_idle_timeout"), p["read_idle_timeout"])
    recycle = (settings.get("database_engine_options") or {}).get("pool_recycle")
    configured = (p["settings"].get("database_engine_options") or {}).get("pool_recycle")
    result["fitted_pool_recycle"] = recycle if recycle != configured else None
    result["digest"] = digest(settings)
    result["digest_key"] = DIGEST_KEY
    live = result.get("live") or {}
    started = start_time(worker.props.get("ExecMainStartTimestampMonotonic"))
    # Other workers answer, this one does not, though it has had time to start: its name is
    # wrong, unless it answers within one reconnect back-off.
    # (A worker whose config turns remote control off never answers: nothing to tell from its silence.)
    remote_control = (result.get("now") or {}).get("remote_control", True)
    if (live.get("others") and not live["answered"] and remote_control and started
            and time.time() - started > WORKER_START_GRACE):
        pinged = worker.ask("ping", timeout=RECONNECT_WAIT).get("live") or {}
        if not pinged.get("answered"):
            module.fail_json(msg="airflow_celery_config_node_name: no worker answers as %s within %d s, though the "
                                 "unit %s is active and the broker carries answers from %s: set it to the name "
                                 "this host's worker runs as (its --celery-hostname; empty means celery@<hostname>); "
                                 "if it already is, the worker takes no messages from the broker: see its journal"
                                 % (live["node"], RECONNECT_WAIT, p["service"], ", ".join(live["others"])))
        result["live"] = pinged
        for read in (result.get("now") or {}, (result.get("now") or {}).get("after_module_write") or {}):
            if read:
                read["live"] = pinged
    problem = (result.get("db_idle_timeout") or {}).get("problem")
    if problem:
        # The configured pool_recycle still applies: a rollout must not stop here.
        module.warn("airflow_celery_config_fit_pool_recycle: %s; pool_recycle stays as configured" % problem)
    shadow = (result["config_options_from_env"] or {}).get("value")
    wanted = "%s.%s" % (p["module_name"], p["dict_name"])
    if shadow and shadow != wanted and not p["manage_env"]:
        module.fail_json(msg="%s=%s in %s shadows [celery] celery_config_options in airflow.cfg: "
                             "remove it from the unit, set it to %s, or let the role set it with "
                             "airflow_celery_config_manage_env: true"
                             % (SHADOW_VARIABLE, shadow, result["config_options_from_env"]["origin"], wanted))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
