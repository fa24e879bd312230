class BadInput(Exception):
    """Input the user can fix (flag, suite file, run directory). The CLI prints it on one line and exits 2."""
