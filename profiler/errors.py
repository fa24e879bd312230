class BadInput(Exception):
    """Input the user can fix (flag, suite file, run directory). The CLI prints it on one line and exits 2."""


class OutputError(OSError):
    """An output could not be written (a full or read-only disk), named by the file meant, not a temp file. A
    run stops at once, with what it measured on disk and its directory resumable; `run_dir` names it (None
    outside a run). An OSError still, so code that tolerates a failed write tolerates this one."""

    def __init__(self, path, error: OSError, run_dir=None):
        reason = error.strerror or error.__class__.__name__
        super().__init__(f"cannot write {path}: {reason}")
        self.errno, self.strerror, self.filename = error.errno, reason, str(path)
        self.path, self.error, self.run_dir = path, error, run_dir

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.strerror}"
