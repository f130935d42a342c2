"""Start-up and idle cost: time from spawning the broker until its port accepts a connection,
and resident memory (VmRSS) one second after that, for Leveret and a cold RabbitMQ.

    python perf/startup.py                    # 5 measured runs of each: medians and ratios
    python perf/startup.py --no-rabbitmq      # Leveret alone
    python perf/startup.py --system-rabbitmq  # stop the local RabbitMQ and time that one

Leveret runs as ``python -m leveret --port N`` with a fresh data directory each run, without the
management API (``--no-management``) and with it (``--management-port`` a free port), the two
alternating. Its modules are compiled to bytecode first (``compileall`` into their
``__pycache__``), as ``pip install`` leaves an installed package: an editable checkout under
``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module from source at each start
(about 0.1 s more here), which no installed copy does. ``--no-bytecode`` measures that case
instead (an empty ``PYTHONPYCACHEPREFIX``, nothing written). Each round also times
``python -c pass`` and ``python -c "import asyncio, uvloop"``, the floor any asyncio broker
starts from, so a loaded machine shows in the figures. RabbitMQ, if
installed, runs by default as a private node: the installed ``rabbitmq-server`` with its own
node name, ports and data directory (and no plugins), so a RabbitMQ already serving 5672 to
tests keeps running. ``--system-rabbitmq`` instead stops the local node (``rabbitmqctl stop``),
times ``rabbitmq-server`` itself, and starts it again (``rabbitmq-server -detached``) if it was
running. Either way each RabbitMQ run is a fresh OS process on an existing data directory. One
unmeasured run of each broker comes first: it warms the page cache (and creates the private
node's database).

RSS is the broker's process tree: Leveret's Python process; RabbitMQ's beam.smp and its helpers
(erl_child_setup, inet_gethost, the disk monitor), not the launcher shells nor epmd.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LISTEN_TIMEOUT = 120.0
ERLANG_VM = "beam.smp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def process_tree(root: int) -> dict[int, str]:
    """pid -> command name of ``root`` and all its descendants, from /proc."""
    parent, name = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        parent[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
        name[int(entry.name)] = comm
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in name:
            tree[pid] = name[pid]
        todo.extend(p for p, pp in parent.items() if pp == pid)
    return tree


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def broker_rss_kib(root: int) -> int:
    """RSS of the broker under ``root``: the Erlang VM's subtree if there is one, else all."""
    tree = process_tree(root)
    vms = [pid for pid, comm in tree.items() if comm == ERLANG_VM]
    if vms:
        tree = process_tree(vms[0])
    return sum(rss_kib(pid) for pid in tree)


def measure(cmd: list[str], port: int, stop: Callable[[subprocess.Popen], None],
            env: dict[str, str] | None = None) -> tuple[float, int]:
    """Spawn ``cmd``; seconds until ``port`` accepts, and RSS in KiB one second later."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        while not port_open(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
            if time.perf_counter() - start > LISTEN_TIMEOUT:
                raise RuntimeError(f"{' '.join(cmd)} did not listen on {port}")
            time.sleep(0.005)
        listen = time.perf_counter() - start
        time.sleep(1.0)
        rss = broker_rss_kib(proc.pid)
    finally:
        stop(proc)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return listen, rss


def terminate(proc: subprocess.Popen) -> None:
    proc.terminate()


# ---------------------------------------------------------------------- the brokers

def compile_leveret() -> str:
    """Compile the ``leveret`` package that ``python -m leveret`` runs to bytecode beside its
    sources, as pip does when it installs a wheel; returns the package's directory."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("leveret")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("leveret is not importable: pip install -e . first")
    package = list(spec.submodule_search_locations)[0]
    if not compileall.compile_dir(package, quiet=1):
        print(f"warning: could not compile everything under {package}", file=sys.stderr)
    return package


def baseline(code: str) -> float:
    """Seconds for ``python -c CODE`` to run and exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


BASELINES = {"python -c pass": "pass", "import asyncio,uvloop": "import asyncio, uvloop"}


def leveret_runs(runs: int, env: dict[str, str] | None = None,
                 floors: dict[str, list[float]] | None = None
                 ) -> dict[str, list[tuple[float, int]]]:
    """Leveret without the management API and with it (on a free port), runs alternating;
    the baselines of each round go to ``floors``."""
    out: dict[str, list[tuple[float, int]]] = {"leveret": [], "leveret+api": []}
    for i in range(runs + 1):
        if i and floors is not None:
            for label, code in BASELINES.items():
                floors.setdefault(label, []).append(baseline(code))
        for name in (("leveret", "leveret+api") if i % 2 else ("leveret+api", "leveret")):
            port = free_port()
            # "+api": the management API and the Prometheus metrics on, as a default start
            # (on free ports: the local RabbitMQ holds 15672 and 15692)
            api = (["--management-port", str(free_port()), "--prometheus-port",
                    str(free_port())] if name == "leveret+api"
                   else ["--no-management", "--no-prometheus"])
            # A fresh data dir each run: Leveret creates its store the way a cold start would,
            # and the user's default one is never touched.
            with tempfile.TemporaryDirectory(prefix="leveret-startup-") as data_dir:
                cmd = [sys.executable, "-m", "leveret", "--port", str(port), "--log-level",
                       "warning", "--data-dir", data_dir, *api]
                res = measure(cmd, port, terminate, env)
            if i:  # the first run only warms the page cache
                out[name].append(res)
    return out


def rabbitmqctl(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["rabbitmqctl", *args], env=env, capture_output=True, timeout=120)


@contextlib.contextmanager
def private_rabbitmq() -> Iterator[tuple[dict[str, str], int, Callable[..., None]]]:
    """The installed rabbitmq-server set up as a node of its own beside any running one:
    yields the environment that starts it (``rabbitmq-server``), its port, and what stops it.
    Its data directory is removed afterwards."""
    tmp = tempfile.mkdtemp(prefix="leveret-perf-rabbitmq-")
    try:
        Path(tmp, "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:  # the launcher runs the node as the rabbitmq user
            user = pwd.getpwnam("rabbitmq")
            for path in (tmp, os.path.join(tmp, "enabled_plugins")):
                os.chown(path, user.pw_uid, user.pw_gid)
        port, dist_port = free_port(), free_port()
        node = f"leveret-perf-{os.getpid()}@{socket.gethostname().split('.')[0]}"
        env = dict(os.environ, RABBITMQ_NODENAME=node, RABBITMQ_NODE_PORT=str(port),
                   RABBITMQ_DIST_PORT=str(dist_port),
                   RABBITMQ_MNESIA_BASE=os.path.join(tmp, "mnesia"),
                   RABBITMQ_LOG_BASE=os.path.join(tmp, "log"),
                   RABBITMQ_PID_FILE=os.path.join(tmp, "pid"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(tmp, "enabled_plugins"))

        def stop(proc: subprocess.Popen | None = None) -> None:
            rabbitmqctl("-n", node, "stop", env=env)

        yield env, port, stop
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def private_rabbitmq_runs(runs: int) -> list[tuple[float, int]]:
    """The installed rabbitmq-server as a node of its own beside any running one."""
    with private_rabbitmq() as (env, port, stop):
        out = []
        for i in range(runs + 1):
            res = measure(["rabbitmq-server"], port, stop, env)
            if i:  # the first run creates the node's database
                out.append(res)
        return out


def system_rabbitmq_runs(runs: int) -> list[tuple[float, int]]:
    """The local node itself: stopped, timed, and left running again if it was running."""
    was_running = port_open(5672)
    if was_running:
        print("stopping the local RabbitMQ (rabbitmqctl stop); it is restarted afterwards",
              file=sys.stderr)
        rabbitmqctl("stop")
        if not wait_until(lambda: not port_open(5672), 60):
            sys.exit("the local RabbitMQ did not stop")

    def stop(proc: subprocess.Popen) -> None:
        rabbitmqctl("stop")

    out = []
    try:
        for i in range(runs + 1):
            res = measure(["rabbitmq-server"], 5672, stop)
            if i:
                out.append(res)
    finally:
        if was_running:
            subprocess.run(["rabbitmq-server", "-detached"], capture_output=True)
            if not wait_until(lambda: port_open(5672), LISTEN_TIMEOUT):
                print("warning: the local RabbitMQ did not come back on 5672", file=sys.stderr)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--runs", type=int, default=5, help="measured runs of each broker")
    p.add_argument("--no-bytecode", action="store_true",
                   help="start Leveret without its compiled bytecode (every module compiled "
                        "from source at each start, as an editable checkout under "
                        "PYTHONDONTWRITEBYTECODE=1)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--no-rabbitmq", action="store_true", help="measure Leveret alone")
    who.add_argument("--system-rabbitmq", action="store_true",
                     help="measure the local RabbitMQ node itself (stops and restarts it)")
    args = p.parse_args()

    env = None
    no_pycache = None
    if args.no_bytecode:
        no_pycache = tempfile.mkdtemp(prefix="leveret-no-pycache-")
        env = dict(os.environ, PYTHONPYCACHEPREFIX=no_pycache, PYTHONDONTWRITEBYTECODE="1")
        print("Leveret without bytecode: every module compiled at each start", file=sys.stderr)
    else:
        compile_leveret()
    floors: dict[str, list[float]] = {}
    try:
        results = leveret_runs(args.runs, env, floors)
    finally:
        if no_pycache is not None:
            shutil.rmtree(no_pycache, ignore_errors=True)
    if args.no_rabbitmq:
        pass
    elif not shutil.which("rabbitmq-server"):
        print("rabbitmq-server is not installed: Leveret alone (ci/install_rabbitmq.sh)",
              file=sys.stderr)
    elif args.system_rabbitmq:
        results["rabbitmq"] = system_rabbitmq_runs(args.runs)
    else:
        results["rabbitmq"] = private_rabbitmq_runs(args.runs)

    print(f"{'broker':<12} {'start-to-listen s':>18} {'idle RSS MiB':>13}   "
          f"(median of {args.runs})")
    med = {}
    for name, rows in results.items():
        t = statistics.median(r[0] for r in rows)
        m = statistics.median(r[1] for r in rows) / 1024
        med[name] = (t, m)
        print(f"{name:<12} {t:>18.3f} {m:>13.1f}")
    for label, times in floors.items():
        print(f"{label:<22} {statistics.median(times):>8.3f}   (same rounds, for the load)")
    (at, am), (bt, bm) = med["leveret+api"], med["leveret"]
    print(f"management API on/off: start-to-listen {at / bt:.2f}x, idle RSS "
          f"+{am - bm:.1f} MiB")
    if "rabbitmq" in med:
        (lt, lm), (rt, rm) = med["leveret"], med["rabbitmq"]
        print(f"leveret/rabbitmq: start-to-listen {lt / rt:.2f}x ({rt / lt:.1f}x faster), "
              f"idle RSS {lm / rm:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
