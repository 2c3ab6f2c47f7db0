"""Files and folders written under a hidden name, then renamed into place or removed."""

import hashlib
import os
import re
import shutil
import socket
import uuid

# `.<final name>.tmp-<uuid hex>-<pid>-<owner>[<suffix>]`: the process is recorded
# so that a later writer can remove what a killed one (SIGKILL, power loss) left.
_STAGED_NAME = re.compile(
    r"\..+\.tmp-[0-9a-f]{32}-(?P<pid>\d+)-(?P<owner>[0-9a-f]{12})(\.[0-9A-Za-z.]+)?"
)

# Exit codes of the stops asked for in this process (`request_stop`); while
# one is pending, `publish` raises it instead of renaming.
_pending_stops = []


class StagedPath:
    """A file or folder written at a hidden name beside its final path.

    Readers of the final path (TF Serving polling a model folder, an app
    loading a `.tflite` file, a run resuming from its backup) never see a
    partial or unverified export:
    `publish` renames the staged path into place, `discard` removes it along
    with the folders created for it. Hidden names are not numbers, so TF
    Serving never loads a staged SavedModel as a version.

    Args:
        target: str or path. Where the export goes once published. Its
            parent folders are created now.
        suffix: str. Ends the hidden name, for writers that take only some
            extensions (Keras saves to `.keras` and `.weights.h5` names).
            Defaults to `""`.

    Attributes:
        target: str. The final path.
        path: str. The hidden path to write to.

    As a context manager it discards on the way out, so a write that fails
    or is stopped (Ctrl+C, SIGTERM) before `publish` leaves nothing.

    Example:

    >>> with StagedPath("runs/mnist-mlp/model.tflite") as staged:  # doctest: +SKIP
    ...     staged.write_bytes(content)
    ...     staged.publish()
    'runs/mnist-mlp/model.tflite'
    """

    def __init__(self, target, suffix=""):
        if not isinstance(suffix, str) or not re.fullmatch(r"(\.[0-9A-Za-z]+)*", suffix):
            raise ValueError(
                "Expected suffix to be '' or extensions such as '.weights.h5'. "
                f"Received: suffix={suffix!r}"
            )
        self.target = os.fspath(target)
        folder = os.path.dirname(os.path.abspath(self.target))
        self._folder = folder
        self._created = _first_missing(folder)
        os.makedirs(folder, exist_ok=True)
        # A name beside the target rather than a `tempfile.mkdtemp` folder: the
        # rename stays on one file system, and mkdtemp's mode 0700 would hide a
        # SavedModel from a TF Serving process running as another user.
        owner = process_namespace()
        name = (
            f".{os.path.basename(self.target)}.tmp-{uuid.uuid4().hex}-{os.getpid()}-{owner}{suffix}"
        )
        self.path = os.path.join(folder, name)
        _remove_orphans(folder, owner)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.discard()  # after `publish`, only folders that stayed empty go

    def write_bytes(self, content: bytes) -> None:
        """Writes `content` to the staged path, flushed to disk before any rename."""
        with open(self.path, "xb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())

    def publish(self) -> str:
        """Renames the staged path to `target`; returns `target`.

        An existing file at `target` is replaced; an existing non-empty
        folder makes it fail, so callers that must never overwrite (a
        SavedModel version) check first. After `request_stop`, it raises
        that stop's `SystemExit` instead and renames nothing.
        """
        if _pending_stops:
            raise SystemExit(_pending_stops[0])
        os.replace(self.path, self.target)
        return self.target

    def discard(self) -> None:
        """Removes the staged path if still there, then the folders made for it if empty."""
        remove_path(self.path)
        if self._created is None:
            return
        folder = self._folder
        while True:
            try:
                os.rmdir(folder)
            except OSError:  # not empty (or gone): something else lives there
                return
            if folder == self._created:
                return
            folder = os.path.dirname(folder)


def folder_entries(folder, ours) -> tuple[list, list]:
    """The sorted names in `folder` (none if it is missing), and those `ours(name)` disowns.

    What a folder holds besides what keras-vae wrote there: a replacement or
    removal of the folder must leave those alone (see `listed`).
    """
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        names = []
    return names, [name for name in names if not ours(name)]


def listed(names) -> str:
    """The first three `names`, quoted, for an error message."""
    return ", ".join(repr(name) for name in names[:3]) + (", ..." if names[3:] else "")


def publish_replacing(staged, check=None) -> str:
    """Renames a staged folder into place, replacing the folder already there.

    `check(target)` runs first, on the folder to be replaced, and may raise to
    keep it (a folder that holds more than an earlier export). The earlier
    folder is renamed away, then the staged one into place, and the earlier
    one removed last: a stop leaves either folder whole (the earlier one at a
    hidden name if the stop falls between the two renames, removed by the
    next publish to `target`). A symbolic link at `target` is replaced, and
    the folder it points to kept.

    Args:
        staged: a `StagedPath` whose path is a folder.
        check: callable or `None`. Called with `staged.target` if that is a
            folder.

    Returns:
        `staged.target`.
    """
    target = staged.target
    parent, name = os.path.split(os.path.abspath(target))
    previous = os.path.join(parent, f".{name}.replaced")
    replacing = os.path.isdir(target)
    if replacing:
        if check is not None:
            check(target)
        remove_path(previous)
        os.replace(target, previous)  # a symbolic link is moved, not what it points to
    try:
        staged.publish()
    except BaseException:
        if replacing:
            os.replace(previous, target)
        raise
    remove_path(previous)  # the earlier folder, or one a stop between the renames left
    return target


def request_stop(code: int) -> None:
    """Makes every later `publish` in this process raise `SystemExit(code)`.

    For a signal handler that turns a stop (SIGTERM) into `SystemExit`: on its
    way up, that exception can be dropped (raised inside a finalizer) or
    caught by library code, and the write would then go on to publish what
    the process was told to abandon. `withdraw_stop` ends the request.
    """
    _pending_stops.append(code)


def stop_requested() -> bool:
    """Whether a stop was asked for (`request_stop`) and not yet withdrawn."""
    return bool(_pending_stops)


def withdraw_stop() -> None:
    """Ends the requests of `request_stop`: `publish` renames again."""
    _pending_stops.clear()


def write_bytes_atomically(path, content: bytes, suffix="") -> str:
    """Writes `content` at a hidden name beside `path`, flushed, then renames it to `path`.

    A stop, a crash or a full disk leaves the previous file (or none), never
    a cut one; an `OSError` names `path`, not the hidden name. Returns `path`
    as a str.
    """
    try:
        with StagedPath(path, suffix) as staged:
            staged.write_bytes(content)
            return staged.publish()
    except OSError as e:  # name the file meant, not the hidden one
        if e.errno is None:
            raise OSError(f"{e} (writing {os.fspath(path)!r})") from None
        raise OSError(e.errno, e.strerror or str(e), os.fspath(path)) from None


def is_staged_name(name) -> bool:
    """Whether `name` is the hidden name of a `StagedPath` (of any process)."""
    return _STAGED_NAME.fullmatch(name) is not None


def process_namespace():
    """12 hex digits naming where this process's id means something.

    A hash of the host name and, on Linux, of the PID namespace: two
    containers with the same host name but their own process ids (writing
    to one shared folder) get different tags, so neither sweeps the other's
    staged exports.
    """
    tag = socket.gethostname()
    try:
        tag += os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux
        pass
    return hashlib.sha256(tag.encode()).hexdigest()[:12]


def _remove_orphans(folder, owner):
    """Removes staged paths in `folder` left by ended processes of this namespace."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _STAGED_NAME.fullmatch(name)
        if match is None or match["owner"] != owner or is_running(int(match["pid"])):
            continue
        try:
            remove_path(os.path.join(folder, name))
        except OSError:  # not ours to remove after all (permissions): leave it
            pass


def remove_path(path):
    """Removes a file, a folder or a symbolic link (not what it points to), if still there.

    Another sweep may race us: what is already gone is no error.
    """
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def is_running(pid):
    """Whether a process with this id exists (one we may not signal counts)."""
    if pid == os.getpid() or os.name != "posix":  # on Windows, os.kill(pid, 0) is a Ctrl+C
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _first_missing(folder):
    """The outermost folder `os.makedirs(folder)` would create, or `None`."""
    missing = None
    while not os.path.exists(folder):
        missing = folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing
