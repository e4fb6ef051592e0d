#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read-only probe of one Airflow Celery worker install, for the airflow_celery_config role."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_probe
short_description: Read what an Airflow Celery worker runs with, without changing anything
description:
  - Runs the worker's own Python as the worker unit's user, with the unit's environment,
    and reports what that interpreter sees.
  - O(mode=facts) reports versions, the module holding C(DEFAULT_CELERY_CONFIG), the unit's
    environment and airflow.cfg facts.
  - O(mode=effective) builds the worker's Celery app exactly as C(airflow celery worker) does (with
    C(--team NAME) in the unit's ExecStart: the provider's C(create_celery_app(ExecutorConf(team_name=NAME))))
    and compares every managed setting with its intended value.
  - O(mode=effective) also reports the airflow.cfg JSON options the provider could take the settings
    from instead (RV(fallbacks), in the section the worker reads, RV(cfg_section)) and which one
    carries them (RV(applied_via)).
  - O(mode=ping) waits until the unit is active and its worker answers a Celery ping.
  - O(mode=facts) and O(mode=effective) also ask the running worker, over its own broker, for the
    digest of the managed settings it started with (Celery's C(inspect conf)); O(mode=effective)
    decides from it, or from the process start time and the config files' times, whether the
    running worker needs a restart (RV(restart_reason)).
  - Never changes anything; safe in check mode.
options:
  mode: {type: str, required: true, choices: [facts, effective, ping]}
  strict:
    type: bool
    default: true
    description:
      - Fail on a mismatch (O(mode=effective)) or a worker that does not answer (O(mode=ping)).
      - Otherwise only report it, in RV(mismatch_reasons) or RV(problem).
  warn_restart:
    type: bool
    default: false
    description:
      - With O(mode=effective), warn when the worker needs a restart and runs tasks that the stop may cut.
      - False where the run will not restart it (check mode, or the role variable C(airflow_celery_config_restart) false).
  reuse:
    type: dict
    description:
      - With O(mode=effective), the RV(now) of this run's O(mode=facts) call, used instead of building
        the app again when its digest is O(install.digest). Give it only when nothing the worker reads
        was written since that call (or in check mode, where nothing is written).
  install:
    type: dict
    required: true
    description: The worker install, as the role's inputs name it.
    suboptions:
      python: {type: path, required: true, description: The worker venv's interpreter.}
      airflow_home: {type: path, required: true}
      cfg_path: {type: path, required: true}
      service: {type: str, required: true, description: The worker's systemd unit.}
      module_dir: {type: path, required: true}
      module_name: {type: str, required: true}
      dict_name: {type: str, required: true}
      settings: {type: dict, default: {}, description: Managed Celery settings and their intended values.}
      node_name: {type: str, default: '', description: Celery node name to ping; empty means celery@<hostname>.}
      timeout: {type: int, default: 120, description: Seconds O(mode=ping) waits.}
      extra_setting_names: {type: list, elements: str, default: [], description: Setting names to accept beyond Celery's own.}
      manage_env: {type: bool, default: false, description: Accept a unit environment that sets celery_config_options; the role then rewrites it.}
      read_idle_timeout:
        type: bool
        default: false
        description:
          - With O(mode=facts), connect to the result-backend database as the worker would and report
            the server's idle timeout in RV(db_idle_timeout); a database it cannot read gives a warning, not a failure.
          - RV(settings) then has pool_recycle fitted below that timeout.
      dropin_path: {type: path, description: The role's drop-in of the unit; its time counts as a config change.}
      digest: {type: str, default: '', description: "RV(digest) of O(mode=facts): what O(mode=effective) and O(mode=ping) expect the worker to run."}
      stop_timeout: {type: int, default: 0, description: Seconds a stop waits for running tasks; named in the warning about them.}
author: airflow_celery_config contributors
"""

EXAMPLES = r"""
- name: Read the worker's install and fit the settings
  airflow_celery_config_probe:
    mode: facts
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
  register: probe
"""

RETURN = r"""
versions: {description: airflow, celery and celery_provider versions in the worker's venv., returned: always, type: dict}
default_config_module: {description: The module holding DEFAULT_CELERY_CONFIG., returned: mode=facts, type: str}
fitted_pool_recycle: {description: "The pool_recycle chosen below the server's idle timeout, or null where the configured one stays. Only this, not the settings: Ansible masks a returned credential, which the role would then write.", returned: mode=facts, type: int}
recycle_report: {description: One line on the server's idle timeout and the pool_recycle chosen., returned: mode=facts, type: str}
digest: {description: Names the managed settings; the module puts it in the worker's Celery config., returned: mode=facts, type: str}
now:
  description:
    - What O(mode=effective) would return, read from the same import of Airflow with the settings fitted
      as RV(digest) names them, while the files are as they are (null if that read failed).
    - Pass it back as O(reuse) when the run writes nothing.
  returned: mode=facts, when the settings passed
  type: dict
reused: {description: Whether O(reuse) answered instead of a new read., returned: mode=effective, type: bool}
live:
  description: The running worker's answer to C(inspect conf) (node, answered, digest; others that answer when it does not).
  returned: when the unit is active
  type: dict
mismatch_reasons: {description: Why the worker's app would not run the managed settings., returned: mode=effective, type: list}
fallbacks:
  description: >-
    The airflow.cfg JSON options that could carry the settings, best first: option, holds (the one
    setting it carries, or null for all), covers, in_effect and its current value.
  returned: mode=effective
  type: list
applied_via: {description: The airflow.cfg option that carries the settings to the worker's app., returned: mode=effective, type: str}
restart_reason: {description: Why the running worker needs a restart to run them, or null., returned: mode=effective, type: str}
answered: {description: The restarted worker answered a ping, with this run's digest where it carries one., returned: mode=ping, type: bool}
problem: {description: Why it did not., returned: mode=ping, type: str}
"""

import grp
import inspect
import json
import keyword
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils import airflow_celery_config_settings as shared_settings
    from ansible.module_utils.airflow_celery_config_settings import DIGEST_KEY, digest, fit_pool_recycle, restart_reason
    from ansible.module_utils.airflow_celery_config_safety import SECRET_PATTERN, secret_names, secret_values
    from ansible.module_utils.airflow_celery_config_unit import (
        UnitError, newest_mtime, run_python, start_time, systemd_unit, unit_user, worker_process_env, worker_team,
        working_directory)
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils import airflow_celery_config_settings as shared_settings
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_settings import DIGEST_KEY, digest, fit_pool_recycle, restart_reason
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_safety import SECRET_PATTERN, secret_names, secret_values
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_unit import (
        UnitError, newest_mtime, run_python, start_time, systemd_unit, unit_user, worker_process_env, worker_team,
        working_directory)

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
# Seconds after its start within which a worker that does not answer yet may still be starting.
WORKER_START_GRACE = 30

# Runs inside the worker's interpreter (Python 3.8+), as the unit's user, with the unit's
# environment. It reads a JSON request on stdin and prints one JSON answer.
CHILD = r'''
import importlib, json, platform, re, socket, sys, time
# `python -c` puts the working directory first on sys.path, where the airflow script the
# worker runs does not: a folder named "airflow" there (AIRFLOW_HOME!) would pass for Airflow.
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
req = json.load(sys.stdin)
out = {"python_version": platform.python_version(), "hostname": socket.gethostname()}

def dist_version(name):
    try:
        from importlib.metadata import version
    except ImportError:
        import pkg_resources
        return pkg_resources.get_distribution(name).version
    try:
        return version(name)
    except Exception:
        return None

def team_conf():
    """The config the worker's Celery settings are read from: with `--team NAME`, the team's
    (env AIRFLOW__NAME___CELERY__*, then airflow.cfg [NAME=celery], then the defaults: NOT [celery])."""
    from airflow.configuration import conf
    if not req["team"]:
        return conf
    from airflow.executors.base_executor import ExecutorConf
    return ExecutorConf(team_name=req["team"])

def app():
    errors = []
    for path in req["app_modules"]:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            errors.append("%s: %s" % (path, exc))
            continue
        if not req["team"]:
            return module.app, path
        # `airflow celery worker --team NAME` never uses the module-level app: the provider's
        # cli/celery_command.py builds one from the team's config (provider 3.16+, Airflow 3.2+).
        utils = importlib.import_module(path + "_utils")
        if not hasattr(utils, "create_celery_app"):
            raise RuntimeError("the worker unit runs `--team %s`, but celery provider %s has no multi-team "
                               "worker" % (req["team"], dist_version("apache-airflow-providers-celery")))
        return (utils.create_celery_app(team_conf()),
                "%s_utils.create_celery_app(ExecutorConf(team_name=%r))" % (path, req["team"]))
    raise RuntimeError("no Celery app module: " + "; ".join(errors))

def version_tuple(text):
    return tuple(int(part) for part in re.findall(r"\d+", text or "")[:3])

def fallbacks(settings, mismatches, wanted_digest):
    """The JSON options of airflow.cfg that can carry the managed settings where
    celery_config_options does not reach the worker's app, best first: its current value, the
    one managed setting it holds (None: all of them), whether it covers every mismatching
    setting, and whether it carries them already. The value to write is merged by the role from
    its own settings: Ansible masks credentials in a module's result, and a merged value sent
    back from here would carry the mask into airflow.cfg."""
    provider = dist_version("apache-airflow-providers-celery")
    try:
        from airflow.providers.celery.get_provider_info import get_provider_info
        known = get_provider_info().get("config", {}).get("celery", {}).get("options", {})
    except Exception:
        known = {}
    out = []
    # (option, provider version that reads it, the one setting it holds or None for all)
    for option, since, holds in (("extra_celery_config", (3, 10, 0), None),
                                 ("result_backend_sqlalchemy_engine_options", (3, 3, 0), "database_engine_options")):
        if not provider or version_tuple(provider) < since or option not in known:
            continue
        try:
            current = team_conf().getjson("celery", option, fallback={}) or {}
        except Exception:
            continue
        if not isinstance(current, dict):
            continue
        # extra_celery_config carries the digest too, so the live worker can be asked for it.
        part = dict(settings, **{req["digest_key"]: wanted_digest}) if holds is None else settings.get(holds, {})
        covers = holds is None or set(mismatches) <= {holds}
        if holds is not None and holds not in settings:
            continue
        out.append({"option": option, "holds": holds, "covers": covers,
                    "in_effect": covers and contains(current, part), "current": current})
    return out

def contains(actual, wanted):
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in wanted.items())
    if isinstance(wanted, list) and isinstance(actual, (list, tuple)):
        return len(actual) == len(wanted) and all(contains(a, w) for a, w in zip(actual, wanted))
    return actual == wanted

SECRET = re.compile(req["secret_pattern"], re.IGNORECASE)

def plain(value):
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)

# JSON types each Celery option type accepts; None is always accepted (Celery's "unset").
CELERY_TYPES = {"string": (str,), "str": (str,), "bool": (bool,), "int": (int,), "float": (int, float),
                "dict": (dict,), "list": (list,), "tuple": (list,)}
# SQLAlchemy engine options the role's defaults and their usual companions use.
ENGINE_OPTION_TYPES = {"pool_pre_ping": (bool,), "pool_recycle": (int,), "pool_size": (int,),
                       "max_overflow": (int,), "pool_timeout": (int, float), "pool_use_lifo": (bool,),
                       "echo": (bool,)}

def type_error(name, value, types):
    if value is None or (isinstance(value, types) and not (isinstance(value, bool) and bool not in types)):
        return None
    return "%s is %s, but Celery wants %s" % (
        name, json.dumps(value), " or ".join(t.__name__ for t in types))

def setting_errors(settings, default_config):
    import difflib
    from celery.app.defaults import NAMESPACES, flatten
    options = dict(flatten(NAMESPACES))
    known = set(options) | set(default_config) | set(req["extra_setting_names"])
    errors = []
    for name, value in sorted(settings.items()):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            errors.append("%s is not a setting of Celery %s%s" % (
                name, dist_version("celery"), " (did you mean %s?)" % ", ".join(close) if close else ""))
            continue
        types = CELERY_TYPES.get(getattr(options.get(name), "type", None))
        problem = types and type_error(name, value, types)
        if problem:
            errors.append(problem)
        if name == "database_engine_options" and isinstance(value, dict):
            for key, item in sorted(value.items()):
                problem = key in ENGINE_OPTION_TYPES and type_error(
                    "database_engine_options.%s" % key, item, ENGINE_OPTION_TYPES[key])
                if problem:
                    errors.append(problem)
    return errors

# Seconds of connect timeout for the idle-timeout read: long enough for a remote server,
# short enough that an unreachable one costs a rollout little.
CONNECT_TIMEOUT = 5
# The server variable that closes idle connections, by SQLAlchemy backend, and how to read
# it as the worker's own connection sees it (per-user/per-database settings included).
# pg_settings gives idle_session_timeout in ms whatever unit it was set in, and no row
# before PostgreSQL 14, which has no such timeout.
IDLE_TIMEOUT_QUERIES = {
    "mysql": ("wait_timeout", "SELECT @@wait_timeout", 1),
    "mariadb": ("wait_timeout", "SELECT @@wait_timeout", 1),
    "postgresql": ("idle_session_timeout",
                   "SELECT setting FROM pg_settings WHERE name = 'idle_session_timeout'", 1000),
}

def db_idle_timeout():
    """The result-backend database's idle timeout in seconds (0: off), read the way the
    worker reaches it, or the problem that stopped the read. Never the URL: it holds a password."""
    secrets = []
    try:
        from airflow.configuration import conf as airflow_conf
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine.url import make_url
        from sqlalchemy.pool import NullPool
        # As the provider (and Airflow before it) does: the metadata database stands in for an
        # unset result_backend; it sits in [core] before Airflow 2.3.
        url = (airflow_conf.get("celery", "result_backend", fallback=None)
               or airflow_conf.get("database", "sql_alchemy_conn", fallback=None)
               or airflow_conf.get("core", "sql_alchemy_conn", fallback=None))
        if not url:
            return {"problem": "no [celery] result_backend or sql_alchemy_conn is set"}
        parsed = make_url(url[3:] if url.startswith("db+") else url)
        secrets = [str(parsed.password)] if parsed.password else []
        backend = parsed.get_backend_name()
        if backend not in IDLE_TIMEOUT_QUERIES:
            return {"backend": backend, "problem": "the result backend is %s, not MySQL/MariaDB or PostgreSQL" % backend}
        variable, query, per_second = IDLE_TIMEOUT_QUERIES[backend]
        engine = create_engine(parsed, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT})
        try:
            with engine.connect() as connection:
                value = int(connection.execute(text(query)).scalar() or 0)
        finally:
            engine.dispose()
    except Exception as exc:
        message = "%s: %s" % (type(exc).__name__, (str(exc).strip().splitlines() or [""])[0][:300])
        for secret in secrets:
            message = message.replace(secret, "********")
        return {"problem": "cannot read the server's idle timeout (%s)" % message}
    # A timeout under a second still needs a pool_recycle of at least 1: report 1, not "off".
    return {"backend": backend, "variable": variable,
            "seconds": max(1, value // per_second) if value > 0 else 0}

def broker(celery_app):
    """A connection to the worker's broker, or an error at once: Celery's remote control
    otherwise retries a broker that is down for as long as it takes."""
    connection = celery_app.connection_for_write()
    connection.ensure_connection(max_retries=1)
    return connection

def live_worker(node):
    """What the running worker answers over its broker: whether it answers as `node`, and the
    digest in the config it started with (inspect conf, the worker's own memory). Where it
    does not answer, the nodes that do tell a wrong node name from a silent broker."""
    out = {"node": node, "answered": False, "digest": None, "others": []}
    try:
        celery_app = app()[0]
        with broker(celery_app) as connection:
            control = celery_app.control

            def ask(command):
                return getattr(control.inspect(destination=[node], timeout=req["live_timeout"],
                                               connection=connection), command)() or {}
            replies = ask("conf")
            if node not in replies:
                # A worker that is still starting answers a moment later: ask once more if it
                # is among those that answer a ping at all.
                out["others"] = sorted(name for reply in control.ping(timeout=1.0, connection=connection) or []
                                       for name in reply)
                if node in out["others"]:
                    out["others"] = []
                    replies = ask("conf")
            if node in replies:
                out.update(answered=True, digest=(replies[node] or {}).get(req["digest_key"]))
                out["active"] = ["%s[%s]" % (task.get("name"), task.get("id")) for task in ask("active").get(node) or []]
    except Exception as exc:
        out["problem"] = "%s: %s" % (type(exc).__name__, (str(exc).strip().splitlines() or [""])[0][:200])
    return out

def read_effective(settings, wanted_digest):
    """The managed settings as the worker's Celery app holds them, compared with `settings`."""
    out = {}
    celery_app, out["app_module"] = app()
    out["cfg_section"] = req["team"] + "=celery" if req["team"] else "celery"
    conf = celery_app.conf
    # The stale-connection settings are always reported, managed or not.
    keys = set(settings) | {"database_engine_options", "database_short_lived_sessions"}
    # Broker and backend URLs carry passwords: compared, never reported.
    out["effective"] = {key: "********" if SECRET.search(key) and conf.get(key) else plain(conf.get(key))
                        for key in sorted(keys)}
    out["mismatches"] = sorted(key for key, value in settings.items() if not contains(conf.get(key), value))
    out["config_options"] = team_conf().get("celery", "celery_config_options", fallback=None)
    out["fallbacks"] = fallbacks(settings, out["mismatches"], wanted_digest)
    out["app_digest"] = conf.get(req["digest_key"])
    out["acks_late"] = bool(conf.get("task_acks_late"))
    out["visibility_timeout"] = (conf.get("broker_transport_options") or {}).get("visibility_timeout")
    return out

out["versions"] = {"airflow": dist_version("apache-airflow"), "celery": dist_version("celery"),
                   "celery_provider": dist_version("apache-airflow-providers-celery")}
mode = req["mode"]
if mode == "facts":
    # Look for an installed module of the same name before Airflow puts its config
    # folder on sys.path: such a module would win the import, or be shadowed by ours.
    import importlib.util
    spec = importlib.util.find_spec(req["module_name"])
    out["module_name_taken_by"] = spec.origin if spec is not None else None
    import airflow
    out["default_config_module"] = None
    for path in req["default_config_modules"]:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError:
            continue
        if hasattr(module, "DEFAULT_CELERY_CONFIG"):
            out["default_config_module"] = path
            out["setting_errors"] = setting_errors(req["settings"], module.DEFAULT_CELERY_CONFIG)
            break
    # Only for input that passed: a host failing on its input need not wait for a database.
    if req["read_idle_timeout"] and out["default_config_module"] and not out["setting_errors"]:
        out["db_idle_timeout"] = db_idle_timeout()
    if req["worker_active"] and out["default_config_module"] and not out["setting_errors"]:
        out["live"] = live_worker(req["node_name"] or "celery@" + out["hostname"])
    # What mode=effective would read if the run writes nothing, from this same import: the
    # settings fitted and named by the role's own code (module_utils, sent in the request).
    if out["default_config_module"] and not out["setting_errors"]:
        try:
            shared = {}
            exec(compile(req["settings_code"], "airflow_celery_config_settings.py", "exec"), shared)
            fitted = shared["fit_pool_recycle"](req["settings"], out.get("db_idle_timeout"), req["read_idle_timeout"])[0]
            fitted_digest = shared["digest"](fitted)
            now = read_effective(fitted, fitted_digest)
            now.update(digest=fitted_digest, versions=out["versions"], hostname=out["hostname"],
                       python_version=out["python_version"])
            if "live" in out:
                now["live"] = out["live"]
            out["now"] = now
        except Exception:
            # mode=effective reads it again and reports what fails.
            out["now"] = None
elif mode == "effective":
    out.update(read_effective(req["settings"], req["digest"]))
    if req["worker_active"]:
        out["live"] = live_worker(req["node_name"] or "celery@" + out["hostname"])
elif mode == "ping":
    celery_app, _ = app()
    node = req["node_name"] or "celery@" + out["hostname"]
    out["node_name"] = node
    deadline = time.time() + req["timeout"]
    replies = []
    while time.time() < deadline and not replies:
        try:
            with broker(celery_app) as connection:
                replies = celery_app.control.ping(destination=[node], timeout=2.0, connection=connection)
        except Exception as exc:
            out["broker_problem"] = "%s: %s" % (type(exc).__name__, (str(exc).strip().splitlines() or [""])[0][:200])
            time.sleep(1)
    out["replies"] = plain(replies)
    if replies:
        out["live"] = live_worker(node)
print("\n" + json.dumps(out))
'''


def run_child(module, python, request, user, env, cwd):
    answer, problem = run_python(python, CHILD, request, user, env, cwd, request.get("timeout", 60) + 120)
    if answer is None:
        module.fail_json(
            msg="airflow_celery_config_python: %s (as user %s, AIRFLOW_HOME=%s) could not %s. %s"
                % (python, user.pw_name, env.get("AIRFLOW_HOME"),
                   {"facts": "import Airflow", "effective": "load the worker's Celery app",
                    "ping": "ping the worker"}[request["mode"]], problem))
    return answer


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


def readable_by(user, path):
    """Whether `user` may read `path` by its mode bits (the probe itself runs as root)."""
    st = os.stat(path)
    if user.pw_uid == 0:
        return True
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & 0o400)
    if st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return bool(st.st_mode & 0o040)
    return bool(st.st_mode & 0o004)


def cfg_facts(module, path):
    """airflow.cfg as the role will edit it: value, repeated options, owner and mode."""
    facts = {"exists": os.path.isfile(path), "value": None, "duplicates": []}
    if not facts["exists"]:
        return facts
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        module.fail_json(msg="airflow_celery_config_cfg_path: cannot read %s: %s" % (path, exc))
    section, seen = None, {}
    for number, line in enumerate(lines, 1):
        match = re.match(r"\s*\[([^\]]+)\]", line)
        if match:
            section = match.group(1).strip().lower()
            continue
        match = re.match(r"([^#;\s][^=:]*?)\s*[=:]\s*(.*)$", line)
        if not match or section is None:
            continue
        option = match.group(1).strip().lower()
        seen.setdefault((section, option), []).append(number)
        if (section, option) == ("celery", "celery_config_options"):
            facts["value"] = match.group(2).strip()
    facts["duplicates"] = ["[%s] %s on lines %s" % (s, o, ", ".join(map(str, n)))
                           for (s, o), n in sorted(seen.items()) if len(n) > 1]
    return facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type="str", required=True, choices=["facts", "effective", "ping"]),
            strict=dict(type="bool", default=True),
            warn_restart=dict(type="bool", default=False),
            reuse=dict(type="dict", default=None),
            install=dict(type="dict", required=True, options=dict(
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
            )),
        ),
        supports_check_mode=True,
    )
    p = dict(module.params["install"], mode=module.params["mode"], strict=module.params["strict"])
    # Before anything can fail: values of settings named like credentials never reach the
    # output (invocation, results, failure messages), whatever mode or verbosity.
    module.no_log_values.update(secret_values(p["settings"]))
    for name in ("module_name", "dict_name"):
        if not p[name].isidentifier() or keyword.iskeyword(p[name]):
            module.fail_json(msg="airflow_celery_config_%s: %r is not a Python identifier"
                             % (name, p[name]))
    if not os.path.isdir(p["airflow_home"]):
        module.fail_json(msg="airflow_celery_config_airflow_home: %s is not a directory" % p["airflow_home"])
    if not (os.path.isfile(p["python"]) and os.access(p["python"], os.X_OK)):
        module.fail_json(msg="airflow_celery_config_python: %s is not an executable file" % p["python"])

    try:
        props, unit_env, origin, env_files = systemd_unit(module, p["service"])
        user = unit_user(props, p["service"])
    except UnitError as exc:
        module.fail_json(msg=str(exc))
    unit_home = unit_env.get("AIRFLOW_HOME", os.path.join(user.pw_dir, "airflow"))
    if os.path.realpath(unit_home) != os.path.realpath(p["airflow_home"]):
        module.fail_json(
            msg="airflow_celery_config_airflow_home is %s but the unit %s runs with AIRFLOW_HOME=%s (%s): "
                "point the input at the unit's AIRFLOW_HOME"
                % (p["airflow_home"], p["service"], unit_home,
                   origin.get("AIRFLOW_HOME", "the default ~%s/airflow" % user.pw_name)))
    env = worker_process_env(user, unit_env, unit_home)
    cwd = working_directory(props, user)

    team = worker_team(props["ExecStart"])
    result = dict(changed=False, check_mode=module.check_mode, service_user=user.pw_name,
                  service_group=props.get("Group") or grp.getgrgid(user.pw_gid).gr_name,
                  service_active=props.get("ActiveState"), team=team, secret_settings=secret_names(p["settings"]))
    shadow = unit_env.get(SHADOW_VARIABLE)
    result["config_options_from_env"] = {"value": shadow, "origin": origin.get(SHADOW_VARIABLE),
                                         "file": env_files.get(SHADOW_VARIABLE)} if shadow else None
    wanted = "%s.%s" % (p["module_name"], p["dict_name"])
    request = dict(mode=p["mode"], module_name=p["module_name"], settings=p["settings"],
                   node_name=p["node_name"], timeout=p["timeout"], extra_setting_names=p["extra_setting_names"],
                   read_idle_timeout=p["read_idle_timeout"], secret_pattern=SECRET_PATTERN,
                   default_config_modules=DEFAULT_CONFIG_MODULES, app_modules=APP_MODULES, team=team,
                   digest_key=DIGEST_KEY, digest=p["digest"], live_timeout=LIVE_TIMEOUT,
                   worker_active=props.get("ActiveState") == "active")

    if p["mode"] == "facts":
        cfg = cfg_facts(module, p["cfg_path"])
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
        # The child fits and names the settings with the same code as this module, to read
        # ahead what mode=effective would (RV(now)).
        request["settings_code"] = inspect.getsource(shared_settings)
        result.update(run_child(module, p["python"], request, user, env, cwd))
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
        started = start_time(props.get("ExecMainStartTimestampMonotonic"))
        # Other workers answer, this one does not, though it has had time to start: its name is wrong.
        if live.get("others") and not live["answered"] and started and time.time() - started > WORKER_START_GRACE:
            module.fail_json(msg="airflow_celery_config_node_name: no worker answers as %s, though the unit %s is "
                                 "active and the broker carries answers from %s: set it to the name this host's "
                                 "worker runs as (its --celery-hostname; empty means celery@<hostname>)"
                                 % (live["node"], p["service"], ", ".join(live["others"])))
        problem = (result.get("db_idle_timeout") or {}).get("problem")
        if problem:
            # The configured pool_recycle still applies: a rollout must not stop here.
            module.warn("airflow_celery_config_fit_pool_recycle: %s; pool_recycle stays as configured" % problem)
        if shadow and shadow != wanted and not p["manage_env"]:
            module.fail_json(msg="%s=%s in %s shadows [celery] celery_config_options in airflow.cfg: "
                                 "remove it from the unit, set it to %s, or let the role set it with "
                                 "airflow_celery_config_manage_env: true"
                                 % (SHADOW_VARIABLE, shadow, origin[SHADOW_VARIABLE], wanted))
    elif p["mode"] == "effective":
        reuse = module.params["reuse"] or {}
        if reuse.get("digest") and reuse["digest"] == p["digest"]:
            # Read by the facts probe of this run, from the same files: nothing was written since.
            result.update(reuse)
            result["reused"] = True
        else:
            result.update(run_child(module, p["python"], request, user, env, cwd))
            result["reused"] = False
        reasons = result["mismatch_reasons"] = []
        # Where the managed settings reach the worker's app: an option of airflow.cfg that
        # carries them all (written by the role's fallback) wins, as the provider merges it last.
        result["applied_via"] = next((item["option"] for item in result["fallbacks"] if item["in_effect"]),
                                     "celery_config_options")
        # result_backend_sqlalchemy_engine_options holds database_engine_options only: no digest.
        carries_digest = result["applied_via"] in ("celery_config_options", "extra_celery_config")
        watched = [os.path.join(p["module_dir"], p["module_name"] + ".py"), p["cfg_path"], p["dropin_path"],
                   env_files.get(SHADOW_VARIABLE)]
        result["worker"] = dict(active=props.get("ActiveState") == "active",
                                started_at=start_time(props.get("ExecMainStartTimestampMonotonic")),
                                config_changed_at=newest_mtime(watched))
        result["restart_reason"] = restart_reason(
            result["worker"]["active"], result.get("live") or {}, p["digest"] if carries_digest else None,
            result["worker"]["started_at"], result["worker"]["config_changed_at"])
        running = (result.get("live") or {}).get("active") or []
        if result["restart_reason"] and running and module.params["warn_restart"]:
            # systemd kills what is still running after TimeoutStopSec; an acks_late message that
            # was never acknowledged waits in the broker until its visibility timeout.
            module.warn("restarting %s waits up to %ss (airflow_celery_config_stop_timeout) for its %d running "
                        "task(s) %s; one still running then is killed%s" % (
                            result["live"]["node"], p["stop_timeout"], len(running), ", ".join(running[:5]),
                            ", and its message is delivered again only after the broker's visibility_timeout "
                            "(%ss)" % result["visibility_timeout"] if result["acks_late"] and result["visibility_timeout"]
                            else ""))
        if result["config_options"] != wanted and result["applied_via"] == "celery_config_options":
            source = result["config_options_from_env"]
            reasons.append("the worker reads celery_config_options=%s, not %s%s" % (
                result["config_options"], wanted,
                " (set by %s in %s)" % (SHADOW_VARIABLE, source["origin"]) if source else ""))
        for key in result["mismatches"]:
            masked = result["effective"][key] == "********"
            reasons.append("%s is %s, wanted %s" % (
                key, json.dumps(result["effective"][key], sort_keys=True),
                "another value" if masked else json.dumps(p["settings"][key], sort_keys=True)))
        if reasons and p["strict"]:
            module.fail_json(msg="the worker's Celery app (%s) does not run with the managed settings: %s"
                                 % (result["app_module"], "; ".join(reasons)), **result)
    else:
        started = time.time()
        deadline = started + p["timeout"]
        state = ""
        # `restart` returns once the new process runs: "inactive" or "failed" after that means
        # it exited (Airflow 2 workers can exit quietly, with status 0).
        while time.time() < deadline and state not in ("active", "failed", "inactive"):
            state = module.run_command(["systemctl", "is-active", p["service"]])[1].strip()
            time.sleep(0 if state == "active" else 1)
        if state == "active":
            request["timeout"] = max(1, int(deadline - time.time()))
            result.update(run_child(module, p["python"], request, user, env, cwd))
        result["answered"] = bool(result.get("replies"))
        live = result.get("live") or {}
        if result["answered"] and p["digest"] and live.get("answered") and live.get("digest") != p["digest"]:
            # It came back, but not on this run's config: as bad as not coming back.
            result["answered"] = False
            result["problem"] = "the restarted worker %s answers with settings %s, not %s" % (
                live["node"], live.get("digest") or "not given by this role", p["digest"])
        if not result["answered"] and "problem" not in result:
            state = module.run_command(["systemctl", "is-active", p["service"]])[1].strip()
            status = module.run_command(["systemctl", "show", p["service"], "--property=ExecMainStatus", "--value"])[1]
            result["problem"] = "the worker unit %s is %s (its last process exited with status %s) and %s did not " \
                "answer a Celery ping within %ss%s%s" % (
                    p["service"], state, status.strip() or "?", result.get("node_name", "its worker"),
                    p["timeout"], "; the broker did not answer either: " + result["broker_problem"]
                    if result.get("broker_problem") else "", journal_errors(module, p["service"], started - 5))
            if p["strict"]:
                module.fail_json(msg=result["problem"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
