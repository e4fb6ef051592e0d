#!/usr/bin/env python3
"""A stand-in for the get-pip.py script ansible-test bootstraps pip with.

ansible-test creates an empty virtual environment for each sanity test and puts pip in it with
get-pip.py, which it downloads from ci-files.testing.ansible.com and caches as
~/.ansible/test/cache/get_pip_<version>.py. A machine that reaches only the package index cannot
download it, and then every sanity test that needs a package fails with "does not have pip
available". This stand-in does the same job from what every Python has: pip from the
interpreter's own ensurepip, then the pip version ansible-test asked for from the package index.

Two ways it runs:
- `scripts/ansible_test_get_pip.py --install` (scripts/collection_checks.sh does): puts this file
  where ansible-test looks for the pip version it pins, unless a real get-pip.py is there already.
- by ansible-test, as __main__, with get-pip.py's arguments: pip install options, the packages
  (pip==<version>), and --no-setuptools/--no-wheel, which only get-pip.py knows.
"""
import os
import shutil
import subprocess
import sys

# Marks a cached copy as this file's, so that a newer version of it replaces an older one, but
# never a real get-pip.py.
MARKER = "A stand-in for the get-pip.py script ansible-test bootstraps pip with."
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def cache_path():
    """Where ansible-test (the one on PATH's Python) looks for its get-pip.py."""
    # ansible-test's own answer, so that a newer ansible-core that pins another pip still finds it.
    from ansible_test._internal.python_requirements import get_venv_packages

    class Python(object):
        version = "%d.%d" % sys.version_info[:2]

    version = get_venv_packages(Python())["pip"]
    return os.path.expanduser("~/.ansible/test/cache/get_pip_%s.py" % version.replace(".", "_"))


def install():
    path = cache_path()
    with open(__file__) as handle:
        ours = handle.read()
    if os.path.exists(path):
        with open(path) as handle:
            cached = handle.read()
        if cached == ours or MARKER not in cached:
            return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(__file__, path)
    print("ansible-test's pip bootstrap: %s (a stand-in, scripts/ansible_test_get_pip.py)" % path)


def bootstrap(args):
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "pip", "install"] + [arg for arg in args if arg not in GET_PIP_ONLY],
                   check=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:
        install()
    else:
        bootstrap(sys.argv[1:])
