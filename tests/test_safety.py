"""Credentials are found by name, the folders on the way to a path are those the kernel walks,
and the files the role edits are found behind their links, in folders no one else can write."""
import grp
import hashlib
import os
import pathlib
import pwd
import shutil
import stat
import sys
import tempfile
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/module_utils"))

from airflow_celery_config_safety import (  # noqa: E402
    UnsafePath, file_facts, path_facts, secret_names, secret_values, unsafe_writers, walk_path)


SETTINGS = {
    "broker_url": "redis://:hunter22@redis:6379/0",
    "result_backend": "db+mysql://celery:pass\"word@db/r",
    "broker_transport_options": {"visibility_timeout": 3600, "sentinel_kwargs": {"password": "sentinel-pw"},
                                 "Redis_Password": "other-pw"},
    "database_engine_options": {"pool_recycle": 1800, "connect_args": {"password": "engine-pw", "ssl": True}},
    "worker_concurrency": 2,
}


def test_credential_settings_are_found_at_any_depth():
    assert secret_names(SETTINGS) == [
        "broker_transport_options.Redis_Password", "broker_transport_options.sentinel_kwargs",
        "broker_url", "database_engine_options.connect_args.password", "result_backend"]


def test_credential_values_are_masked_as_written_and_as_json():
    values = secret_values(SETTINGS)
    assert {"redis://:hunter22@redis:6379/0", "sentinel-pw", "other-pw", "engine-pw",
            'db+mysql://celery:pass"word@db/r', 'db+mysql://celery:pass\\"word@db/r'} <= values
    # Numbers and names that carry nothing are not masked: they would hide every such word.
    assert "1800" not in values and "3600" not in values and "2" not in values


def stat_of(uid, gid, mode):
    return SimpleNamespace(st_uid=uid, st_gid=gid, st_mode=stat.S_IFDIR | mode)


def test_only_root_and_the_workers_user_and_group_may_write():
    worker = ({0, 1000}, {0, 1000})
    assert unsafe_writers(stat_of(0, 0, 0o755), *worker) is None
    assert unsafe_writers(stat_of(1000, 1000, 0o775), *worker) is None
    assert unsafe_writers(stat_of(0, 0, 0o1777), *worker) == "every user"
    assert unsafe_writers(stat_of(0, 50, 0o775), *worker) == "its group (gid 50)"
    assert unsafe_writers(stat_of(0, 50, 0o755), *worker) is None
    assert unsafe_writers(stat_of(1001, 0, 0o755), *worker) == "its owner (uid 1001)"


def test_the_walk_follows_links_and_names_every_folder_on_the_way(tmp_path):
    real = tmp_path / "etc" / "airflow"
    real.mkdir(parents=True)
    (real / "airflow.cfg").write_text("[core]\n")
    home = tmp_path / "home"
    home.mkdir()
    os.symlink("../etc/airflow/airflow.cfg", home / "airflow.cfg")
    os.symlink(str(home), tmp_path / "home-link")
    looked_in, resolved = walk_path(str(tmp_path / "home-link" / "airflow.cfg"))
    assert resolved == str(real / "airflow.cfg") == os.path.realpath(tmp_path / "home-link" / "airflow.cfg")
    # The link's own folders count: whoever can write them can point the link elsewhere.
    assert {str(tmp_path), str(home), str(tmp_path / "etc"), str(real)} <= set(looked_in)
    assert looked_in[0] == "/"


def test_the_walk_stops_at_what_does_not_exist_yet(tmp_path):
    os.symlink(str(tmp_path / "missing"), tmp_path / "dangling")
    looked_in, resolved = walk_path(str(tmp_path / "dangling" / "config" / "m.py"))
    assert resolved == str(tmp_path / "missing" / "config" / "m.py")
    assert looked_in[-1] == str(tmp_path)


def test_a_write_compares_content_owner_group_and_mode(tmp_path):
    written = tmp_path / "dropin.conf"
    written.write_bytes(b"[Service]\nTimeoutStopSec=600\n")
    written.chmod(0o644)
    found = file_facts(str(written))
    assert found["sha1"] == hashlib.sha1(b"[Service]\nTimeoutStopSec=600\n").hexdigest()
    assert found["stat"].endswith(" 0644")
    assert file_facts(str(tmp_path / "missing.conf")) is None
    assert file_facts(str(tmp_path)) is None


@pytest.fixture
def install():
    """An AIRFLOW_HOME with a link to airflow.cfg, in folders only the test's user can write
    (pytest's tmp_path lies under /tmp, which every user can write)."""
    cache = pathlib.Path(__file__).resolve().parent.parent / ".cache"
    # A fresh clone has no .cache yet (`make unit` alone, before any `make test`).
    cache.mkdir(exist_ok=True)
    root = pathlib.Path(tempfile.mkdtemp(dir=cache))
    root.chmod(0o755)
    (root / "etc").mkdir(mode=0o755)
    (root / "etc" / "airflow.cfg").write_text("[core]\n")
    home = root / "home"
    (home / "config").mkdir(mode=0o755, parents=True)
    os.symlink("../etc/airflow.cfg", home / "airflow.cfg")
    (root / "systemd").mkdir(mode=0o755)
    yield root, home, pwd.getpwuid(os.getuid()), grp.getgrgid(os.getgid())
    shutil.rmtree(root)


def test_the_files_are_found_behind_their_links(install):
    root, home, user, group = install
    found = path_facts(user, group, str(home / "airflow.cfg"), str(home / "config"), "my_celery_config",
                       str(root / "systemd" / "zz.conf"))
    assert found["real"]["cfg_path"] == str(root / "etc" / "airflow.cfg")
    assert found["links"] == ["%s -> %s" % (home / "airflow.cfg", root / "etc" / "airflow.cfg")]
    assert found["exists"] == {"cfg_path": True, "module_dir": True, "module": False, "dropin": False,
                               "dropin_dir": True, "env_file": False}
    assert found["files"] == {"module": None, "dropin": None}


def test_a_module_folder_others_can_write_is_refused_naming_it(install):
    root, home, user, group = install
    (home / "config").chmod(0o777)
    with pytest.raises(UnsafePath, match="%s [(][^)]* 0777[)] can be written by every user" % (home / "config")):
        path_facts(user, group, str(home / "airflow.cfg"), str(home / "config"), "my_celery_config",
                   str(root / "systemd" / "zz.conf"))


def test_a_drop_in_folder_is_for_root_alone(install):
    root, home, user, group = install
    (root / "systemd").chmod(0o775)
    if os.getuid() == 0:
        os.chown(root / "systemd", 0, 4242)
    with pytest.raises(UnsafePath, match="the unit's drop-in .* can be written by its (group|owner)"):
        path_facts(user, group, str(home / "airflow.cfg"), str(home / "config"), "my_celery_config",
                   str(root / "systemd" / "zz.conf"))
