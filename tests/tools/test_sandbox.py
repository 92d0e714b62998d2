"""The code sandbox against real attacks: each is contained, reported, and the host unharmed.

Every test runs the real sandbox (real processes, namespaces, cgroups, rlimits). Where
the host grants a weaker isolation level, a test whose attack that level cannot stop
is skipped with the reason taken from the sandbox's own isolation report, so a pass
always means "contained here", never "assumed".
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmkit.tools.errors import SandboxError
from slmkit.tools.sandbox import IsolationReport, PythonSandbox, SandboxConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sb() -> Iterator[PythonSandbox]:
    with PythonSandbox(timeout_s=5, memory_mb=192, max_processes=32, max_file_mb=8) as box:
        yield box


def _sandbox_processes(report: IsolationReport) -> set[int]:
    """Host pids running as the sandbox uid (when that uid is not the host's)."""
    if report.uid == os.geteuid():
        return set()
    found = set()
    for entry in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if int(uid_line.split()[1]) == report.uid:
            found.add(int(entry))
    return found


# ---------------------------------------------------------------- the basics


def test_state_persists_across_runs_and_last_expression_is_the_value(sb: PythonSandbox) -> None:
    first = sb.run("x = 2**10\nprint(x)")
    assert (first.stdout, first.error, first.ok) == ("1024\n", None, True)
    second = sb.run("print(x + 1)\nx * 2")
    assert second.stdout == "1025\n"
    assert second.value == "2048"


@pytest.mark.parametrize("code", [b"print(1)", None, 123, ["print(1)"]])
def test_code_that_is_not_a_str_is_refused_not_run_as_nothing(
    sb: PythonSandbox, code: object
) -> None:
    with pytest.raises(SandboxError, match="code must be a str") as err:
        sb.run(code)  # type: ignore[arg-type]
    assert err.value.hint
    assert sb.run("print(2)").stdout == "2\n", "the sandbox still runs code"


def test_errors_come_back_with_the_users_traceback_only(sb: PythonSandbox) -> None:
    r = sb.run("def f():\n    return 1 / 0\nf()")
    assert not r.ok and not r.killed
    assert r.error is not None and r.error.endswith("ZeroDivisionError: division by zero")
    assert 'File "<cell-1>", line 2, in f' in r.error
    assert "_child.py" not in r.error  # the runner's own frames are hidden
    syntax = sb.run("def g(:\n    pass")
    assert syntax.error is not None and "SyntaxError" in syntax.error
    assert sb.run("print('still fine')").stdout == "still fine\n"


def test_isolation_report_matches_what_the_code_sees(sb: PythonSandbox) -> None:
    report = sb.isolation
    seen = sb.run("import os\nprint(os.getuid(), os.getgid(), os.getcwd())").stdout.split()
    assert [int(seen[0]), int(seen[1]), seen[2]] == [report.uid, report.gid, report.workdir]
    assert report.env_scrubbed and report.no_new_privs and not report.capabilities
    assert report.rlimits["FSIZE"] == str(8 << 20)
    if os.geteuid() == 0:
        assert report.uid != 0
    if report.level == "namespaces" and report.cgroup_memory and report.cgroup_pids:
        assert report.warnings == ()
    else:
        assert report.warnings  # a fallback always says what it lacks


# ---------------------------------------------------------------- attacks


def test_infinite_loop_times_out_and_the_next_run_restarts(sb: PythonSandbox) -> None:
    sb.run("x = 1")
    r = sb.run("while True:\n    pass", timeout_s=1)
    assert r.timed_out and r.killed and not r.ok
    assert r.error is not None and "wall-clock" in r.error
    assert 0.9 <= r.duration_s < 10
    assert not sb.alive
    after = sb.run("print('x' in globals())")
    assert after.restarted and after.stdout == "False\n"  # fresh state, and it says so


def test_cpu_time_limit_kills_a_busy_loop() -> None:
    with PythonSandbox(timeout_s=10, cpu_time_s=0.5) as box:
        r = box.run("while True:\n    pass")
    assert r.timed_out and r.killed
    assert r.error is not None and "CPU time" in r.error


def test_memory_bomb_is_stopped(sb: PythonSandbox) -> None:
    r = sb.run("hog = []\nwhile True:\n    hog.append(bytearray(10**7))")
    assert not r.ok
    assert r.error is not None and "MemoryError" in r.error
    if sb.isolation.cgroup_memory:
        assert r.killed  # the cgroup's OOM killer, reported as such
    assert sb.run("print(sum(range(10)))").stdout == "45\n"  # usable again afterwards


def test_fork_bomb_is_capped_and_cleaned_up() -> None:
    box = PythonSandbox(timeout_s=2, max_processes=16)
    report = box.isolation
    if not (report.cgroup_pids or report.user_ns) and report.uid == os.geteuid():
        box.close()
        pytest.skip("no pids cgroup and no separate uid: " + "; ".join(report.warnings))
    before = _sandbox_processes(report)
    r = box.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    )
    assert r.timed_out and r.killed
    assert _sandbox_processes(report) <= before  # nothing of the bomb survived the kill
    plain = box.run("import os\nwhile True:\n    os.fork()")  # gives up at the limit by itself
    assert plain.error is not None and "BlockingIOError" in plain.error
    box.close()
    assert _sandbox_processes(report) <= before
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork


def test_a_1gb_write_hits_the_file_size_limit(sb: PythonSandbox) -> None:
    r = sb.run(
        "with open('big.bin', 'wb') as f:\n"
        "    for _ in range(1024):\n"
        "        f.write(b'\\0' * 2**20)"
    )
    assert r.error is not None and "File too large" in r.error
    assert not r.killed
    size = sb.run("import os\nos.path.getsize('big.bin')").value
    assert size is not None and int(size) <= 8 << 20
    workdir = sb.isolation.workdir
    sb.close()
    if not sb.isolation.private_tmp:  # the work dir was on the host's disk: it is gone
        assert not os.path.exists(workdir)


def test_no_network_to_a_host_server(sb: PythonSandbox) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        r = sb.run(
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
            "s.settimeout(2)\n"
            f"s.connect(('127.0.0.1', {port}))\n"
            "print('connected')"
        )
        assert "connected" not in r.stdout
        assert r.error is not None and ("unreachable" in r.error or "Permission" in r.error)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever arrived
    finally:
        server.close()
    assert sb.isolation.network in ("netns", "blocked-sockets")


def test_parent_environment_secrets_are_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLMKIT_TEST_SECRET", "hunter2-do-not-leak")
    with PythonSandbox() as box:
        if not box.isolation.pid_ns and box.isolation.uid == os.geteuid():
            pytest.skip("same uid, no pid namespace: " + "; ".join(box.isolation.warnings))
        r = box.run(
            "import os\n"
            "print('in_environ', 'SLMKIT_TEST_SECRET' in os.environ)\n"
            "leaks = []\n"
            f"for pid in [{os.getpid()}, os.getppid(), 1] + "
            "[int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
            "    try:\n"
            "        data = open(f'/proc/{pid}/environ', 'rb').read()\n"
            "    except OSError:\n"
            "        continue\n"
            "    if b'SLMKIT_TEST_SECRET=' in data:\n"
            "        leaks.append(pid)\n"
            "print('leaks', leaks)"
        )
    assert r.error is None
    assert "in_environ False" in r.stdout
    assert "leaks []" in r.stdout
    assert "hunter2" not in r.stdout


def test_writes_outside_the_work_dir_fail_or_stay_private(sb: PythonSandbox) -> None:
    targets = [Path("/tmp/slmkit_escape_test"), REPO / "slmkit_escape_test"]
    for target in targets:
        target.unlink(missing_ok=True)
    if not sb.isolation.mount_ns:
        pytest.skip("no mount namespace: " + "; ".join(sb.isolation.warnings))
    code = "results = {}\n"
    for target in targets:
        code += (
            "try:\n"
            f"    open({str(target)!r}, 'w').write('escaped')\n"
            f"    results[{str(target)!r}] = 'written'\n"
            "except OSError as exc:\n"
            f"    results[{str(target)!r}] = type(exc).__name__\n"
        )
    r = sb.run(code + "results")
    assert r.error is None and r.value is not None
    sb.close()
    for target in targets:
        assert not target.exists(), f"{target} leaked onto the host ({r.value})"


def test_the_code_cannot_kill_the_host(sb: PythonSandbox) -> None:
    if not sb.isolation.pid_ns and sb.isolation.uid == os.geteuid():
        pytest.skip("same uid, no pid namespace: " + "; ".join(sb.isolation.warnings))
    sb.run("x = 'state'")
    r = sb.run(
        "import os, signal\n"
        f"for pid in ({os.getpid()}, os.getppid(), 1):\n"
        "    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):\n"
        "        try:\n"
        "            os.kill(pid, sig)\n"
        "        except OSError as exc:\n"
        "            if pid != 1:\n"
        "                print(pid, type(exc).__name__)\n"
    )
    assert r.error is None, r.error
    assert f"{os.getpid()} " in r.stdout  # signalling the host pid failed, every time
    if sb.isolation.pid_ns:  # "every process I may signal": only its own, in its namespace
        sb.run("import os\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass")
    # We are still here, and so is the sandbox's parent: same sandbox, same state.
    after = sb.run("print(x)")
    assert after.stdout == "state\n" and not after.restarted


def test_a_forged_message_kills_only_the_sandbox(sb: PythonSandbox) -> None:
    r = sb.run(
        "import os, struct\n"
        "for fd in range(3, 4096):\n"
        "    try:\n"
        "        os.write(fd, struct.pack('>I', 2**31) + b'{')\n"
        "    except OSError:\n"
        "        pass\n"
        "import time\n"
        "time.sleep(3)"
    )
    assert r.killed and r.error is not None and "protocol" in r.error
    assert sb.run("print(1)").restarted


# ---------------------------------------------------------------- features


def test_fork_copies_state_and_then_diverges(sb: PythonSandbox) -> None:
    sb.run("x = [1, 2]\nopen('a.txt', 'w').write('a')")
    other = sb.fork()
    try:
        assert other.run("print(x)").stdout == "[1, 2]\n"
        r = other.run(
            "import os\ndel x\nos.remove('a.txt')\nopen('b.txt', 'w').write('b')\n"
            "sorted(os.listdir('.'))"
        )
        assert r.value == "['b.txt']"
        original = sb.run("import os\nprint(x, sorted(os.listdir('.')))")
        assert original.stdout == "[1, 2] ['a.txt']\n"
        sb.run("x.append(3)")
        assert other.run("print('x' in globals())").stdout == "False\n"
        assert other.isolation.cgroup_memory == sb.isolation.cgroup_memory
        sb.close()  # the copy outlives the original
        assert other.run("print('alive')").stdout == "alive\n"
        crash = other.run("import os\nos._exit(3)")
        assert crash.killed and crash.error is not None and "code 3" in crash.error
    finally:
        other.close()


def test_host_tools_are_callable_through_the_json_channel() -> None:
    calls: list[tuple[object, ...]] = []

    def search(query: str, k: int = 2) -> list[dict[str, object]]:
        """Search the corpus."""
        calls.append((query, k))
        return [{"rank": i, "text": f"{query} {i}"} for i in range(k)]

    def broken() -> None:
        raise ValueError("backend down")

    def exits() -> None:  # written for a command line: must not end the host
        raise SystemExit(2)

    tools = {"search": search, "broken": broken, "exits": exits}
    with PythonSandbox(tools=tools) as box:
        r = box.run(
            "hits = search('python', k=3)\n"
            "print(len(hits), hits[2]['text'])\n"
            "print(search.__doc__)\n"
            "try:\n"
            "    broken()\n"
            "except ToolCallError as exc:\n"
            "    print('tool error:', exc)\n"
            "try:\n"
            "    search(object())\n"
            "except TypeError as exc:\n"
            "    print('not JSON')\n"
            "try:\n"
            "    exits()\n"
            "except ToolCallError as exc:\n"
            "    print('tool error:', exc)"
        )
    assert r.error is None, r.error
    lines = r.stdout.splitlines()
    assert lines[0] == "3 python 2"
    assert lines[1] == "Search the corpus."
    assert lines[2] == "tool error: broken() failed on the host: ValueError: backend down"
    assert lines[3] == "not JSON"
    assert lines[4] == "tool error: exits() failed on the host: SystemExit: 2"
    assert calls == [("python", 3)]
    assert r.tool_calls == ("search", "broken", "exits")


def test_final_answer_records_and_stops(sb: PythonSandbox) -> None:
    r = sb.run("print('working')\nfinal_answer({'total': 42})\nprint('not reached')")
    assert r.finished and r.final_answer == {"total": 42}
    assert r.ok and r.stdout == "working\n"
    caught = sb.run("try:\n    final_answer(7)\nexcept Exception:\n    print('swallowed')")
    assert caught.finished and caught.final_answer == 7 and "swallowed" not in caught.stdout
    sb.run("def twice(x):\n    return 2 * x")
    handed = sb.run("final_answer(twice)")  # a function is handed in as its code
    assert handed.final_answer == "def twice(x):\n    return 2 * x"
    assert not sb.run("print(1)").finished


def test_restart_after_a_crash_without_auto_restart() -> None:
    with PythonSandbox(auto_restart=False) as box:
        box.run("x = 1")
        crash = box.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
        assert crash.killed and crash.error is not None and "SIGSEGV" in crash.error
        assert not box.alive
        dead = box.run("print(1)")
        assert not dead.ok and dead.error is not None and "restart()" in dead.error
        box.restart()
        fresh = box.run("print('x' in globals())")
        assert fresh.stdout == "False\n" and not fresh.restarted


def test_stdout_is_capped_with_a_marker() -> None:
    with PythonSandbox(max_output_bytes=1000) as box:
        r = box.run("print('x' * 100_000)\nimport sys\nsys.stderr.write('e' * 5000)")
        assert r.truncated
        assert r.stdout.startswith("x" * 1000)
        assert "more bytes of stdout cut" in r.stdout and len(r.stdout) < 1200
        assert "more bytes of stderr cut" in r.stderr
        assert box.run("print('ok')").stdout == "ok\n"  # nothing left over in the pipe


def test_close_removes_everything_and_refuses_further_use() -> None:
    box = PythonSandbox()
    report = box.isolation
    before = _sandbox_processes(report)
    started = box.run("import subprocess\np = subprocess.Popen(['sleep', '60'])")
    assert started.error is None, started.error
    if report.uid != os.geteuid():
        assert len(_sandbox_processes(report)) > len(before)
    box.close()
    box.close()  # idempotent
    assert _sandbox_processes(report) <= before
    with pytest.raises(SandboxError):
        box.run("print(1)")


def test_rlimits_fallback_level_reports_its_gaps() -> None:
    with PythonSandbox(isolation="rlimits", max_file_mb=1) as box:
        report = box.isolation
        assert report.level == "rlimits" and not report.pid_ns and not report.mount_ns
        assert report.network == "blocked-sockets"
        assert any("ctypes" in w for w in report.warnings)
        assert any("no private filesystem" in w for w in report.warnings)
        net = box.run("import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)")
        assert net.error is not None and "PermissionError" in net.error
        big = box.run("open('f', 'wb').write(b'0' * (2 << 20))")
        assert big.error is not None and "File too large" in big.error
        workdir = report.workdir
        assert os.path.isdir(workdir)
    assert not os.path.exists(workdir)


def test_bad_options_are_refused_with_a_hint() -> None:
    with pytest.raises(SandboxError, match="invalid sandbox options"):
        PythonSandbox(timeout_s=-1)
    with pytest.raises(SandboxError, match="cannot be a sandbox tool name"):
        PythonSandbox(tools={"final_answer": print})
    with pytest.raises(SandboxError, match="invalid sandbox options"):
        PythonSandbox(config=SandboxConfig(), no_such_option=1)
