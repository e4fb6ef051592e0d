"""The host-side decisions on the managed settings: the pool_recycle fitting, the digest the
worker is asked for, when a running worker needs a restart, and what the check module reports
from its read of the worker's app (the option that carries the settings, why the app would not
run them, the warning before a restart that may cut tasks)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/module_utils"))

from airflow_celery_config_settings import (  # noqa: E402
    DIGEST_CARRIERS, applied_via, broker_limit_warning, digest, fit_pool_recycle, merged, mismatch_reasons, read_to_reuse,
    restart_reason, restart_warning)

CONFIGURED = {"database_engine_options": {"pool_pre_ping": True, "pool_recycle": 1800}}
MYSQL_5S = {"backend": "mysql", "variable": "wait_timeout", "seconds": 5}


def test_merge_is_nested_and_leaves_its_inputs_alone():
    base = {"a": {"x": 1, "y": 2}, "b": [1]}
    out = merged(base, {"a": {"y": 3}, "c": 4})
    assert out == {"a": {"x": 1, "y": 3}, "b": [1], "c": 4}
    assert base == {"a": {"x": 1, "y": 2}, "b": [1]}


def test_pool_recycle_above_the_idle_timeout_is_fitted_to_90_percent():
    settings, report = fit_pool_recycle(CONFIGURED, MYSQL_5S, True)
    assert settings["database_engine_options"] == {"pool_pre_ping": True, "pool_recycle": 4}
    assert report == "mysql wait_timeout=5s; configured pool_recycle 1800 is not safely below it, chose pool_recycle=4 (90%)"
    assert CONFIGURED["database_engine_options"]["pool_recycle"] == 1800


def test_a_value_already_below_the_bound_is_the_operators():
    settings, report = fit_pool_recycle(CONFIGURED, dict(MYSQL_5S, seconds=28800), True)
    assert settings == CONFIGURED
    assert report == "mysql wait_timeout=28800s; pool_recycle 1800 as configured"


def test_a_one_second_timeout_still_gets_a_recycle_of_one():
    settings, _ = fit_pool_recycle(CONFIGURED, dict(MYSQL_5S, seconds=1), True)
    assert settings["database_engine_options"]["pool_recycle"] == 1


def test_no_timeout_on_the_server_fits_nothing():
    settings, report = fit_pool_recycle(CONFIGURED, dict(MYSQL_5S, seconds=0), True)
    assert settings == CONFIGURED
    assert report == "mysql wait_timeout=0 (off); pool_recycle 1800 as configured"


def test_unread_timeout_and_fitting_off_keep_the_configured_value():
    assert fit_pool_recycle(CONFIGURED, {"problem": "no route"}, True) == (
        CONFIGURED, "idle timeout not read: no route; pool_recycle 1800 as configured")
    settings, report = fit_pool_recycle(CONFIGURED, MYSQL_5S, False)
    assert settings == CONFIGURED and "is off" in report


def test_no_pool_recycle_configured_is_left_unset():
    settings, report = fit_pool_recycle({"database_engine_options": {"pool_pre_ping": True}}, MYSQL_5S, True)
    assert "pool_recycle" not in settings["database_engine_options"]
    assert report.endswith("pool_recycle not set, nothing to fit")


def test_digest_names_the_settings_not_their_order():
    assert digest({"a": 1, "b": {"c": 2, "d": 3}}) == digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert digest(CONFIGURED) != digest(fit_pool_recycle(CONFIGURED, MYSQL_5S, True)[0])
    assert len(digest(CONFIGURED)) == 16


def test_a_stopped_worker_needs_no_restart_to_be_in_sync():
    assert restart_reason(False, {}, "abc", None, 100.0) is None


def test_the_live_answer_decides_where_there_is_one():
    live = {"answered": True, "node": "celery@w1", "digest": "abc"}
    # Started long before the files changed, but it says it runs them: no restart.
    assert restart_reason(True, live, "abc", 10.0, 100.0) is None
    reason = restart_reason(True, dict(live, digest="old"), "abc", 200.0, 100.0)
    assert reason == "the running worker celery@w1 answers with settings old, not abc"
    assert "not given by this role" in restart_reason(True, dict(live, digest=None), "abc", 200.0, 100.0)


def test_without_an_answer_the_start_time_decides():
    silent = {"answered": False, "node": "celery@w1"}
    assert "started before its config files last changed (and celery@w1 did not answer" in \
        restart_reason(True, silent, "abc", 10.0, 100.0)
    assert restart_reason(True, silent, "abc", 200.0, 100.0) is None
    # An option that cannot carry the digest: the answer cannot tell, the times do.
    answered = {"answered": True, "node": "celery@w1", "digest": None}
    assert restart_reason(True, answered, None, 200.0, 100.0) is None
    assert restart_reason(True, answered, None, 10.0, 100.0) == \
        "the worker process started before its config files last changed"


def test_the_source_sent_to_the_worker_fits_and_names_alone():
    # The facts module sends this file's source to the worker's interpreter, which runs it on
    # its own (no Ansible there) to read ahead what the effective check would.
    import airflow_celery_config_settings
    import inspect
    shared = {}
    exec(compile(inspect.getsource(airflow_celery_config_settings), "settings.py", "exec"), shared)
    fitted = shared["fit_pool_recycle"](CONFIGURED, MYSQL_5S, True)[0]
    assert fitted == fit_pool_recycle(CONFIGURED, MYSQL_5S, True)[0]
    assert shared["digest"](fitted) == digest(fitted) != digest(CONFIGURED)


def fallback(option, in_effect):
    return {"option": option, "holds": None, "covers": [], "in_effect": in_effect, "value": None}


def test_the_option_the_fallback_wrote_carries_the_settings_when_in_effect():
    assert applied_via([]) == "celery_config_options"
    assert applied_via([fallback("extra_celery_config", False)]) == "celery_config_options"
    assert applied_via([fallback("extra_celery_config", False), fallback("result_backend_sqlalchemy_engine_options", True)]) \
        == "result_backend_sqlalchemy_engine_options"
    # Only the options that carry the whole config carry the digest the worker is asked for.
    assert "extra_celery_config" in DIGEST_CARRIERS and "result_backend_sqlalchemy_engine_options" not in DIGEST_CARRIERS


WANTED = "my_celery_config.CELERY_CONFIG"
SETTINGS = {"broker_url": "redis://:pw@x", "database_engine_options": {"pool_pre_ping": True, "pool_recycle": 1800}}


def read(**changes):
    """The check's read of an app that runs the managed settings, with `changes`."""
    out = {"config_options": WANTED, "config_options_from_env": None, "applied_via": "celery_config_options",
           "mismatches": [], "effective": {"broker_url": "********", "database_engine_options": SETTINGS["database_engine_options"]}}
    out.update(changes)
    return out


def test_an_app_that_runs_the_settings_has_no_mismatch():
    assert mismatch_reasons(read(), SETTINGS, WANTED, "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS") == []


def test_the_module_the_worker_reads_is_named_and_where_it_comes_from():
    assert mismatch_reasons(read(config_options="other.CONF"), SETTINGS, WANTED, "VAR") == [
        "the worker reads celery_config_options=other.CONF, not " + WANTED]
    from_env = read(config_options="other.CONF", config_options_from_env={"value": "other.CONF", "origin": "/etc/default/airflow"})
    assert mismatch_reasons(from_env, SETTINGS, WANTED, "VAR") == [
        "the worker reads celery_config_options=other.CONF, not %s (set by VAR in /etc/default/airflow)" % WANTED]
    # Where a fallback option carries the settings, the module is not what they depend on.
    assert mismatch_reasons(read(config_options="other.CONF", applied_via="extra_celery_config"), SETTINGS, WANTED, "VAR") == []


def test_a_setting_that_differs_is_named_and_a_credential_is_not_shown():
    effective = {"broker_url": "********", "database_engine_options": {"pool_pre_ping": False}}
    reasons = mismatch_reasons(read(mismatches=["broker_url", "database_engine_options"], effective=effective),
                               SETTINGS, WANTED, "VAR")
    assert reasons == ['broker_url is "********", wanted another value',
                       'database_engine_options is {"pool_pre_ping": false}, wanted {"pool_pre_ping": true, "pool_recycle": 1800}']


def busy(**changes):
    out = {"restart_reason": "the worker process started before its config files last changed", "acks_late": False,
           "visibility_timeout": None, "live": {"node": "celery@w1", "active": ["t%d" % i for i in range(7)]}}
    out.update(changes)
    return out


def test_no_warning_without_a_restart_or_without_running_tasks():
    assert restart_warning(busy(restart_reason=None), 600) is None
    assert restart_warning(busy(live={"node": "celery@w1", "active": []}), 600) is None
    # A worker that does not answer has no tasks to name; the reason alone warns of nothing.
    assert restart_warning({"restart_reason": "x"}, 600) is None


def test_the_warning_names_the_wait_and_the_first_tasks():
    assert restart_warning(busy(), 600) == (
        "restarting celery@w1 waits up to 600s (airflow_celery_config_stop_timeout) for its 7 running task(s) "
        "t0, t1, t2, t3, t4; one still running then is killed")


def test_an_acks_late_task_cut_is_delivered_again_after_the_visibility_timeout():
    assert restart_warning(busy(acks_late=True, visibility_timeout=21600), 600).endswith(
        "is killed, and its message is delivered again only after the broker's visibility_timeout (21600s)")
    assert restart_warning(busy(acks_late=True, visibility_timeout=None), 600).endswith("is killed")


def test_a_broker_that_gives_up_on_a_task_before_the_drain_or_the_stop_is_named():
    redis = {"acks_late": True, "visibility_timeout": 3600, "broker_scheme": "redis"}
    assert broker_limit_warning(redis, 600, 600) is None
    assert broker_limit_warning(redis, 7200, 600).startswith(
        "the broker's visibility_timeout (3600s) is shorter than airflow_celery_config_drain_timeout (7200s)")
    assert "delivered to a second worker" in broker_limit_warning(redis, 0, 4000)
    # Without acks_late a message is acknowledged when the task starts: nothing waits in the broker.
    assert broker_limit_warning(dict(redis, acks_late=False), 7200, 600) is None


def test_rabbitmq_consumer_timeout_is_named_past_its_default():
    rabbit = {"acks_late": True, "visibility_timeout": None, "broker_scheme": "amqp"}
    assert broker_limit_warning(rabbit, 1800, 600) is None
    assert "RabbitMQ's consumer_timeout (1800s" in broker_limit_warning(rabbit, 3600, 600)
    assert broker_limit_warning(dict(rabbit, broker_scheme="redis"), 3600, 600) is None


AFTER = {"digest": "new", "remote_control": True, "live": {"answered": True}, "mismatches": []}
FACTS = {"digest": "new", "remote_control": True, "live": {"answered": True}, "mismatches": ["result_expires"],
         "after_module_write": AFTER}
MODULE = "/home/airflow/airflow/config/acc_cfg.py"


def test_the_facts_read_stands_where_nothing_was_written():
    read, source = read_to_reuse(FACTS, "new", [], MODULE, True)
    assert source == "facts" and read == {key: value for key, value in FACTS.items() if key != "after_module_write"}


def test_the_prediction_stands_where_the_module_alone_was_written_and_a_restart_follows():
    assert read_to_reuse(FACTS, "new", [MODULE], MODULE, True) == (AFTER, "prediction")


@pytest.mark.parametrize("facts, digest_, written, restart", [
    (FACTS, "new", [MODULE, "/home/airflow/airflow/airflow.cfg"], True),  # airflow.cfg too
    (FACTS, "new", [MODULE], False),  # no restart, so no ping asks the worker afterwards
    (FACTS, "other", [], True),  # read for other settings
    (dict(FACTS, after_module_write=None), "new", [MODULE], True),  # no prediction made
    (dict(FACTS, after_module_write=dict(AFTER, remote_control=False)), "new", [MODULE], True),  # turned off
    (dict(FACTS, after_module_write=dict(AFTER, live={"answered": False})), "new", [MODULE], True),
    (None, "new", [], True),
])
def test_otherwise_the_app_is_built_again(facts, digest_, written, restart):
    assert read_to_reuse(facts, digest_, written, MODULE, restart) == (None, "app")
