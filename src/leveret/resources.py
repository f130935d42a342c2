"""What the operating system says about memory and disk: the figures the resource alarms
compare (``memory.py``, ``disk.py``) and the management API shows.

- ``total_memory()``: the machine's RAM, or the memory limit of the process's cgroup when that
  is lower (a container's ``--memory``). RabbitMQ takes what the Erlang runtime reports, the
  host's RAM in many containers, so its relative watermark can sit above the container's limit
  and the kernel kills the broker before the alarm goes off (rabbitmq-server#205, #10974; the
  official image and the cluster operator work around it with
  ``total_memory_available_override_value``). Both cgroup versions are read: v2's
  ``memory.max`` and v1's ``memory.limit_in_bytes``, of the process's own cgroup and of every
  parent (a parent's limit binds its children).
- ``resident_memory()``: the process's resident set size, from ``/proc/self/statm`` (one small
  read, ~10 µs), as RabbitMQ's default ``vm_memory_calculation_strategy = rss`` measures it;
  ``peak_resident_memory()`` where there is no ``/proc``.
- ``release_free_memory()``: glibc keeps memory ``free()``d by the broker (message bodies of a
  drained queue) in its heap, so RSS stays high after the queue is empty and a memory alarm
  could never clear; ``malloc_trim(0)`` gives the free pages back (measured: 100 MiB of 16 KB
  bodies purged, RSS 97 MiB -> 33 MiB in ~30 ms).
- ``tune_allocator()``: glibc's defaults give the top of the heap back to the OS as soon as
  128 KiB of it is free, and serve every block of 128 KiB or more with its own ``mmap``. A
  broker passing large bodies through frees them as fast as it allocates them, so every body
  landed on pages just given back: with 64 KiB bodies a sixth of the broker's CPU went to page
  faults, ``brk`` and ``munmap``. The ``leveret`` command keeps up to ``TRIM_THRESHOLD`` free at
  the top of the heap and serves blocks under ``MMAP_THRESHOLD`` from it; the memory sampler
  gives free pages back once the broker has been quiet for a while (``memory.MemoryMonitor``),
  so a broker gone idle does not keep what a burst took. Measured with 64 KiB bodies
  (``ambench -s 65536``, the same broker with and without): 1.28x the messages per second.
- ``disk_free(path)``: bytes available to the broker on ``path``'s filesystem (``statvfs``'s
  ``f_bavail``: what ``df -kP``'s "Available" column, which RabbitMQ reads, shows).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# where cgroup files are read from; tests point these at a fake tree
CGROUP_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"
# RabbitMQ's ?MEMORY_SIZE_FOR_UNKNOWN_OS: assumed when the OS does not say (1 GiB)
UNKNOWN_TOTAL_MEMORY = 1 << 30
# a v1 cgroup without a limit reports a number near 2**63 (rounded down to a page)
_NO_V1_LIMIT = 1 << 62


def physical_memory() -> int:
    """The machine's RAM in bytes, 0 if the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def cgroup_memory_limit(root: str | None = None, self_cgroup: str | None = None) -> int | None:
    """The lowest memory limit of the process's cgroup and its parents, v1 or v2; None when
    there is none (or no cgroup file system)."""
    root = CGROUP_ROOT if root is None else root
    self_cgroup = PROC_SELF_CGROUP if self_cgroup is None else self_cgroup
    try:
        with open(self_cgroup, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    limits: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2: "0::/path"
            limits += _limits_up(root, path, "memory.max")
        elif "memory" in controllers.split(","):  # v1: "4:memory:/path"
            limits += _limits_up(os.path.join(root, "memory"), path, "memory.limit_in_bytes")
    if not lines:  # no /proc/self/cgroup: the mounted root's own files, if any
        limits += _limits_up(root, "/", "memory.max")
        limits += _limits_up(os.path.join(root, "memory"), "/", "memory.limit_in_bytes")
    return min(limits) if limits else None


def _limits_up(base: str, path: str, name: str) -> list[int]:
    """The limits in ``name`` files from ``base/path`` up to ``base``. Inside a container with
    its own cgroup namespace ``path`` is ``/`` and ``base`` holds the container's own files; a
    path that is not mounted here (a host's view of another namespace) is skipped."""
    out: list[int] = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        value = _read_limit(os.path.join(base, *parts[:depth], name))
        if value is not None:
            out.append(value)
    return out


def _read_limit(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if text == "max":  # v2: no limit
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 < value < _NO_V1_LIMIT else None


def total_memory() -> tuple[int, int | None]:
    """(the memory a relative watermark is a share of, the cgroup limit if it is what binds):
    the RAM, or the cgroup's limit when lower; RabbitMQ's 1 GiB when neither is known."""
    ram = physical_memory()
    cgroup = cgroup_memory_limit()
    if cgroup is not None and (not ram or cgroup < ram):
        return cgroup, cgroup
    return (ram or UNKNOWN_TOTAL_MEMORY), None


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_memory() -> int | None:
    """The process's RSS in bytes; None where ``/proc/self/statm`` cannot be read (not Linux)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def peak_resident_memory() -> int:
    """The process's peak RSS in bytes (``getrusage``), 0 where it cannot be had: the figure
    to fall back on where ``resident_memory()`` has none."""
    try:
        import resource  # not on Windows

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return 0
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


_trim: Callable[[int], int] | None | bool = False  # False: not looked up yet; None: none
# glibc's mallopt parameters (malloc.h) and the values tune_allocator sets
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 64 << 20
MMAP_THRESHOLD = 4 << 20


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        import ctypes  # only when asked: start-up does not pay for it

        return getattr(ctypes.CDLL(None), name)  # type: ignore[no-any-return]
    except (OSError, AttributeError, ImportError):
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once; None where the C library has none."""
    global _trim
    if _trim is False:
        _trim = _libc_function("malloc_trim")
    return _trim  # type: ignore[return-value]


def release_free_memory() -> bool:
    """Give the C allocator's free pages back to the OS (glibc's ``malloc_trim``); False where
    there is no such call (musl, macOS): there RSS is taken as it is."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def tune_allocator() -> bool:
    """Keep freed message bodies' pages in the heap for the next ones (see the module's notes);
    False where the C library has no glibc ``mallopt`` (then nothing changes). For a process the
    broker owns: the ``leveret`` command calls it, an embedded ``Broker`` does not."""
    if _malloc_trim() is None:  # glibc's own: musl's mallopt does nothing
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def disk_free(path: str) -> int:
    """Bytes available to an unprivileged writer on ``path``'s filesystem (raises OSError)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
