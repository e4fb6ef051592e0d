"""The file module writes, keeps and refuses files as the role relies on: one call, a backup of
what it replaces, nothing written where validation fails or in check mode, owner and mode set,
and the content (which holds credentials) never in its output."""
import grp
import json
import os
import pathlib
import pwd
import subprocess
import sys

MODULE = pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/library/airflow_celery_config_file.py"
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def run(tmp_path, check=False, diff=False, **args):
    """Run the module as Ansible runs it (a script given its arguments), return its JSON answer."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}))
    out = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True).stdout
    return json.loads(out)


def test_writes_a_new_file_with_its_owner_and_mode_then_changes_nothing(tmp_path):
    dest = tmp_path / "my_celery_config.py"
    first = run(tmp_path, dest=str(dest), content="X = 1\n", owner=ME, group=MY_GROUP, mode="0640")
    assert first["changed"] and "backup_file" not in first
    assert dest.read_text() == "X = 1\n" and oct(dest.stat().st_mode & 0o777) == "0o640"
    again = run(tmp_path, dest=str(dest), content="X = 1\n", owner=ME, group=MY_GROUP, mode="0640")
    assert not again["changed"]


def test_a_changed_file_is_backed_up_first(tmp_path):
    dest = tmp_path / "zz.conf"
    dest.write_text("old\n")
    result = run(tmp_path, dest=str(dest), content="new\n", backup=True)
    assert result["changed"] and dest.read_text() == "new\n"
    assert pathlib.Path(result["backup_file"]).read_text() == "old\n"


def test_a_mode_alone_is_a_change(tmp_path):
    dest = tmp_path / "zz.conf"
    dest.write_text("same\n")
    dest.chmod(0o600)
    assert run(tmp_path, dest=str(dest), content="same\n", mode="0644")["changed"]
    assert oct(dest.stat().st_mode & 0o777) == "0o644"


def test_content_that_fails_validation_is_not_written(tmp_path):
    dest = tmp_path / "my_celery_config.py"
    dest.write_text("X = 1\n")
    result = run(tmp_path, dest=str(dest), content="X = (\n", validate=sys.executable + " -m py_compile %s", backup=True)
    assert result["failed"] and "was not written" in result["msg"]
    assert dest.read_text() == "X = 1\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["args.json", "my_celery_config.py"]


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path):
    dest = tmp_path / "zz.conf"
    dest.write_text("old\n")
    result = run(tmp_path, check=True, dest=str(dest), content="new\n", backup=True)
    assert result["changed"] and "backup_file" not in result
    assert dest.read_text() == "old\n"
    missing = run(tmp_path, check=True, dest=str(tmp_path / "missing.conf"), content="new\n", mode="0644")
    assert missing["changed"] and not (tmp_path / "missing.conf").exists()


def test_the_content_is_shown_only_in_a_diff_asked_for(tmp_path):
    dest = tmp_path / "my_celery_config.py"
    secret = "db+mysql://u:pw-in-the-module@db/r"
    quiet = run(tmp_path, dest=str(dest), content="URL = %r\n" % secret)
    assert secret not in json.dumps(quiet)
    shown = run(tmp_path, diff=True, dest=str(dest), content="URL = %r\nX = 1\n" % secret)
    assert shown["diff"]["prepared"].endswith("\n+X = 1\n")
    assert secret not in json.dumps(shown["invocation"])
