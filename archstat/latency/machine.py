"""What a latency was measured on: hardware, thread count and library versions.

A timing without its machine is not a result. :func:`environment` returns the facts
every latency row carries (CPU model, cores, threads, device name, torch and
torchvision versions), so a CSV can be compared with another one years later.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch

from archstat.errors import ArchstatError

__all__ = ["environment", "cpu_model", "check_device", "cuda_indices", "load_average", "other_busy_processes",
           "contention_note", "ENVIRONMENT_COLUMNS", "DeviceUnavailableError"]

#: Keys of :func:`environment`, in the order they are written.
ENVIRONMENT_COLUMNS = ("device_name", "cpu", "logical_cores", "usable_cores", "threads", "load_avg_1m",
                       "other_busy", "under_load", "torch", "torchvision", "torch_cuda", "python", "os")


class DeviceUnavailableError(ArchstatError):
    """The requested device (e.g. ``cuda``) is not available on this machine."""


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def check_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"``/``"cuda:N"``, refusing a GPU that is not there (one line)."""
    if device == "cpu":
        return device
    if device.split(":")[0] != "cuda":
        raise ArchstatError(f"device must be 'cpu' or 'cuda[:N]', not {device!r}")
    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        raise DeviceUnavailableError(
            f"--device {device}: CUDA is not available here (torch {torch.__version__}, {built}, no GPU visible); "
            "use --device cpu")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise DeviceUnavailableError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def cuda_indices(device: str) -> list[int]:
    """The CUDA device indices ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``) runs on: whose
    random generators :func:`~archstat.counting.inputs.seeded` must fork besides the CPU's."""
    return [torch.device(device).index or 0] if device.startswith("cuda") else []


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute system load average (None where the OS does not report one).

    Recorded with every timing: on a machine whose load exceeds its cores, other
    processes competed for the CPU and the times are not the model's alone.
    """
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def other_busy_processes() -> int | None:
    """Other processes running on a CPU right now (state ``R`` in ``/proc/<pid>/stat``; Linux only).

    Unlike the load average this is instantaneous and excludes this process's own
    threads. On a machine with as many threads busy as cores, a single competitor is
    enough to stall OpenMP's barriers and inflate a forward pass many times over.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    me, busy = os.getpid(), 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        busy += stat[stat.rindex(")") + 2] == "R"
    return busy


def contention_note(env: dict) -> str | None:
    """A warning line when the recorded load says other processes shared the CPU, else None.

    Contention: another process was running when sampled (``other_busy``), or the
    1-minute load exceeded the usable cores by more than half a core. GPU runs are
    not judged (their time is not spent on the CPU).
    """
    if str(env.get("device_name", "")) != env.get("cpu"):
        return None
    load, busy, cores = env.get("load_avg_1m"), env.get("other_busy"), env.get("usable_cores") or 1
    if (busy or 0) > 0 or (load is not None and load > cores + 0.5):
        return (f"{busy} other process(es) running and load {load} on {cores} usable core(s) while timing: the "
                "times are inflated and noisy; rerun on a quiet machine")
    return None


def environment(device: str = "cpu", threads: int | None = None,
                other_busy: int | None = None) -> dict[str, str | int | float | None]:
    """The machine and software a measurement on ``device`` ran with.

    ``threads`` is the intra-op thread count used (default: torch's current setting);
    ``load_avg_1m`` is the system load when this is called (right after the timing);
    ``other_busy`` the most other running processes seen during the timing (sampled
    now when not given, see :func:`other_busy_processes`); ``under_load`` whether those
    say the CPU was shared (:func:`contention_note`), so every latency row says so itself.
    """
    import torchvision  # type: ignore[import-untyped]

    on_gpu = device.startswith("cuda")
    env: dict[str, str | int | float | None] = {
        "device_name": torch.cuda.get_device_name(torch.device(device)) if on_gpu else cpu_model(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": _usable_cores(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "load_avg_1m": load_average(),
        "other_busy": other_busy if other_busy is not None else other_busy_processes(),
        "under_load": None,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_cuda": torch.version.cuda or "",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }
    env["under_load"] = contention_note(env) is not None
    return env
