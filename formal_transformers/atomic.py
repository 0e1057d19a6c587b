"""File output that never clobbers: destinations checked first, files swapped in whole.

Every file the project writes (parameters, checkpoints, metrics, plots, ``--json`` reports)
goes through ``atomic_write``: write a temporary file in the same directory, then rename it
over the target, so a reader sees the old file or the new one, never a part of either.

Destinations (the rule every command applies, BEFORE its work starts):

- a file output (``--json PATH``, metrics.json, ...) is either an existing **regular file**
  (replaced) or a **new name**; missing parent directories are created, as long as the nearest
  existing ancestor is a writable directory;
- anything else is refused with an ``OutputPathError``, nothing written: a directory, a device
  node, a FIFO or socket, and a **symbolic link** -- we never write through a link (its target
  may be anything, e.g. a device) and never replace the link itself;
- a directory output (``train --out DIR``) is an existing directory (not a link) or a new name
  under a writable directory.

``check_output_file`` / ``check_output_dir`` apply the rule; ``atomic_write`` re-checks it at
the moment of the rename. ``-`` as a ``--json`` PATH means standard output (``STDOUT``).

Temporary names carry the writer's process id (``.NAME.<pid>.XXXX.tmp``), so the leftovers
of a killed run are recognised and removed (``clean_stale``) while a live writer's are kept.

JSON is strict: ``write_json`` / ``json_text`` never emit bare ``NaN`` or ``Infinity``; a
non-finite float becomes ``null`` and the document's top level gains ``"non_finite"``, a map
from the JSON path of each such value to what it was (``"nan"``, ``"inf"``, ``"-inf"``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from formal_transformers.errors import OutputPathError

STDOUT = "-"
TMP_SUFFIX = ".tmp"
# leftovers without a recognisable writer pid are removed once they are this old (seconds)
STALE_AGE = 3600.0


def publish(path: Path) -> Path:
    """Give a file or directory made by mkstemp/mkdtemp (mode 0600/0700) the usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)
    return path


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _can_create_in(directory: Path) -> bool:
    """Whether a file can be created in ``directory``: tried for real (permissions, read-only
    file systems, /proc), with a temporary file removed at once."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".ft-write-test-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _writable_ancestor(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` is a directory we may create entries in."""
    parent = path.parent
    while not os.path.lexists(parent):
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{flag} {path}: {parent} is not a directory, so {path.name!r} "
                              "cannot be created there")
    if not _can_create_in(parent):
        raise OutputPathError(f"{flag} {path}: the directory {parent} is not writable; choose "
                              "another path (nothing was written)")


def _replaceable(p: Path, flag: str) -> bool:
    """False for a new name; True for a regular file; OutputPathError for anything else."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputPathError(f"{flag} {p}: cannot be inspected ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputPathError(f"{flag} {p}: is {_kind(st.st_mode)}; expected a regular file or "
                              "a new path (nothing was written)")
    return True


def check_output_file(path: str | os.PathLike, flag: str = "output") -> Path:
    """``path`` is a regular file or a new name (see the module docstring) where a file can be
    created; else OutputPathError naming ``flag`` (e.g. '--json'). Call it before the work
    starts."""
    p = Path(path)
    if not _replaceable(p, flag):
        _writable_ancestor(p, flag)
        return p
    if not _can_create_in(p.parent):
        raise OutputPathError(f"{flag} {p}: its directory {p.parent} is not writable, so the "
                              "file cannot be replaced (nothing was written)")
    return p


def check_json_destination(path: str | os.PathLike | None, flag: str = "--json") -> None:
    """``check_output_file`` for a ``--json`` PATH; None (not asked) and ``-`` pass."""
    if path is not None and str(path) != STDOUT:
        check_output_file(path, flag)


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` is an existing directory (not a symbolic link) or a new name under a writable
    directory; else OutputPathError naming ``flag``."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        _writable_ancestor(p, flag)
        return p
    if not stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{flag} {p}: is {_kind(st.st_mode)}; expected a directory or a "
                              "new path (nothing was written)")
    if not _can_create_in(p):
        raise OutputPathError(f"{flag} {p}: the directory is not writable (nothing was "
                              "written)")
    return p


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_PID = re.compile(r"\.(\d+)\.[^.]*$|-(\d+)-[^-]*$")


def clean_stale(directory: str | os.PathLike, prefix: str, suffix: str = "") -> list[Path]:
    """Remove the temporaries ``prefix*suffix`` of ``directory`` left by dead writers.

    A name carrying a pid (``.NAME.<pid>.XXXX.tmp``, ``.checkpoint.tmp-<pid>-XXXX``) is stale
    when that process no longer runs; one without a pid when older than STALE_AGE. Returns the
    paths removed (files and directories)."""
    d = Path(directory)
    removed = []
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        name = p.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        stem = name[:len(name) - len(suffix)] if suffix else name
        m = _PID.search(stem)
        try:
            if m:
                stale = not _pid_alive(int(m.group(1) or m.group(2)))
            else:
                stale = time.time() - os.lstat(p).st_mtime > STALE_AGE
        except OSError:
            continue
        if not stale:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """``write(tmp_path)``, then rename the temporary file over ``path``.

    ``path`` must pass ``check_output_file`` (checked again here, just before the rename, so
    a directory, device node or symbolic link put there meanwhile is never replaced)."""
    path = Path(path)
    _replaceable(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent, f".{path.name}.", TMP_SUFFIX)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(tmp)
        publish(Path(tmp))
        _replaceable(path, "output")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def finite_json(data: Any) -> tuple[Any, dict[str, str]]:
    """``data`` with every non-finite float replaced by None, and {json path: what it was}."""
    found: dict[str, str] = {}

    def walk(x: Any, where: str) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            found[where or "/"] = "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
            return None
        if isinstance(x, dict):
            return {k: walk(v, f"{where}/{k}") for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{where}/{i}") for i, v in enumerate(x)]
        return x

    return walk(data, ""), found


def json_text(data: Any) -> str:
    """Indented, sorted, strict JSON (no bare NaN/Infinity; see the module docstring)."""
    clean, found = finite_json(data)
    if found and isinstance(clean, dict):
        clean = {**clean, "non_finite": {
            "why": "JSON has no NaN or Infinity: these values are written as null",
            "values": found}}
    return json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, data: Any) -> Path | None:
    """Write ``data`` as strict JSON, atomically; ``path`` ``-`` prints it on stdout."""
    text = json_text(data)
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
