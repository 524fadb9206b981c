"""Write outputs atomically: fill a temp folder (or file) beside the destination, then rename it into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nervemuscle.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output_dir(out_dir: str | Path, *, error: str = "cannot create the output folder") -> Iterator[Path]:
    """Yield an empty temp folder beside ``out_dir``; when the block succeeds it becomes ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Destination folder. Missing parent folders are created.
    error : str
        Start of the OutputError message when the temp folder cannot be created or renamed into place
        (the OS reason follows in parentheses; the error names ``out_dir``).

    Yields
    ------
    Path
        The temp folder (``.<name>.tmp-*`` in ``out_dir``'s parent) to write everything into.

    Raises
    ------
    OutputError
        ``out_dir`` exists and is not a folder, or the parent cannot be written, or the final rename failed
        (exit code 4).

    Notes
    -----
    - An existing ``out_dir`` is replaced only after the block succeeded: it is first renamed aside, the temp
      folder renamed into its place, then the old copy deleted. If the second rename fails the old folder
      is put back.
    - On any exception inside the block the temp folder is removed, ``out_dir`` is left as it was, and the
      exception propagates unchanged (callers may turn their own OSErrors into OutputError).
    - The folder gets the ordinary permissions of a new folder (``0o777`` minus the umask), not
      ``mkdtemp``'s private ``0o700``.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("exists and is not a folder", out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    except OSError as exc:
        raise OutputError(f"{error} ({exc.strerror or exc})", out_dir) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _move_into_place(tmp, out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{error} ({exc.strerror or exc})", out_dir) from None


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing ``out_dir`` is set aside first and restored if that fails."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    aside = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
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
