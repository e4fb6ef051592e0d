"""ansible-doc renders every module of the role: every option, sub-option and return value
has a description, no entry was cut short at a comma (a flow-style YAML mapping ends a value
there and turns the rest into stray keys), and the markup is the one ansible-core 2.14, the
oldest control node, renders (it shows O(), V(), RV() and E() raw)."""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROLE = pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config"
BIN = pathlib.Path(sys.executable).parent
MODULES = sorted((ROLE / "library").glob("*.py"))
OPTION_KEYS = {"description", "type", "required", "default", "choices", "elements", "suboptions", "aliases",
               "no_log", "version_added"}
RETURN_KEYS = {"description", "returned", "type", "elements", "contains", "sample", "version_added"}
NEWER_MARKUP = re.compile(r"\b(O|V|RV|E|P)\(")


def texts(description):
    return [description] if isinstance(description, str) else list(description or [])


def problems(entries, keys, children, where):
    """What is wrong with each entry of an options or a RETURN block, sub-entries included."""
    found = []
    for name, entry in (entries or {}).items():
        here = where + [name]
        if not isinstance(entry, dict):
            found.append("%s: not a mapping" % ".".join(here))
            continue
        if not any(text.strip() for text in texts(entry.get("description"))):
            found.append("%s: no description" % ".".join(here))
        if set(entry) - keys:
            found.append("%s: unexpected keys %s" % (".".join(here), sorted(set(entry) - keys)))
        found += problems(entry.get(children), keys, children, here)
    return found


def markup(doc):
    """Every text ansible-doc shows: descriptions of the module, its options and return values."""
    found = texts(doc["doc"].get("description")) + [doc["doc"].get("short_description", "")]

    def walk(entries, children):
        for entry in (entries or {}).values():
            found.extend(texts(entry.get("description")))
            walk(entry.get(children), children)
    walk(doc["doc"].get("options"), "suboptions")
    walk(doc.get("return"), "contains")
    return found


@pytest.fixture(scope="session")
def ansible_doc(tmp_path_factory):
    """Runs ansible-doc over every module at once, as JSON and as the text a user reads: one
    ansible-doc start each, not one per module."""
    # No ansible.cfg and no ANSIBLE_ settings from the caller: only the role's modules and utils.
    cwd = tmp_path_factory.mktemp("doc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_LIBRARY=str(ROLE / "library"), ANSIBLE_MODULE_UTILS=str(ROLE / "module_utils"),
               ANSIBLE_CONFIG=str(cwd / "none.cfg"), ANSIBLE_NOCOLOR="1")
    names = [path.stem for path in MODULES]

    def run(*args):
        return subprocess.run([str(BIN / "ansible-doc"), *args, "-t", "module", *names], env=env, cwd=cwd,
                              capture_output=True, text=True)
    return run("--json"), run()


@pytest.fixture(params=MODULES, ids=lambda path: path.stem)
def rendered(request, ansible_doc):
    as_json = ansible_doc[0]
    name = request.param.stem
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    docs = json.loads(as_json.stdout)
    assert name in docs, as_json.stderr[-3000:]
    return name, docs[name], ansible_doc[1]


def test_renders_as_text(rendered):
    # The text a user reads: ansible-doc refuses it where --json still answers, and only warns
    # of a module it cannot show.
    name, doc, as_text = rendered
    assert as_text.returncode == 0 and "ERROR" not in as_text.stderr, as_text.stderr[-3000:]
    assert name not in as_text.stderr, as_text.stderr[-3000:]
    assert re.search(r"^> MODULE %s \(" % name, as_text.stdout, re.MULTILINE), as_text.stdout[:3000]


def test_renders_with_a_description_for_every_option_and_return_value(rendered):
    name, doc = rendered[:2]
    assert doc["doc"]["short_description"] and texts(doc["doc"]["description"]), name
    assert doc.get("return"), name
    assert problems(doc["doc"].get("options"), OPTION_KEYS, "suboptions", []) == []
    assert problems(doc["return"], RETURN_KEYS, "contains", []) == []


def test_markup_renders_on_every_control_node(rendered):
    name, doc = rendered[:2]
    assert [text for text in markup(doc) if NEWER_MARKUP.search(text)] == []


def test_examples_are_yaml_tasks(rendered):
    name, doc = rendered[:2]
    tasks = yaml.safe_load(doc["examples"])
    assert tasks and all(name in task for task in tasks), doc["examples"]
