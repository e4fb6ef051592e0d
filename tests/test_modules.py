"""Each of the role's modules documents exactly the options it takes, with their types and
defaults, and carries EXAMPLES and RETURN; and the code the facts, check and ping modules run
in the worker's interpreter is a real file whose pure parts work on their own."""
import ast
import importlib
import importlib.util
import os
import pathlib
import re
import sys
import types

import pytest
import yaml

ROLE = pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config"
sys.path.insert(0, str(ROLE / "module_utils"))
MODULES = sorted((ROLE / "library").glob("*.py"))


def load(path):
    """The module file, imported as Ansible runs it: with the role's module_utils in the
    ansible.module_utils package, where its `ansible.module_utils.airflow_celery_config_*`
    imports find them (and those find each other) in any order."""
    import ansible.module_utils
    if str(ROLE / "module_utils") not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(str(ROLE / "module_utils"))
    spec = importlib.util.spec_from_file_location("role_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented(options):
    """{name: (type, default, required, elements, suboptions)} of a DOCUMENTATION options block."""
    return {name: (o.get("type", "str"), o.get("default"), o.get("required", False), o.get("elements"),
                   documented(o["suboptions"]) if "suboptions" in o else None)
            for name, o in options.items()}


def specified(spec):
    return {name: (o.get("type", "str"), o.get("default"), o.get("required", False), o.get("elements"),
                   specified(o["options"]) if "options" in o else None)
            for name, o in spec.items()}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_a_module_documents_the_options_it_takes(path):
    # What ansible-test's validate-modules checks too (scripts/collection_checks.sh), here in the unit tests.
    module = load(path)
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["module"] == path.stem
    assert yaml.safe_load(module.EXAMPLES) and yaml.safe_load(module.RETURN)
    assert documented(doc["options"]) == specified(module.ARGUMENT_SPEC)


def test_the_install_option_reads_alike_in_every_module_that_takes_it():
    # Each module documents the shared `install` keys in full (ansible-doc, validate-modules):
    # copies of one text, which must not drift apart.
    docs = {path.stem: yaml.safe_load(load(path).DOCUMENTATION)["options"] for path in MODULES}
    install = {name: options["install"]["suboptions"] for name, options in docs.items() if "install" in options
               and not name.endswith("_record")}
    assert sorted(install) == ["airflow_celery_config_%s" % name for name in ("check", "drain", "facts", "ping")]
    assert all(suboptions == install["airflow_celery_config_facts"] for suboptions in install.values())


# An install as tasks/inputs.yml describes it (the settings as the role's defaults give them).
INSTALL = {"python": "/opt/airflow/venv/bin/python", "airflow_home": "/home/airflow/airflow",
           "cfg_path": "/home/airflow/airflow/airflow.cfg", "service": "airflow-worker",
           "module_dir": "/home/airflow/airflow/config", "module_name": "my_celery_config", "dict_name": "CELERY_CONFIG",
           "settings": {"database_engine_options": {"pool_pre_ping": True, "pool_recycle": 1800}}, "node_name": "",
           "timeout": 120, "extra_setting_names": [], "manage_env": False, "read_idle_timeout": True,
           "dropin_path": "/etc/systemd/system/airflow-worker.service.d/zz-airflow-celery-config.conf", "digest": "",
           "stop_timeout": 600}


def validate(module_name, install):
    """(errors, install as the module reads it) of `install` given to the module's install option."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    spec = load(ROLE / ("library/airflow_celery_config_%s.py" % module_name)).ARGUMENT_SPEC
    result = ArgumentSpecValidator({"install": spec["install"]}).validate({"install": install})
    return [str(error) for error in result.errors], result.validated_parameters.get("install")


def test_the_worker_modules_take_one_install_dict():
    # The role passes the same dict to the facts, check and ping modules: each takes it, reads
    # it alike, and refuses alike what none of them takes.
    answers = [validate(name, INSTALL) for name in ("facts", "check", "ping")]
    assert answers[0] == ([], INSTALL) and answers[1] == answers[2] == answers[0]
    # With the defaults filled in alike where a key is left out.
    required = ("python", "airflow_home", "cfg_path", "service", "module_dir", "module_name", "dict_name")
    answers = [validate(name, {key: INSTALL[key] for key in required}) for name in ("facts", "check", "ping")]
    assert answers[0][0] == [] and answers[0][1]["timeout"] == 120 and answers[1] == answers[2] == answers[0]
    for broken in ({k: v for k, v in INSTALL.items() if k != "dict_name"}, dict(INSTALL, other=1), dict(INSTALL, timeout="x")):
        errors = [validate(name, broken)[0] for name in ("facts", "check", "ping")]
        assert errors[0] and errors[1] == errors[2] == errors[0]


def test_the_record_module_takes_the_install_keys_the_role_sends_it():
    # The record task sends the install's keys listed in vars/main.yml, never the settings
    # (credentials): the module must take exactly those, each as the worker modules read it.
    keys = yaml.safe_load((ROLE / "vars/main.yml").read_text())["__airflow_celery_config_record_keys"]
    assert "settings" not in keys
    sent = {key: INSTALL[key] for key in keys}
    assert validate("record", sent) == ([], sent)
    for key in keys:
        assert validate("record", {k: v for k, v in sent.items() if k != key})[0], key
    assert validate("record", dict(sent, settings=INSTALL["settings"]))[0]


def child():
    return importlib.import_module("airflow_celery_config_child")


def test_the_child_runs_without_ansible_or_airflow_until_asked():
    tree = ast.parse((ROLE / "module_utils/airflow_celery_config_child.py").read_text())
    imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names} | {node.module.split(".")[0] for node in tree.body
                                            if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"importlib", "json", "os", "re", "socket", "sys", "time"}


FAKE_AIRFLOW = {
    # As Airflow 2.6+ has it: the import initializes unless _AIRFLOW__AS_LIBRARY is set.
    "__init__.py": "import os\nfrom airflow import settings\n"
                   "if not os.environ.get('_AIRFLOW__AS_LIBRARY'):\n    settings.initialize()\n",
    "settings.py": "import os\nCALLS = []\n"
                   "def initialize():\n    CALLS.append('initialize')\n"
                   "def configure_vars():\n    CALLS.append('configure_vars')\n"
                   "def prepare_syspath_for_config_and_plugins():\n    CALLS.append('prepare_syspath_for_config_and_plugins')\n"
                   "def import_local_settings():\n    CALLS.append(('import_local_settings', os.environ.get('_AIRFLOW__AS_LIBRARY')))\n",
}


def airflow_loaded(monkeypatch, tmp_path, version, drop=None):
    """The settings steps load_airflow ran on a fake Airflow of `version`."""
    package = tmp_path / "airflow"
    package.mkdir()
    for name, text in FAKE_AIRFLOW.items():
        (package / name).write_text(text.replace("def %s(" % drop, "def _gone_%s(" % drop) if drop else text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("airflow", "airflow.settings"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(child(), "dist_version", lambda name: version)
    monkeypatch.delenv("_AIRFLOW__AS_LIBRARY", raising=False)
    child().load_airflow()
    return sys.modules["airflow.settings"].CALLS


def test_airflow_3_is_imported_as_a_library_then_set_up_as_far_as_the_app_needs(monkeypatch, tmp_path):
    calls = airflow_loaded(monkeypatch, tmp_path, "3.3.2")
    # The switch is off again once Airflow is imported: the steps and anything later see no trace.
    assert calls == ["configure_vars", "prepare_syspath_for_config_and_plugins", ("import_local_settings", None)]
    assert "_AIRFLOW__AS_LIBRARY" not in os.environ


@pytest.mark.parametrize("version, drop", [("2.10.5", None), ("1.10.15", None), (None, None),
                                           ("3.4.0", "prepare_syspath_for_config_and_plugins")])
def test_older_airflow_or_one_without_the_steps_initializes_in_full(monkeypatch, tmp_path, version, drop):
    assert airflow_loaded(monkeypatch, tmp_path, version, drop) == ["initialize"]


def test_contains_compares_nested_settings_as_the_check_does():
    contains = child().contains
    assert contains({"pool_pre_ping": True, "pool_recycle": 4, "echo": False}, {"pool_pre_ping": True, "pool_recycle": 4})
    assert not contains({"pool_pre_ping": True}, {"pool_pre_ping": True, "pool_recycle": 4})
    assert contains(("a", "b"), ["a", "b"]) and not contains(["a"], ["a", "b"])
    assert not contains(None, {"x": 1})


@pytest.mark.parametrize("value, types_, problem", [
    (True, (bool,), None), (None, (int,), None), (3, (int, float), None),
    (True, (int,), "x is true, but Celery wants int"), ("3", (int,), "x is \"3\", but Celery wants int"),
])
def test_a_value_of_the_wrong_type_is_named(value, types_, problem):
    assert child().type_error("x", value, types_) == problem


def test_versions_compare_as_numbers():
    assert child().version_tuple("3.10.0") > child().version_tuple("3.3.1")
    assert child().version_tuple(None) == ()


def test_a_value_json_cannot_carry_is_shown_as_its_repr():
    assert child().plain({"a": (1, 2)}) == {"a": [1, 2]}
    assert child().plain(types.SimpleNamespace).startswith("<class")


def option(type_):
    return types.SimpleNamespace(type=type_)


CELERY_OPTIONS = {"worker_prefetch_multiplier": option("int"), "result_expires": option("float"),
                  "database_engine_options": option("dict"), "task_acks_late": option("bool")}


def test_an_unknown_setting_is_named_with_close_matches():
    errors = child().check_settings({"worker_prefetch_multiplyer": 2}, CELERY_OPTIONS, set(), "5.6.3")
    assert errors == ["worker_prefetch_multiplyer is not a setting of Celery 5.6.3 (did you mean worker_prefetch_multiplier?)"]


def test_names_airflow_or_the_operator_add_are_known():
    assert child().check_settings({"broker_url": "x", "my_ext_setting": 1}, CELERY_OPTIONS,
                                  {"broker_url", "my_ext_setting"}, "5.6.3") == []


def test_values_of_the_wrong_type_are_named_engine_options_too():
    errors = child().check_settings(
        {"worker_prefetch_multiplier": "2", "task_acks_late": 1, "result_expires": 3,
         "database_engine_options": {"pool_pre_ping": "yes", "pool_recycle": 1800, "connect_args": {}}},
        CELERY_OPTIONS, set(), "5.6.3")
    assert errors == ["database_engine_options.pool_pre_ping is \"yes\", but Celery wants bool",
                      "task_acks_late is 1, but Celery wants bool",
                      "worker_prefetch_multiplier is \"2\", but Celery wants int"]


class FakeApp:
    def __init__(self, conf):
        self.conf = conf


def predicting(monkeypatch, app_conf, module_dict, **req):
    """The child as the facts job leaves it: its request, the worker's app built from the
    module named `acc_cfg.CONFIG`, which holds `module_dict`."""
    monkeypatch.setattr(child(), "req", dict(dict(team=None, module_name="acc_cfg", dict_name="CONFIG",
                                                  digest_key="digest"), **req))
    monkeypatch.setattr(child(), "SECRET_NAME", re.compile("password", re.IGNORECASE))
    monkeypatch.setattr(child(), "app", lambda: (FakeApp(app_conf), "acc.app"))
    monkeypatch.setitem(sys.modules, "acc_cfg", types.SimpleNamespace(CONFIG=module_dict))


DEFAULT = {"task_acks_late": True, "worker_enable_remote_control": True}
OLD = dict(DEFAULT, result_expires=1000, digest="old")
NOW = {"config_options": "acc_cfg.CONFIG", "fallbacks": [], "live": {"answered": True, "digest": "old"},
       "effective": {"result_expires": 1000, "database_engine_options": None}, "mismatches": ["result_expires"],
       "digest": "new", "app_module": "acc.app"}


def predict(now=NOW, new_settings=None):
    return child().read_after_module_write(dict(now), DEFAULT, new_settings or {"result_expires": 1001}, "new",
                                           lambda base, more: dict(base, **more))


def test_a_module_the_app_takes_as_it_stands_predicts_the_read_of_the_next(monkeypatch):
    predicting(monkeypatch, dict(OLD, result_backend="db+mysql://x"), OLD)
    after = predict(new_settings={"result_expires": 1001, "task_acks_late": False})
    assert after["effective"] == {"result_expires": 1001, "task_acks_late": False, "database_engine_options": None,
                                  "database_short_lived_sessions": None}
    assert (after["mismatches"], after["acks_late"], after["remote_control"]) == ([], False, True)
    # What the running worker answered stays: it still runs the old module until its restart.
    assert (after["live"], after["config_options"], after["digest"]) == (NOW["live"], "acc_cfg.CONFIG", "new")


@pytest.mark.parametrize("app_conf, module_dict, now, req", [
    # An option merged over the module's dict, as extra_celery_config is, wins over the module.
    (dict(OLD, result_expires=5), OLD, NOW, {}),
    (OLD, OLD, dict(NOW, fallbacks=[{"option": "extra_celery_config", "current": {"result_expires": 5}}]), {}),
    # A module without the role's digest, another module named, a team worker's app.
    (DEFAULT, DEFAULT, NOW, {}),
    (OLD, OLD, dict(NOW, config_options="other.CONFIG"), {}),
    (OLD, OLD, NOW, {"team": "blue"}),
])
def test_no_prediction_where_the_app_may_not_take_the_next_module_as_written(monkeypatch, app_conf, module_dict, now, req):
    predicting(monkeypatch, app_conf, module_dict, **req)
    assert predict(now) is None


def test_no_prediction_where_the_next_module_drops_a_setting_the_app_got_from_this_one(monkeypatch):
    old = dict(OLD, database_engine_options={"pool_recycle": 4})
    predicting(monkeypatch, old, old)
    assert predict() is None
    assert predict(new_settings={"result_expires": 1001, "database_engine_options": {"pool_recycle": 4}}) is not None


class PingingApp:
    """A Celery app whose worker answers the first ping."""

    def __init__(self, stdin):
        self.stdin = stdin
        self.pinged = []
        self.control = types.SimpleNamespace(ping=self.ping)

    def ping(self, destination, timeout, connection):
        # What the module said on stdin was read before the first ping.
        self.pinged.append((destination, self.stdin.read()))
        return [{destination[0]: {"ok": "pong"}}]


def pinging(monkeypatch, line, **req):
    stdin = __import__("io").StringIO(line)
    stdout = __import__("io").StringIO()
    celery_app = PingingApp(stdin)
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(child(), "req", dict(node_name="", timeout=120, wait=True, **req))
    monkeypatch.setattr(child(), "app", lambda: (celery_app, "acc.app"))
    monkeypatch.setattr(child(), "broker", lambda _app: __import__("contextlib").nullcontext())
    monkeypatch.setattr(child(), "live_worker", lambda node: {"node": node, "answered": True})
    out = {"hostname": "acc-worker-1"}
    child().ping(out)
    return out, celery_app.pinged


def test_a_ping_that_waits_pings_after_the_module_says_go(monkeypatch):
    out, pinged = pinging(monkeypatch, "go 30\n")
    assert pinged == [(["celery@acc-worker-1"], "")]
    assert out["replies"] == [{"celery@acc-worker-1": {"ok": "pong"}}]
    assert out["live"]["answered"]


@pytest.mark.parametrize("line", ["stop\n", ""])  # the unit did not start; the module is gone
def test_a_ping_that_waits_does_not_ping_unless_told_to(monkeypatch, line):
    out, pinged = pinging(monkeypatch, line)
    assert pinged == []
    assert out == {"hostname": "acc-worker-1", "node_name": "celery@acc-worker-1"}


QUEUES = [{"name": "default", "exchange": "default", "exchange_type": "direct", "routing_key": "default"}]


def draining(monkeypatch, line, fail=None):
    """The child's ping with a drain round first: what it printed halfway, what it did after."""
    done = []

    def drain_round(celery_app, connection, node, queues, wait, found):
        done.append(("drain", node, queues, wait, sys.stdin.tell()))
        if fail:
            raise RuntimeError(fail)
        found.update(active=[], reserved=[], cancelled_at=1.0)

    monkeypatch.setattr(child(), "drain_round", drain_round)
    monkeypatch.setattr(child(), "resume_queues", lambda celery_app, connection, node, queues: done.append(("resume", queues)))
    out, pinged = pinging(monkeypatch, line, drain=QUEUES, drain_wait=7)
    halfway = [json_line for json_line in sys.stdout.getvalue().splitlines() if json_line]
    return out, pinged, done, halfway


def test_a_ping_with_a_drain_drains_says_so_halfway_then_pings_when_told(monkeypatch):
    out, pinged, done, halfway = draining(monkeypatch, "go 30\n")
    # The round ran before the module's line was read: the module decides on what it found.
    assert done == [("drain", "celery@acc-worker-1", QUEUES, 7, 0)]
    assert [__import__("json").loads(line) for line in halfway] == [{"drain": {"active": [], "reserved": [], "cancelled_at": 1.0}}]
    assert pinged == [(["celery@acc-worker-1"], "")]


def test_a_drained_worker_gets_its_queues_back_when_told_to_resume(monkeypatch):
    out, pinged, done, _halfway = draining(monkeypatch, "resume\n")
    assert done[1:] == [("resume", QUEUES)] and out["resumed"] and pinged == []


def test_a_drain_that_fails_is_said_halfway_not_raised(monkeypatch):
    out, pinged, done, halfway = draining(monkeypatch, "go 30\n", fail="no answer")
    assert __import__("json").loads(halfway[0]) == {"drain": {"problem": "RuntimeError: no answer"}}
    assert pinged == [(["celery@acc-worker-1"], "")]
