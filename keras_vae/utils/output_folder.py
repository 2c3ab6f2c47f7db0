"""An output folder's checks and lock, without TensorFlow: the CLI takes them before it loads."""

import json
import os

from keras_vae.utils.images import file_in_the_way


def check_output_folder(output):
    """Raises unless `output` is a folder or can be made one (no file at it or above it)."""
    blocker = file_in_the_way(os.path.join(output, "model.keras"))
    if blocker is None:
        return
    if blocker == os.path.abspath(output):
        raise ValueError(
            "Expected output to be a folder or a new path. "
            f"Received: output={output!r} (an existing file)"
        )
    raise ValueError(
        f"Expected output in a folder. Received: output={output!r} ({blocker} is a file)"
    )


class FolderInUseError(RuntimeError):
    """Raised when another process holds the lock of an output folder."""


class RunLock:
    """The lock of an output folder: one `train` writes into it at a time.

    The lock is an advisory `flock` on `<folder>/.keras-vae.lock`, which
    holds the PID of the process that took it. The system releases it when
    that process ends however it ends (a crash, `kill -9`), so a stale lock
    never blocks a folder: the next run takes it. On systems without
    `fcntl` (Windows) the folder is not locked.

    Within the process that holds it, the lock is re-entrant: `keras-vae
    train` takes it before TensorFlow loads (so a second run on the folder
    is refused at once), and `train_model` takes it again inside. It is let
    go when the outermost holder releases it.

    Args:
        folder: str. The output folder (created if missing).

    Example:

    >>> with RunLock("runs/mnist-mlp"):  # doctest: +SKIP
    ...     train_into("runs/mnist-mlp")
    """

    NAME = ".keras-vae.lock"
    # Lock file (real path) -> [open file, holders, PID] of the locks this process holds.
    _held = {}

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, self.NAME)
        self._key = None

    def acquire(self):
        """Takes the lock; raises `FolderInUseError` if another live process holds it."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            return self
        created = _missing_folders(self.folder)
        os.makedirs(self.folder, exist_ok=True)
        key = os.path.realpath(self.path)
        held = self._held.get(key)
        if held is not None and held[2] == os.getpid():
            held[1] += 1
            self._key = key
            return self
        f = self._open_locked(fcntl)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._held[key] = [f, 1, os.getpid(), created]
        self._key = key
        return self

    def _open_locked(self, fcntl):
        """The lock file, open and locked; raises `FolderInUseError` if another process holds it."""
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise FolderInUseError(
                f"Expected an output folder that no other run is writing to. Received: "
                f"output={self.folder!r}, in use by the run of process {holder} "
                "(wait for it to end, or choose another --output)"
            ) from None
        except BaseException:
            f.close()
            raise
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(f.fileno()).st_ino:
            # The last holder removed the file (and maybe the folder) before we
            # locked it: lock the file that is there now.
            f.close()
            os.makedirs(self.folder, exist_ok=True)
            return self._open_locked(fcntl)
        return f

    def release(self):
        """Lets the lock go (the outermost holder's release).

        If the lock made the folder and nothing else was written into it, the
        lock file and the folders it made are removed; otherwise the lock
        file stays. A process that opened a removed lock
        file meanwhile sees it gone once it holds the lock and locks the new
        one (`_open_locked`).
        """
        if self._key is None:
            return
        held = self._held[self._key]
        held[1] -= 1
        if held[1] == 0:
            f, _, _, created = held
            if created and os.listdir(self.folder) == [self.NAME]:
                # A run that wrote nothing (refused, or failed before its first
                # file) leaves no folder it made.
                os.remove(self.path)
                for folder in created:
                    try:
                        os.rmdir(folder)
                    except OSError:
                        break
            f.close()
            del self._held[self._key]
        self._key = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def _missing_folders(folder):
    """The folders that `os.makedirs(folder)` would create, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


# The file of `<output>/backup` that commits a stopped run's epochs (`tasks.run_folder`).
STATE_FILE = "state.json"


def finished_epochs(output):
    """The epochs that the backup in `output` holds (0 if none): where a resumed run starts."""
    try:
        with open(os.path.join(output, "backup", STATE_FILE)) as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
