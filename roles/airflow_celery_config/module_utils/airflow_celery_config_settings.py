# -*- coding: utf-8 -*-
"""The managed Celery settings as the role decides them on the controller's behalf, on the
host: pool_recycle fitted below the database server's idle timeout, and the digest that the
module hands to the running worker so it can be asked which settings it started with; and what
the check module concludes from its read of the worker: which option carries the settings, why
the app would not run them, whether the running worker needs a restart, and the warning before
one that may cut running tasks."""

from __future__ import annotations

import copy
import hashlib
import json

# A key of the worker's Celery config that carries the digest of the managed settings. Celery
# keeps unknown keys and returns them to `inspect conf`, which masks the values of names with
# API, TOKEN, KEY, SECRET, PASS, SIGNATURE or DATABASE (dicts excepted) but not this one.
DIGEST_KEY = "airflow_celery_config_digest"

# pool_recycle counts from a connection's creation, so a value below the server's idle timeout
# means no pooled connection is ever idle that long. 90% (rounded down, at least 1) leaves room
# for the gap between the client's and the server's view of "last used" (a checkout's round
# trip, a slow query) and still recycles rarely: 25920 s under MySQL's default 28800.
RECYCLE_SHARE = 0.9


def merged(base, overrides):
    """`base` with `overrides` merged over it, nested dicts key by key, as the module does."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def digest(settings):
    """A short, stable name for one set of managed settings."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fit_pool_recycle(settings, idle, enabled):
    """The settings with pool_recycle lowered below the server's idle timeout where the
    configured one is not, and one line saying what was found and chosen.

    `idle` is the facts module's db_idle_timeout: {backend, variable, seconds} (0 seconds: off), or
    {problem}. A configured value already below the bound is the operator's and stays."""
    configured = (settings.get("database_engine_options") or {}).get("pool_recycle")
    if not enabled:
        return settings, ("idle timeout not read (airflow_celery_config_fit_pool_recycle is off); "
                          "pool_recycle %s as configured" % configured)
    idle = idle or {}
    if "seconds" not in idle:
        return settings, ("idle timeout not read: %s; pool_recycle %s as configured"
                          % (idle.get("problem", "no answer"), configured))
    seconds = int(idle["seconds"])
    found = "%s %s=%s;" % (idle["backend"], idle["variable"], "%ss" % seconds if seconds else "0 (off)")
    if configured is None:
        return settings, found + " pool_recycle not set, nothing to fit"
    bound = max(1, int(seconds * RECYCLE_SHARE))
    if seconds and int(configured) > bound:
        fitted = merged(settings, {"database_engine_options": {"pool_recycle": bound}})
        return fitted, ("%s configured pool_recycle %s is not safely below it, chose pool_recycle=%d (90%%)"
                        % (found, configured, bound))
    return settings, "%s pool_recycle %s as configured" % (found, configured)


def restart_reason(active, live, wanted_digest, started_at, changed_at):
    """Why the running worker must be restarted to run the managed settings, or None.

    The live worker's own answer decides where there is one: it started with the config that
    carries `wanted_digest`, or it did not. Without an answer (the broker or the worker's
    remote control is down, or the settings reach it through an option that cannot carry the
    digest: `wanted_digest` None), a process that started before its config files last
    changed still runs older ones."""
    if not active:
        return None
    if live.get("answered") and wanted_digest:
        if live.get("digest") == wanted_digest:
            return None
        return ("the running worker %s answers with settings %s, not %s"
                % (live.get("node"), live.get("digest") or "it was not given by this role", wanted_digest))
    if started_at and changed_at and started_at < changed_at:
        return ("the worker process started before its config files last changed%s"
                % ("" if live.get("answered") else " (and %s did not answer over the broker)" % live.get("node")))
    return None


def read_to_reuse(reuse, wanted_digest, written, module_file, restart):
    """The facts module's read the check takes instead of building the worker's app again, and
    which one: ("facts", its read of the files as they were) where this run wrote nothing;
    ("prediction", its read for a new module, see the child's read_after_module_write) where
    this run wrote the module alone and a restart follows, whose ping asks the restarted worker
    for the digest, so the worker must answer remote control now and after; (None, "app") else.
    `written` are the real paths this run changed, `module_file` the module's."""
    if not reuse or reuse.get("digest") != wanted_digest:
        return None, "app"
    if not written:
        return {key: value for key, value in reuse.items() if key != "after_module_write"}, "facts"
    after = reuse.get("after_module_write") or {}
    if restart and list(written) == [module_file] and after.get("remote_control") and \
            reuse.get("remote_control") and (after.get("live") or {}).get("answered"):
        return after, "prediction"
    return None, "app"


# The default way the settings reach the worker's app: the module airflow.cfg names.
MODULE_OPTION = "celery_config_options"
# The airflow.cfg options that carry the whole Celery config, and so the digest with it;
# result_backend_sqlalchemy_engine_options carries database_engine_options only.
DIGEST_CARRIERS = (MODULE_OPTION, "extra_celery_config")


def applied_via(fallbacks):
    """The airflow.cfg option that carries the managed settings to the worker's app: one that
    carries them all (written by the role's fallback) wins, as the provider merges it last."""
    return next((item["option"] for item in fallbacks if item["in_effect"]), MODULE_OPTION)


def mismatch_reasons(read, settings, wanted, shadow_variable):
    """Why the worker's app would not run the managed `settings`, one line each (empty if it does).

    `read` is the check's read of the app (config_options, config_options_from_env, mismatches,
    effective with credentials masked) with its applied_via; `wanted` the module.dict that
    celery_config_options should name; `shadow_variable` the environment variable that beats it."""
    reasons = []
    if read["config_options"] != wanted and read["applied_via"] == MODULE_OPTION:
        source = read["config_options_from_env"]
        reasons.append("the worker reads celery_config_options=%s, not %s%s" % (
            read["config_options"], wanted,
            " (set by %s in %s)" % (shadow_variable, source["origin"]) if source else ""))
    for key in read["mismatches"]:
        # A masked value is a credential: the wanted one is not shown either.
        masked = read["effective"][key] == "********"
        reasons.append("%s is %s, wanted %s" % (
            key, json.dumps(read["effective"][key], sort_keys=True),
            "another value" if masked else json.dumps(settings[key], sort_keys=True)))
    return reasons


def restart_warning(read, stop_timeout):
    """The warning before a restart that may cut the running worker's tasks, or None.

    `read` is the check's result: restart_reason, live (node, active tasks), acks_late and
    visibility_timeout; `stop_timeout` the seconds a stop waits for running tasks."""
    running = (read.get("live") or {}).get("active") or []
    if not (read["restart_reason"] and running):
        return None
    # systemd kills what is still running after TimeoutStopSec; an acks_late message that
    # was never acknowledged waits in the broker until its visibility timeout.
    return ("restarting %s waits up to %ss (airflow_celery_config_stop_timeout) for its %d running "
            "task(s) %s; one still running then is killed%s" % (
                read["live"]["node"], stop_timeout, len(running), ", ".join(running[:5]),
                ", and its message is delivered again only after the broker's visibility_timeout "
                "(%ss)" % read["visibility_timeout"] if read["acks_late"] and read["visibility_timeout"]
                else ""))


# RabbitMQ's consumer_timeout by default since 3.8.15: a delivery unacknowledged for longer
# closes its channel (PRECONDITION_FAILED). The server's own value is not readable from a worker.
RABBITMQ_CONSUMER_TIMEOUT = 1800


def broker_limit_warning(read, drain_timeout, stop_timeout):
    """The warning where the broker gives up on a running task before the drain or the stop
    stops waiting for it, or None. With task_acks_late a task's message stays unacknowledged
    while it runs: Redis and SQS hand it to a second worker after their visibility_timeout,
    RabbitMQ closes the channel after its consumer_timeout. `read` is the check's result
    (acks_late, visibility_timeout, broker_scheme)."""
    if not read.get("acks_late"):
        return None
    longest = max(drain_timeout, stop_timeout)
    names = "airflow_celery_config_drain_timeout (%ss) or airflow_celery_config_stop_timeout (%ss)" % (
        drain_timeout, stop_timeout)
    visibility = read.get("visibility_timeout")
    if visibility and visibility < longest:
        return ("the broker's visibility_timeout (%ss) is shorter than %s: with task_acks_late, a task still "
                "running then is delivered to a second worker while the first still runs it; raise "
                "broker_transport_options.visibility_timeout or lower the timeouts" % (visibility, names))
    if (read.get("broker_scheme") or "").startswith(("amqp", "pyamqp")) and longest > RABBITMQ_CONSUMER_TIMEOUT:
        return ("%s is longer than RabbitMQ's consumer_timeout (%ss by default since 3.8.15): with "
                "task_acks_late, a task that runs longer fails with PRECONDITION_FAILED; raise the server's "
                "consumer_timeout above the timeouts" % (names, RABBITMQ_CONSUMER_TIMEOUT))
    return None
