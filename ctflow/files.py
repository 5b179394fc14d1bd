"""File helpers shared by every writer: atomic writes of files (temp file + rename) and of folders (temp
folder + rename), and the removal of temp files that a killed writer left behind."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

# Temp names carry the writer's pid, so that a later writer can tell a leftover of a killed process
# (pid gone) from the temp file of a write in progress: ".<stem>.<pid>-<12 hex>.tmp<suffix>".
_TMP = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>\d+)-[0-9a-f]{12}\.(?:tmp|old)(?P<suffix>.*)$")
_STALE_AFTER_S = 5.0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _temp_name(path: Path, kind: str = "tmp") -> Path:
    return path.with_name(f".{path.stem if kind == 'tmp' and path.suffix else path.name}."
                          f"{os.getpid()}-{uuid.uuid4().hex[:12]}.{kind}{path.suffix if kind == 'tmp' else ''}")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temp files/folders of ``path`` left by writers that were killed (their process is
    gone and the temp is older than a few seconds). Returns what was removed; never raises."""
    path = Path(path)
    removed: list[Path] = []
    try:
        siblings = list(path.parent.iterdir()) if path.parent.is_dir() else []
    except OSError:
        return removed
    stems = {path.stem, path.name}
    now = time.time()
    for q in siblings:
        m = _TMP.match(q.name)
        if not m or m.group("stem") not in stems:
            continue
        try:
            if _pid_alive(int(m.group("pid"))) or now - q.lstat().st_mtime < _STALE_AFTER_S:
                continue
            if q.is_dir() and not q.is_symlink():
                shutil.rmtree(q, ignore_errors=True)
            else:
                q.unlink()
            removed.append(q)
        except (OSError, ValueError):
            continue
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix (``np.savez`` and friends look at it) and lives in the same
    folder, so the final ``os.replace`` is atomic on POSIX: readers see the old file or the new
    one, never a truncated one. On error (also ``KeyboardInterrupt``/``SystemExit``) the temporary
    file is removed and the target is untouched; temp files of writers that were killed outright
    (SIGKILL, power loss) are removed by the next write of the same target.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


class FolderInUseError(OSError):
    """The target folder of an atomic folder write holds files the writer would not own."""


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replaceable: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block succeeds it becomes ``path``.

    Readers see no folder, the old folder or the complete new one, never a partial one. An existing
    ``path`` is replaced only if it is empty or every entry in it passes ``replaceable(name)`` (a
    previous write of the same kind); otherwise :class:`FolderInUseError` is raised before anything is
    written. On failure the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    if path.exists():
        if not path.is_dir():
            raise FolderInUseError(f"{path} exists and is not a folder")
        foreign = [q.name for q in path.iterdir() if replaceable is None or not replaceable(q.name)]
        if foreign:
            raise FolderInUseError(
                f"{path} already holds {len(foreign)} other file(s) (e.g. {foreign[0]!r}); write to a new or empty "
                "folder (the folder is replaced as a whole)"
            )
    tmp = _temp_name(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = _temp_name(path, "old")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class CappedReader:
    """A read-only binary file whose ``read(n)`` never asks for more than what is left in the file.

    ``open(path, "rb").read(n)`` allocates ``n`` bytes before it reads (CPython), so a parser that trusts
    a length field of a damaged file (pydicom's element lengths, zipfile's central-directory size, numpy's
    header length) can allocate gigabytes for a file of kilobytes. Parsers handed this object get short
    reads instead, which they report as truncation.
    """

    def __init__(self, path: str | os.PathLike):
        self.name = os.fspath(path)
        self._f = open(self.name, "rb")  # noqa: SIM115 (closed by close()/__exit__)
        self._size = os.fstat(self._f.fileno()).st_size

    def read(self, n: int = -1) -> bytes:
        left = max(self._size - self._f.tell(), 0)
        return self._f.read(left if n is None or n < 0 or n > left else n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> CappedReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
