"""What makes a release a transaction: a lock file per resource (one build at a time writes
a hub repository or a work folder), and the named points where tests kill a build.

A lock file holds its holder's pid and host. A lock whose holder is gone (the process was
killed) is stale: the next build takes it over and is told so, to finish or undo what the
dead one left."""

from __future__ import annotations

import json
import os
import signal
import socket
from contextlib import contextmanager
from pathlib import Path

from align2.errors import Align2Error


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@contextmanager
def file_lock(path: Path, what: str):
    """Hold `path` for the block; yields True when a dead holder's lock was taken over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    stale = False
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder and holder.get("host") == me["host"] and not _alive(holder["pid"]):
                path.unlink(missing_ok=True)  # its holder was killed
                stale = True
                continue
            pid = holder.get("pid") if holder else "?"
            raise Align2Error(
                f"{what} is in use by another align2 build (pid {pid}, lock {path}); wait for "
                "it to finish, or delete the lock file if that process is gone"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield stale
    finally:
        path.unlink(missing_ok=True)


KILL_AT = "ALIGN2_TEST_KILL_AT"  # tests only, as git's GIT_TEST_* variables


def checkpoint(phase: str) -> None:
    """A named point of a release. With ALIGN2_TEST_KILL_AT=phase the build's process group
    is killed here (SIGKILL), so a test can check what a build killed at that point leaves."""
    if os.environ.get(KILL_AT) == phase:
        os.killpg(os.getpgid(0), signal.SIGKILL)
