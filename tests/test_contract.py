"""The role's documented contract cannot drift: defaults/main.yml, meta/argument_specs.yml
and the README's variable table say the same."""
import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles/airflow_celery_config"


def specs():
    return yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def test_every_default_has_a_spec_and_every_spec_a_default():
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    assert sorted(defaults) == sorted(specs())


def test_spec_defaults_equal_the_role_defaults():
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    for name, spec in specs().items():
        assert spec.get("default") == defaults[name], name


def test_every_input_carries_the_role_prefix():
    assert all(name.startswith("airflow_celery_config_") for name in specs())


def test_readme_variable_table_is_generated_from_the_specs():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/variables_table.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
