# -*- coding: utf-8 -*-
"""The worker's systemd unit as systemd loaded it, and running a Python file in the worker's
interpreter the way the unit runs the worker: its user, environment and working directory.
Shared by the facts, check, ping and record modules."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import subprocess
import tempfile
import threading
import time

# Properties of the unit the role reads; ExecStart and EnvironmentFiles may repeat.
UNIT_PROPERTIES = ("LoadState", "ActiveState", "User", "Group", "Environment", "EnvironmentFiles",
                   "WorkingDirectory", "NeedDaemonReload", "ExecStart", "ExecMainStartTimestampMonotonic",
                   "MainPID", "FragmentPath", "DropInPaths")


class UnitError(Exception):
    """The unit cannot be read as the worker's: the message names the input to fix."""


def parse_show(text):
    """`systemctl show` output as a dict; ExecStart and EnvironmentFiles as lists."""
    props = {"ExecStart": [], "EnvironmentFiles": []}
    for line in text.splitlines():
        key, _sep, value = line.partition("=")
        if key in ("ExecStart", "EnvironmentFiles"):
            props[key].append(value)
        elif key:
            props[key] = value
    return props


def parse_env_file(text):
    """The variables of an EnvironmentFile=, as systemd reads the usual forms of one."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def env_file_entry(entry):
    """(path, optional) of one EnvironmentFiles entry: systemd prints "PATH (ignore_errors=yes|no)"
    and does not keep the leading "-" of an optional one."""
    path, _sep, flags = entry.partition(" (ignore_errors=")
    return path, flags.startswith("yes")


def exec_argv(entry):
    """The argv of one ExecStart entry, without the run-time fields (pid, start time) systemd
    prints beside it: "{ path=... ; argv[]=ARGS ; ignore_errors=no ; start_time=... }"."""
    match = re.search(r"argv\[\]=(.*?) ; ignore_errors=", entry)
    if not match:
        return []
    try:
        return shlex.split(match.group(1))
    except ValueError:
        return match.group(1).split()


def worker_team(exec_start):
    """The NAME of `airflow celery worker --team NAME` (also --team=NAME, -t NAME, -tNAME,
    the provider's cli/definition.py ARG_TEAM) in the unit's ExecStart, or None."""
    for entry in exec_start:
        argv = exec_argv(entry)
        if "celery" not in argv or "worker" not in argv[argv.index("celery"):]:
            continue
        for number, arg in enumerate(argv):
            if arg in ("--team", "-t") and number + 1 < len(argv):
                return argv[number + 1]
            if arg.startswith("--team="):
                return arg[len("--team="):]
            if arg.startswith("-t") and not arg.startswith("--") and len(arg) > 2:
                return arg[2:]
    return None


def unit_environment(props, unit, read=None):
    """(env, origin, files): the unit's environment as systemd starts it, where each variable
    comes from, and the EnvironmentFile= of those from a file. Values from an EnvironmentFile=
    beat Environment= ones, as in systemd."""
    read = read or _read_text
    env, origin, files = {}, {}, {}
    for item in shlex.split(props.get("Environment", "")):
        key, _sep, value = item.partition("=")
        env[key] = value
        origin[key] = "Environment= of %s" % unit
    for entry in props.get("EnvironmentFiles", []):
        path, optional = env_file_entry(entry)
        try:
            text = read(path)
        except OSError as exc:
            if optional:
                continue
            raise UnitError("cannot read EnvironmentFile %s of the worker unit: %s" % (path, exc))
        for key, value in parse_env_file(text).items():
            env[key] = value
            origin[key] = "EnvironmentFile=%s of %s" % (path, unit)
            files[key] = path
    return env, origin, files


def _read_text(path):
    with open(path) as handle:
        return handle.read()


def systemd_unit(module, unit):
    """The unit's properties and environment, as systemd will start it next time."""
    rc, out, err = module.run_command(["systemctl", "show", unit, "--property=" + ",".join(UNIT_PROPERTIES)])
    if rc != 0:
        raise UnitError("systemctl show %s failed: %s" % (unit, err.strip()))
    props = parse_show(out)
    if props.get("LoadState") != "loaded":
        raise UnitError("airflow_celery_config_service: systemd unit %s is not loaded (LoadState=%s)"
                        % (unit, props.get("LoadState")))
    if props.get("NeedDaemonReload") == "yes":
        # systemd shows the loaded unit; a restart would load the one on disk.
        raise UnitError("the unit %s changed on disk since systemd loaded it, so its environment cannot be "
                        "checked: run `systemctl daemon-reload` (it restarts nothing), then run again" % unit)
    env, origin, files = unit_environment(props, unit)
    return props, env, origin, files


def unit_user(props, service):
    """The passwd entry of the unit's User= (root if unset)."""
    try:
        return pwd.getpwnam(props.get("User") or "root")
    except KeyError:
        raise UnitError("the worker unit %s runs as User=%s, which does not exist" % (service, props.get("User")))


def worker_process_env(user, unit_env, airflow_home):
    """(env, cwd) for a process started as the unit starts the worker."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir, "USER": user.pw_name,
           "LOGNAME": user.pw_name, "LANG": "C.UTF-8"}
    env.update(unit_env)
    env["AIRFLOW_HOME"] = airflow_home
    return env


def working_directory(props, user):
    cwd = props.get("WorkingDirectory") or user.pw_dir
    return cwd if os.path.isdir(cwd) else "/"


def run_python(python, source, request, user, env, cwd, timeout, meanwhile=None):
    """Run `source` in `python` as `user`, with `request` as one line of JSON on stdin. Returns
    (answer, problem): the last line it printed, parsed as JSON, or None and what it printed
    instead. With `meanwhile`, a function, the child starts first and `meanwhile` runs while it
    works; `meanwhile` may call the function it is given, which waits for the child's next line
    of JSON (None if it ends first). The child then reads one more line: what `meanwhile` returned."""
    def drop_privileges():
        os.setgroups(os.getgrouplist(user.pw_name, user.pw_gid))
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    # A file, not a pipe: a child that writes much to stderr while the module waits for a line
    # on its stdout must not block.
    with tempfile.TemporaryFile(mode="w+") as errors:
        try:
            proc = subprocess.Popen(
                [python, "-c", source], env=env, cwd=cwd,
                preexec_fn=drop_privileges if os.getuid() == 0 and user.pw_uid != 0 else None,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, universal_newlines=True)
        except OSError as exc:
            return None, "cannot run %s: %s" % (python, exc)
        line = json.dumps(request) + "\n"
        timed_out = []
        try:
            if meanwhile is not None:
                try:
                    proc.stdin.write(line)
                    proc.stdin.flush()
                except OSError:
                    pass  # It exited at once; what it printed says why.
                line = meanwhile(lambda: halfway(proc, timeout, timed_out)) + "\n"
            stdout = proc.communicate(line, timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            timed_out.append(True)
        if timed_out:
            proc.kill()
            proc.communicate()
            return None, "cannot run %s: it ran longer than %s seconds" % (python, timeout)
        errors.seek(0)
        stderr = errors.read()
    lines = stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1]), None
        except ValueError:
            pass
    printed = "\n".join((stderr.strip() or stdout.strip()).splitlines()[-20:])
    return None, "It exited %s and printed:\n%s" % (proc.returncode, printed)


def halfway(proc, timeout, timed_out):
    """The next line of the child's stdout that holds a JSON object, parsed, or None where the
    child ends first or has not printed one within `timeout` seconds (it is killed then, and
    `timed_out` says so). Other lines (what an import prints) are passed over."""
    def kill():
        timed_out.append(True)
        proc.kill()

    killer = threading.Timer(timeout, kill)
    killer.start()
    try:
        for line in iter(proc.stdout.readline, ""):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict):
                return found
        return None
    finally:
        killer.cancel()


def start_time(monotonic_usec):
    """The epoch time systemd's ExecMainStartTimestampMonotonic stands for, or None if the
    unit's process never started. Both clocks are the kernel's, in a container too."""
    usec = int(monotonic_usec or 0)
    return time.time() - (time.monotonic() - usec / 1e6) if usec else None


def newest_mtime(paths):
    """The latest modification time among the files that exist (links followed), or None."""
    times = [os.stat(path).st_mtime for path in paths if path and os.path.exists(path)]
    return max(times) if times else None


def started_after_change(started_at, paths):
    """Whether a process started at `started_at` (epoch seconds; None: not running) began after
    the last change to `paths` and their folders: it has read them as they are. A folder
    counts because removing a file changes only its folder."""
    if started_at is None:
        return False
    changed_at = newest_mtime([path for path in paths if path] + [os.path.dirname(path) for path in paths if path])
    return changed_at is not None and started_at > changed_at
