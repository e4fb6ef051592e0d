"""The host-side decisions on the managed settings: the pool_recycle fitting, the digest the
worker is asked for, and when a running worker needs a restart."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/module_utils"))

from airflow_celery_config_settings import digest, fit_pool_recycle, merged, restart_reason  # noqa: E402

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
