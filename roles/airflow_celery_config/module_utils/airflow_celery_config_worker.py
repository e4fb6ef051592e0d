# -*- coding: utf-8 -*-
"""What the facts, check, ping and drain modules share: the `install` option they all take, the
worker as its unit runs it (user, environment, working directory, team), and running
module_utils/airflow_celery_config_child.py in the worker's interpreter. The record module
takes some of the `install` keys (INSTALL_OPTIONS) and reads the unit itself."""

from __future__ import annotations

import grp
import inspect
import keyword
import os

try:
    from ansible.module_utils import airflow_celery_config_child as child
    from ansible.module_utils.airflow_celery_config_safety import SECRET_PATTERN, secret_names, secret_values
    from ansible.module_utils.airflow_celery_config_settings import DIGEST_KEY
    from ansible.module_utils.airflow_celery_config_unit import (
        UnitError, run_python, systemd_unit, unit_user, worker_process_env, worker_team, working_directory)
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils import airflow_celery_config_child as child
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_safety import (
        SECRET_PATTERN, secret_names, secret_values)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_settings import DIGEST_KEY
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_unit import (
        UnitError, run_python, systemd_unit, unit_user, worker_process_env, worker_team, working_directory)

# Module paths of DEFAULT_CELERY_CONFIG and of the worker's Celery app, newest first.
DEFAULT_CONFIG_MODULES = (
    "airflow.providers.celery.executors.default_celery",
    "airflow.config_templates.default_celery",
)
APP_MODULES = (
    "airflow.providers.celery.executors.celery_executor",
    "airflow.executors.celery_executor",
)
SHADOW_VARIABLE = "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"
# Seconds the running worker has to answer `inspect conf`: its main process answers remote
# control between tasks' messages, within a broker round trip.
LIVE_TIMEOUT = 3

# The `install` option of the facts, check and ping modules (documented in the facts module):
# the role passes the same dict to all three.
INSTALL_OPTIONS = dict(
    python=dict(type="path", required=True),
    airflow_home=dict(type="path", required=True),
    cfg_path=dict(type="path", required=True),
    service=dict(type="str", required=True),
    module_dir=dict(type="path", required=True),
    module_name=dict(type="str", required=True),
    dict_name=dict(type="str", required=True),
    settings=dict(type="dict", default={}),
    node_name=dict(type="str", default=""),
    timeout=dict(type="int", default=120),
    extra_setting_names=dict(type="list", elements="str", default=[]),
    manage_env=dict(type="bool", default=False),
    read_idle_timeout=dict(type="bool", default=False),
    dropin_path=dict(type="path", default=None),
    digest=dict(type="str", default=""),
    stop_timeout=dict(type="int", default=0),
)
INSTALL_SPEC = dict(type="dict", required=True, options=INSTALL_OPTIONS)

# What the child was asked to do, for the message when it cannot.
JOBS = {"facts": "import Airflow", "check": "load the worker's Celery app", "ping": "ping the worker",
        "resume": "give the worker its queues back"}


class Worker(object):
    """The worker install `p` (the `install` option) as its unit runs it. Fails the module on
    input that does not name a worker, before anything else runs."""

    def __init__(self, module, p):
        self.module = module
        self.p = p
        # Before anything can fail: values of settings named like credentials never reach the
        # output (invocation, results, failure messages), whatever job or verbosity.
        module.no_log_values.update(secret_values(p["settings"]))
        for name in ("module_name", "dict_name"):
            if not p[name].isidentifier() or keyword.iskeyword(p[name]):
                module.fail_json(msg="airflow_celery_config_%s: %r is not a Python identifier" % (name, p[name]))
        if not os.path.isdir(p["airflow_home"]):
            module.fail_json(msg="airflow_celery_config_airflow_home: %s is not a directory" % p["airflow_home"])
        if not (os.path.isfile(p["python"]) and os.access(p["python"], os.X_OK)):
            module.fail_json(msg="airflow_celery_config_python: %s is not an executable file" % p["python"])
        try:
            self.props, unit_env, self.origin, self.env_files = systemd_unit(module, p["service"])
            self.user = unit_user(self.props, p["service"])
        except UnitError as exc:
            module.fail_json(msg=str(exc))
        home = unit_env.get("AIRFLOW_HOME", os.path.join(self.user.pw_dir, "airflow"))
        if os.path.realpath(home) != os.path.realpath(p["airflow_home"]):
            module.fail_json(
                msg="airflow_celery_config_airflow_home is %s but the unit %s runs with AIRFLOW_HOME=%s (%s): "
                    "point the input at the unit's AIRFLOW_HOME"
                    % (p["airflow_home"], p["service"], home,
                       self.origin.get("AIRFLOW_HOME", "the default ~%s/airflow" % self.user.pw_name)))
        self.unit_env = unit_env
        self.env = worker_process_env(self.user, unit_env, home)
        self.cwd = working_directory(self.props, self.user)
        self.team = worker_team(self.props["ExecStart"])
        self.active = self.props.get("ActiveState") == "active"

    def result(self):
        """What every job returns about the unit."""
        shadow = self.unit_env.get(SHADOW_VARIABLE)
        return dict(
            changed=False, check_mode=self.module.check_mode, service_user=self.user.pw_name,
            service_group=self.props.get("Group") or grp.getgrgid(self.user.pw_gid).gr_name,
            team=self.team,
            secret_settings=secret_names(self.p["settings"]),
            config_options_from_env={"value": shadow, "origin": self.origin.get(SHADOW_VARIABLE),
                                     "file": self.env_files.get(SHADOW_VARIABLE)} if shadow else None)

    def config_files(self):
        """The files whose change a running worker does not see until it restarts: the Celery
        config module, airflow.cfg, the role's drop-in and a unit EnvironmentFile that sets
        celery_config_options (None where there is none)."""
        p = self.p
        return [os.path.join(p["module_dir"], p["module_name"] + ".py"), p["cfg_path"], p["dropin_path"],
                self.env_files.get(SHADOW_VARIABLE)]

    def ask(self, job, meanwhile=None, **extra):
        """Run the child for `job` in the worker's interpreter and return its answer; fail the
        module with what the interpreter printed if it gives none. With `meanwhile` (ping only),
        a function, the child imports Airflow while it runs, then reads the line it returns;
        `meanwhile` gets a function that waits for the child's line halfway (run_python)."""
        p = self.p
        request = dict(mode=job, module_name=p["module_name"], dict_name=p["dict_name"], settings=p["settings"], node_name=p["node_name"],
                       timeout=p["timeout"], extra_setting_names=p["extra_setting_names"],
                       read_idle_timeout=p["read_idle_timeout"], secret_pattern=SECRET_PATTERN,
                       default_config_modules=DEFAULT_CONFIG_MODULES, app_modules=APP_MODULES, team=self.team,
                       digest_key=DIGEST_KEY, digest=p["digest"], live_timeout=LIVE_TIMEOUT,
                       worker_active=self.active)
        request.update(extra, wait=meanwhile is not None)
        answer, problem = run_python(p["python"], inspect.getsource(child), request, self.user, self.env, self.cwd,
                                     request["timeout"] + 120, meanwhile)
        if answer is None:
            self.module.fail_json(msg="airflow_celery_config_python: %s (as user %s, AIRFLOW_HOME=%s) could not %s. %s"
                                      % (p["python"], self.user.pw_name, self.env.get("AIRFLOW_HOME"), JOBS[job], problem))
        return answer
