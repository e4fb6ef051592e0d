# -*- coding: utf-8 -*-
"""Runs inside the worker's interpreter (Python 3.8+), as the unit's user, with the unit's
environment, where there is no Ansible: the facts, check and ping modules send this file's
source to `python -c` with a JSON request on stdin, and read the one JSON answer it prints
last. It imports Airflow and builds the worker's Celery app as `airflow celery worker` does."""

import importlib
import importlib.util
import json
import os
import re
import socket
import sys
import time

# The request, and the pattern of setting names whose values are never reported; set by main().
req = {}
SECRET_NAME = re.compile("^$")


def dist_version(name):
    from importlib.metadata import version
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


# The steps of Airflow 3's settings.initialize() that decide what the worker's Celery app is
# built from: the [core] values it keeps as settings, the config and plugins folders on
# sys.path (where the managed module lives), and airflow_local_settings, which may change both.
LIBRARY_STEPS = ("configure_vars", "prepare_syspath_for_config_and_plugins", "import_local_settings")


def load_airflow():
    """Imports Airflow as far as building the worker's Celery app needs. On Airflow 3 `import
    airflow` also sets up logging, the ORM, policy plugins and the secrets masker, which no
    Celery setting comes from and which cost about a quarter of a read's CPU (3.3.2): with
    _AIRFLOW__AS_LIBRARY set the import skips them, and only LIBRARY_STEPS run. Airflow 2.10
    and older (the switch came in 2.6, but saves little there) initialize in full."""
    if "airflow" in sys.modules:
        return
    if version_tuple(dist_version("apache-airflow")) < (3,):
        import airflow  # noqa: F401  (fails here, with its own words, if the venv has no Airflow)
        return
    before = os.environ.get("_AIRFLOW__AS_LIBRARY")
    os.environ["_AIRFLOW__AS_LIBRARY"] = "1"
    try:
        from airflow import settings
    finally:
        if before is None:
            del os.environ["_AIRFLOW__AS_LIBRARY"]
        else:
            os.environ["_AIRFLOW__AS_LIBRARY"] = before
    steps = [getattr(settings, name, None) for name in LIBRARY_STEPS]
    # An Airflow whose settings name these steps otherwise initializes in full.
    for step in steps if all(steps) else [settings.initialize]:
        step()


def app():
    load_airflow()
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
    """What is wrong with the managed settings, for this host's Celery and Airflow."""
    from celery.app.defaults import NAMESPACES, flatten
    return check_settings(settings, dict(flatten(NAMESPACES)), set(default_config) | set(req["extra_setting_names"]),
                          dist_version("celery"))


def check_settings(settings, options, also_known, celery_version):
    """Unknown names (with close matches) and values of the wrong type. `options` are Celery's
    own ({name: Option with .type}); `also_known` the names Airflow's default config and the
    operator add."""
    import difflib
    known = set(options) | set(also_known)
    errors = []
    for name, value in sorted(settings.items()):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            errors.append("%s is not a setting of Celery %s%s" % (
                name, celery_version, " (did you mean %s?)" % ", ".join(close) if close else ""))
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
        message = said(exc)
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
                # The queues it consumes, as a drain must give them back (an empty list: none).
                out["queues"] = [queue_definition(queue) for queue in ask("active_queues").get(node) or []]
    except Exception as exc:
        out["problem"] = said(exc, 200)
    return out


def queue_definition(queue):
    """What `add_consumer` needs to consume a queue again, from an `active_queues` row."""
    exchange = queue.get("exchange") or {}
    return {"name": queue.get("name"), "exchange": exchange.get("name"), "exchange_type": exchange.get("type"),
            "routing_key": queue.get("routing_key")}


def answered_by(node, replies, command):
    """Fail unless `node` is among the replies to a remote-control broadcast."""
    if not any(node in reply for reply in replies or []):
        raise RuntimeError("%s did not answer %s within %ss (is its remote control off?)"
                           % (node, command, req["live_timeout"]))


def drain_round(celery_app, connection, node, queues, wait, out):
    control = celery_app.control
    deadline = time.time() + wait
    for queue in queues:
        answered_by(node, control.cancel_consumer(queue["name"], destination=[node], reply=True,
                                                  timeout=req["live_timeout"], connection=connection),
                    "cancel_consumer")
    out["cancelled_at"] = time.time()
    while True:
        inspect = control.inspect(destination=[node], timeout=req["live_timeout"], connection=connection)
        active, reserved = inspect.active() or {}, inspect.reserved() or {}
        if node not in active:
            raise RuntimeError("%s did not answer inspect active within %ss" % (node, req["live_timeout"]))
        # Name, id and start only: a task's arguments may carry anything.
        out["active"] = [{key: task.get(key) for key in ("name", "id", "time_start")} for task in active[node]]
        out["reserved"] = [{key: task.get(key) for key in ("name", "id")} for task in reserved.get(node) or []]
        out["wall"], out["monotonic"] = time.time(), time.monotonic()
        if not (out["active"] or out["reserved"]) or time.time() >= deadline:
            return
        time.sleep(1)


def resume(out):
    """Give the worker back the queues in the request (`add_consumer`)."""
    node = out["node_name"] = req["node_name"] or "celery@" + out["hostname"]
    celery_app = app()[0]
    with broker(celery_app) as connection:
        resume_queues(celery_app, connection, node, req["queues"])


def resume_queues(celery_app, connection, node, queues):
    for queue in queues:
        answered_by(node, celery_app.control.add_consumer(
            queue["name"], exchange=queue.get("exchange"), exchange_type=queue.get("exchange_type") or "direct",
            routing_key=queue.get("routing_key"), destination=[node], reply=True,
            timeout=req["live_timeout"], connection=connection), "add_consumer")


def said(exc, limit=300):
    """An exception in one line, for a report."""
    return "%s: %s" % (type(exc).__name__, (str(exc).strip().splitlines() or [""])[0][:limit])


def read_effective(settings, wanted_digest):
    """The managed settings as the worker's Celery app holds them, compared with `settings`."""
    out = {}
    celery_app, out["app_module"] = app()
    out["cfg_section"] = req["team"] + "=celery" if req["team"] else "celery"
    out["config_options"] = team_conf().get("celery", "celery_config_options", fallback=None)
    out.update(compared(celery_app.conf.get, settings, wanted_digest))
    return out


def compared(get, settings, wanted_digest):
    """What a read reports of a Celery config, `get` giving its value of a setting."""
    out = {}
    # The stale-connection settings are always reported, managed or not.
    keys = set(settings) | {"database_engine_options", "database_short_lived_sessions"}
    # Broker and backend URLs carry passwords: compared, never reported.
    out["effective"] = {key: "********" if SECRET_NAME.search(key) and get(key) else plain(get(key))
                        for key in sorted(keys)}
    out["mismatches"] = sorted(key for key, value in settings.items() if not contains(get(key), value))
    out["fallbacks"] = fallbacks(settings, out["mismatches"], wanted_digest)
    out["acks_late"] = bool(get("task_acks_late"))
    out["visibility_timeout"] = (get("broker_transport_options") or {}).get("visibility_timeout")
    # The scheme only: the URL holds a password.
    out["broker_scheme"] = str(get("broker_url") or "").split("://", 1)[0]
    # Off, the worker answers no ping, inspect or cancel_consumer (no drain, no live answer).
    out["remote_control"] = bool(get("worker_enable_remote_control", True))
    return out


def read_after_module_write(now, default_config, settings, wanted_digest, merge):
    """What read_effective would answer once the module holds `settings` and nothing else has
    changed, or None where that cannot be told without building the app again. It can be told
    where the app takes the module's dict as it stands: airflow.cfg names the module (no team
    worker), every setting of the dict holds in the app as the dict gives it, the digest
    included, and no option of airflow.cfg is merged over it. The new dict is then Airflow's
    DEFAULT_CELERY_CONFIG with `settings` merged over it, as the module's template builds it.
    It stands in for the read before a restart only: the restarted worker is then asked for
    its digest (the ping module), and one that does not run it is rolled back."""
    wanted = "%s.%s" % (req["module_name"], req["dict_name"])
    if req["team"] or now["config_options"] != wanted or any(item["current"] for item in now["fallbacks"]):
        return None
    old = getattr(sys.modules.get(req["module_name"]), req["dict_name"], None)
    conf = app()[0].conf
    if not isinstance(old, dict) or not old.get(req["digest_key"]) or \
            not all(contains(conf.get(key), value) for key, value in old.items()):
        return None
    new = merge(default_config, dict(settings, **{req["digest_key"]: wanted_digest}))
    # A setting the old dict gave and the new one drops falls back to a value not read here.
    if any(key in old and key not in new for key in set(settings) | set(now["effective"])):
        return None

    def get(key, default=None):
        return new[key] if key in new else conf.get(key, default)
    return dict(now, **compared(get, settings, wanted_digest))


def facts(out):
    """Versions, the module holding DEFAULT_CELERY_CONFIG, the settings' errors, the database's
    idle timeout, the live worker's answer, and what a check would read now (`now`)."""
    # Look for an installed module of the same name before Airflow puts its config
    # folder on sys.path: such a module would win the import, or be shadowed by ours.
    spec = importlib.util.find_spec(req["module_name"])
    out["module_name_taken_by"] = spec.origin if spec is not None else None
    load_airflow()
    out["default_config_module"] = None
    for path in req["default_config_modules"]:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError:
            continue
        if hasattr(module, "DEFAULT_CELERY_CONFIG"):
            out["default_config_module"] = path
            default_config = module.DEFAULT_CELERY_CONFIG
            out["setting_errors"] = setting_errors(req["settings"], default_config)
            break
    # Only for input that passed: a host failing on its input need not wait for a database.
    if not out["default_config_module"] or out["setting_errors"]:
        return
    if req["read_idle_timeout"]:
        out["db_idle_timeout"] = db_idle_timeout()
    if req["worker_active"]:
        out["live"] = live_worker(req["node_name"] or "celery@" + out["hostname"])
    # What the check would read if the run writes nothing, from this same import: the settings
    # fitted and named by the role's own code (module_utils, sent in the request).
    try:
        shared = {}
        exec(compile(req["settings_code"], "airflow_celery_config_settings.py", "exec"), shared)
        fitted = shared["fit_pool_recycle"](req["settings"], out.get("db_idle_timeout"), req["read_idle_timeout"])[0]
        fitted_digest = shared["digest"](fitted)
        now = read_effective(fitted, fitted_digest)
        now.update(digest=fitted_digest, versions=out["versions"], hostname=out["hostname"])
        if "live" in out:
            now["live"] = out["live"]
        # What the check would read if the run writes the module alone (tasks/effective_check.yml).
        now["after_module_write"] = read_after_module_write(now, default_config, fitted, fitted_digest,
                                                            shared["merged"])
        out["now"] = now
    except Exception:
        # The check reads it again and reports what fails.
        out["now"] = None


def check(out):
    """The managed settings as the worker's app holds them, and the live worker's answer."""
    out.update(read_effective(req["settings"], req["digest"]))
    if req["worker_active"]:
        out["live"] = live_worker(req["node_name"] or "celery@" + out["hostname"])


def ping(out):
    """Wait until the worker answers a Celery ping, then ask it for its digest. With `wait`, the
    Celery app is built first (and, with `drain`, one round of a drain runs: the running worker
    stops taking tasks and its tasks are waited for up to `drain_wait` seconds); the child then
    prints what it found as a line of its own and reads one on stdin: "go SECONDS" (the module
    restarts the worker meanwhile), "resume" (give the drained worker its queues back), or
    anything else to stop."""
    celery_app = app()[0]
    node = req["node_name"] or "celery@" + out["hostname"]
    out["node_name"] = node
    seconds = req["timeout"]
    if req.get("wait"):
        found = {}
        if req.get("drain") is not None:
            try:
                with broker(celery_app) as connection:
                    drain_round(celery_app, connection, node, req["drain"], req["drain_wait"], found)
            except Exception as exc:
                found["problem"] = said(exc)
        sys.stdout.write("\n" + json.dumps({"drain": found}) + "\n")
        sys.stdout.flush()
        words = sys.stdin.readline().split()
        if words[:1] == ["resume"]:
            try:
                with broker(celery_app) as connection:
                    resume_queues(celery_app, connection, node, req["drain"])
                out["resumed"] = True
            except Exception as exc:
                out["resume_problem"] = said(exc)
            return
        if words[:1] != ["go"]:
            return
        seconds = float(words[1])
    deadline = time.time() + seconds
    replies = []
    while time.time() < deadline and not replies:
        try:
            with broker(celery_app) as connection:
                # A ping sent before the worker listens is lost; a short wait asks again soon.
                replies = celery_app.control.ping(destination=[node], timeout=0.5, connection=connection)
        except Exception as exc:
            out["broker_problem"] = said(exc, 200)
            time.sleep(1)
    out["replies"] = plain(replies)
    if replies:
        out["live"] = live_worker(node)


def main():
    global req, SECRET_NAME
    # `python -c` puts the working directory first on sys.path, where the airflow script the
    # worker runs does not: a folder named "airflow" there (AIRFLOW_HOME!) would pass for Airflow.
    if sys.path and sys.path[0] in ("", "."):
        del sys.path[0]
    # One line: a job that waits for the module reads another one later (ping).
    req = json.loads(sys.stdin.readline())
    SECRET_NAME = re.compile(req["secret_pattern"], re.IGNORECASE)
    out = {"hostname": socket.gethostname()}
    out["versions"] = {"airflow": dist_version("apache-airflow"), "celery": dist_version("celery"),
                       "celery_provider": dist_version("apache-airflow-providers-celery")}
    job = {"facts": facts, "check": check, "ping": ping, "resume": resume}[req["mode"]]
    if req["mode"] == "resume":
        # A worker that does not take its queues back is reported; the note stays for the next run.
        try:
            job(out)
        except Exception as exc:
            out["problem"] = said(exc)
    else:
        job(out)
    # Not a module: stdout is the answer the module reads. (print() would do the same, but
    # ansible-test rightly bars it from module_utils, where it would corrupt a module's JSON.)
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
