"""A job stopped with SIGTERM (kill, docker stop, a CI timeout) stops the server it started."""

import os
import signal
import subprocess
import sys
import textwrap

# The shape of `askwise train`/`eval`: asyncio.run around a block that starts a process in
# its own session (as VLLMServer does) and stops it on the way out.
JOB = textwrap.dedent("""
    import asyncio, subprocess, sys
    from askwise.cli import exit_on_sigterm

    exit_on_sigterm()

    async def main():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 start_new_session=True)
        print(child.pid, flush=True)
        try:
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


def test_sigterm_unwinds_and_stops_the_child():
    job = subprocess.Popen([sys.executable, "-c", JOB], stdout=subprocess.PIPE, text=True)
    child = int(job.stdout.readline())
    try:
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=30) == 128 + signal.SIGTERM
        assert not alive(child)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
        if job.poll() is None:
            job.kill()
