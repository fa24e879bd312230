"""`python -m tests.running.paused_run MARKER BLOCK PASS hwprof-args...`: the real `hwprof` command line, but
paused after pass PASS of block BLOCK (both counted from 1): MARKER is written and the process waits there
until a signal asks the run to stop (the run then goes on to its next round's end and stops). A test that
waits for MARKER and then signals has interrupted the run mid-block by construction, however fast or slow the
machine is."""
import signal
import sys
from pathlib import Path

import hwprof.running.runner as runner
from hwprof.presentation.cli import main


def pausing(marker: Path, block: int, pass_: int):
    real = runner.measure_block
    seen = {"blocks": 0}

    def measure_block(b, s, sensors, probe, on_pass=lambda passes, completed: None):
        seen["blocks"] += 1
        mine = seen["blocks"]

        def hook(passes, completed):
            on_pass(passes, completed)
            if mine == block and passes == pass_:
                marker.write_text("paused\n")
                s.stop.wait(600)              # the run's own signal handler sets it
        return real(b, s, sensors, probe, hook)
    return measure_block


if __name__ == "__main__":
    # A test launched as a background job of a non-interactive shell starts with SIGINT ignored (POSIX), and
    # Python then installs no KeyboardInterrupt handler: the test's Ctrl-C would be lost. Restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    marker, block, pass_ = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    runner.measure_block = pausing(marker, block, pass_)
    sys.exit(main(sys.argv[4:]))
