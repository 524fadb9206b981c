"""Write outputs atomically: fill a temp folder (or file) beside the destination, then rename it into place.

An output folder is never allowed to be, contain or lie inside an input (:func:`refuse_overlap`): replacing
it would delete the input. Temp folders carry the host and process id of their writer, so one left by a
process that was killed (SIGKILL, a dead batch worker) is removed by the next write of the same folder.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from nervemuscle.errors import OutputError

#: OS errors raised inside an output block that mean the output cannot be written (disk full, quota, file-size
#: limit, read-only file system); they become OutputError (exit code 4).
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def refuse_overlap(out_dir: str | Path, inputs: Iterable[str | Path | None], *, working_folder: bool = True) -> None:
    """Refuse an output folder that is, contains or lies inside one of ``inputs``, or contains the working folder.

    Writing ``out_dir`` replaces it as a whole, so an output equal to or containing an input would delete that
    input, and one inside an input would change it (and be read as input next time). Paths are compared after
    resolving symbolic links.

    Parameters
    ----------
    out_dir : path
        The output folder about to be written.
    inputs : iterable of paths
        Input files and folders of the command (``None`` entries are ignored).
    working_folder : bool
        Also refuse an ``out_dir`` that is or contains the current working folder (``-o .``).

    Raises
    ------
    OutputError
        Naming ``out_dir`` and the input it overlaps (exit code 4).
    """
    out = Path(out_dir).resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if out == source:
            raise OutputError(f"output folder is the input {item}: it would be replaced; choose another folder",
                              out_dir)
        if source.is_relative_to(out):
            raise OutputError(f"output folder contains the input {item}: replacing it would delete the input; "
                              "choose another folder", out_dir)
        if out.is_relative_to(source):
            raise OutputError(f"output folder is inside the input {item}: the input must stay unchanged; "
                              "choose a folder outside it", out_dir)
    if working_folder and Path.cwd().resolve().is_relative_to(out):
        raise OutputError("output folder is or contains the working folder: it would be replaced; "
                          "choose another folder", out_dir)


def _check_replaceable(out_dir: Path, replaces: tuple[str, ...]) -> None:
    if not out_dir.is_dir() or not replaces:
        return
    if any(out_dir.iterdir()) and not any((out_dir / name).exists() for name in replaces):
        raise OutputError(f"exists, is not empty and holds no {' or '.join(replaces)} of an earlier output: "
                          "not replaced; choose an empty or new folder", out_dir)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(out_dir: str | Path) -> list[Path]:
    """Remove the temp (``.<name>.tmp-*``) and set-aside (``.<name>.old-*``) folders of ``out_dir`` left by a
    process of this host that no longer runs; a set-aside previous output is put back when ``out_dir`` is
    missing (the writer died between its two renames).

    Returns
    -------
    list of Path
        The folders removed or restored.
    """
    out_dir = Path(out_dir).absolute()
    mine = re.compile(rf"\.{re.escape(out_dir.name)}\.(tmp|old)-{_host_tag()}\.(\d+)-[^/]*")
    done = []
    try:
        siblings = [p for p in out_dir.parent.iterdir() if mine.fullmatch(p.name)]
    except OSError:
        return done
    for path in siblings:
        kind, pid = mine.fullmatch(path.name).groups()
        if int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        if kind == "old" and (path / "previous").is_dir() and not out_dir.exists():
            os.replace(path / "previous", out_dir)
        shutil.rmtree(path, ignore_errors=True)
        done.append(path)
    return done


@contextlib.contextmanager
def atomic_output_dir(out_dir: str | Path, *, error: str = "cannot create the output folder",
                      inputs: Iterable[str | Path | None] = (), replaces: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty temp folder beside ``out_dir``; when the block succeeds it becomes ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Destination folder. Missing parent folders are created.
    error : str
        Start of the OutputError message when the temp folder cannot be created or renamed into place
        (the OS reason follows in parentheses; the error names ``out_dir``).
    inputs : iterable of paths
        The inputs of the command: ``out_dir`` must not be, contain or lie inside any of them
        (:func:`refuse_overlap`).
    replaces : tuple of str
        When given, an existing non-empty ``out_dir`` is replaced only if it holds one of these file names
        (the mark of an earlier output of the same kind), so that a mistyped ``-o`` never deletes a folder of
        other files.

    Yields
    ------
    Path
        The temp folder (``.<name>.tmp-<host>.<pid>-*`` in ``out_dir``'s parent) to write everything into.

    Raises
    ------
    OutputError
        ``out_dir`` overlaps an input, exists and is not a folder (or not a replaceable one), the parent cannot
        be written, the disk is full (or another :data:`OUTPUT_ERRNOS` error) inside the block, or the final
        rename failed (exit code 4).

    Notes
    -----
    - An existing ``out_dir`` is replaced only after the block succeeded: it is first renamed aside, the temp
      folder renamed into its place, then the old copy deleted. If the second rename fails the old folder
      is put back.
    - On any exception inside the block (SIGTERM included, raised as KeyboardInterrupt) the temp folder
      is removed, ``out_dir`` is left as it was, and the exception propagates unchanged except for the OS
      errors above (callers may turn their own OSErrors into OutputError). Temp folders of killed processes
      are removed by the next call (:func:`remove_stale_temps`).
    - The folder gets the ordinary permissions of a new folder (``0o777`` minus the umask), not
      ``mkdtemp``'s private ``0o700``.
    """
    out_dir = Path(out_dir).absolute()
    refuse_overlap(out_dir, inputs)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("exists and is not a folder", out_dir)
    _check_replaceable(out_dir, replaces)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out_dir)
        # SIGINT/SIGTERM wait until the temp folder is known, so that the clean-up below always sees it
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{_host_tag()}.{os.getpid()}-"))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    except OSError as exc:
        raise OutputError(f"{error} ({exc.strerror or exc})", out_dir) from None
    with _sigterm_unwinds():
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in OUTPUT_ERRNOS:
                raise OutputError(f"{error} ({exc.strerror or exc})", out_dir) from None
            raise
        except OutputError as exc:  # name the file where it was to go, not its temp folder
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.path is not None and exc.path.is_relative_to(tmp):
                raise OutputError(exc.message, out_dir / exc.path.relative_to(tmp)) from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            _move_into_place(tmp, out_dir)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OutputError(f"{error} ({exc.strerror or exc})", out_dir) from None


def _terminate(signum: int, _frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While an output is written (main thread only), SIGTERM raises KeyboardInterrupt like Ctrl-C, so the
    temp folder is removed on the way out (the CLI then exits 130); the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing ``out_dir`` is set aside first and restored if that fails."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    aside = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-{_host_tag()}.{os.getpid()}-"))
    os.replace(out_dir, aside / "previous")
    try:
        os.replace(tmp, out_dir)
    except OSError:
        os.replace(aside / "previous", out_dir)
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str, *, error: str = "cannot write") -> Path:
    """Write ``text`` to ``path`` through a temp file in the same folder renamed into place, so a reader
    never sees half a file; missing parent folders are created and the file gets ordinary permissions
    (``0o666`` minus the umask).

    Raises
    ------
    OutputError
        The file cannot be written: ``"<error> (<OS reason>)"`` naming ``path`` (exit code 4).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"{error} ({exc.strerror or exc})", path) from None
    return path
