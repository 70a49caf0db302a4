"""A job stopped with SIGTERM (kill, docker stop, a CI timeout) or Ctrl-C stops the server it
started."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

# The shape of `askwise train`/`eval`: asyncio.run around a block that starts a process in
# its own session (as VLLMServer does) and stops it on the way out.
JOB = textwrap.dedent("""
    import asyncio, signal, subprocess, sys
    from askwise.cli import exit_on_sigterm

    # A job started from a terminal has Python's Ctrl-C handler; a test suite launched in the
    # background by a non-interactive shell hands its children SIGINT ignored instead.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    exit_on_sigterm()

    async def main():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 start_new_session=True)
        try:
            print(child.pid, flush=True)  # inside the try: the test signals once it reads this
            await asyncio.sleep(120)
        finally:
            child.terminate()
            child.wait()

    asyncio.run(main())
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# SIGTERM leaves through SystemExit(143); Ctrl-C through KeyboardInterrupt, after which Python
# ends itself with SIGINT. Either way the finally has run first.
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 128 + signal.SIGTERM),
                                            (signal.SIGINT, -signal.SIGINT)])
def test_stopping_the_job_stops_the_child(signum, status):
    job = subprocess.Popen([sys.executable, "-c", JOB], stdout=subprocess.PIPE, text=True)
    child = int(job.stdout.readline())
    try:
        job.send_signal(signum)
        assert job.wait(timeout=30) == status
        assert not alive(child)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        if job.poll() is None:
            job.kill()
