#!/usr/bin/env python3
"""Writes the README's role-variable table from meta/argument_specs.yml, so the two cannot
drift. `--check` only says whether the README is current (used by the tests)."""
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPECS = ROOT / "roles/airflow_celery_config/meta/argument_specs.yml"
README = ROOT / "README.md"
BEGIN, END = "<!-- variables: begin (scripts/variables_table.py) -->", "<!-- variables: end -->"


def plain(text):
    """Ansible doc markup (C(x), O(x), V(x)) as Markdown."""
    return re.sub(r"\b[COV]\(([^)]*)\)", r"`\1`", text)


def table():
    options = yaml.safe_load(SPECS.read_text())["argument_specs"]["main"]["options"]
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, spec in options.items():
        default = json.dumps(spec.get("default"), separators=(", ", ": "))
        default = default.replace("{{ airflow_celery_config_airflow_home }}", "<airflow_home>").replace("|", "\\|")
        description = spec["description"]
        description = " ".join(description) if isinstance(description, list) else description
        kind = spec["type"] + (" of " + spec["elements"] if "elements" in spec else "")
        if kind == "raw":
            # The dict and list inputs that also take their JSON or YAML text (tasks/inputs.yml).
            kind = ("dict" if isinstance(spec.get("default"), dict) else "list of str") + " or its text"
        rows.append("| `%s` | %s | `%s` | %s |" % (name, kind, default, plain(description).replace("|", "\\|")))
    return "\n".join(rows)


def main():
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    wanted = text[:start] + "\n" + table() + "\n" + text[end:]
    if "--check" in sys.argv:
        if wanted != text:
            sys.exit("README.md's variable table differs from meta/argument_specs.yml: run scripts/variables_table.py")
        return
    README.write_text(wanted)


if __name__ == "__main__":
    main()
