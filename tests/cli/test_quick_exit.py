"""A command's process ends at once with its exit code, having run what a normal exit runs that
matters: the atexit handlers and the standard streams' last bytes."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent("""
        import atexit, sys, threading
        from fcnn_opt.cli.quick_exit import exit_quickly
        atexit.register(lambda: print("atexit ran", flush=True))
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_exit_code_output_and_atexit_handlers_survive():
    done = _run("""
        sys.stdout.write("x" * 200_000)  # more than a pipe's buffer, left unflushed
        sys.stderr.write("last words")
        exit_quickly(3)
        print("never printed")
    """)
    assert done.returncode == 3
    assert done.stdout.startswith("x" * 200_000) and done.stdout.endswith("atexit ran\n")
    assert "never printed" not in done.stdout
    assert done.stderr == "last words"


def test_none_is_success():
    assert _run("exit_quickly(None)").returncode == 0


def test_a_live_thread_gets_a_normal_exit():
    """A non-daemon thread still working is waited for, as a normal exit would."""
    done = _run("""
        import time
        def work():
            time.sleep(0.5)
            print("thread finished", flush=True)
        threading.Thread(target=work).start()
        sys.exit(exit_quickly(4))
    """)
    assert done.returncode == 4
    assert done.stdout.splitlines() == ["thread finished", "atexit ran"]


def test_the_command_line_ends_with_its_code(tmp_path):
    """``python -m fcnn_opt`` goes through it: a usage error still exits 2, with its one line."""
    done = subprocess.run([sys.executable, "-m", "fcnn_opt", "study", "--config", str(tmp_path / "missing.toml"),
                           "--storage", f"sqlite:///{tmp_path}/s.db"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot read the study file" in done.stderr and "Traceback" not in done.stderr
