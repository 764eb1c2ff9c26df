"""Building the C++ kernels on first use, portably.

The binary is compiled for the CPU it runs on (``-march=native``), so the cache folder is keyed by
that CPU's instruction-set flags, the compiler flags, torch's version and the source's hash: a
home directory shared between machines never hands a binary to a CPU that lacks its instructions.
No ``-ffast-math``: the kernels keep IEEE semantics, so NaN and ±Inf inputs give what the PyTorch
path gives (max-pooling starts from a ``-inf`` sentinel that fast-math could fold away);
``-fno-trapping-math`` (no floating-point exceptions are ever read) lets the compiler vectorise the
branch-free selects of the HA soft attention loop, which ``-ftrapping-math`` forbids. OpenMP
(which ATen's ``parallel_for`` uses) is asked for only where the compiler supports ``-fopenmp``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Optional

SOURCE = Path(__file__).with_name("csrc") / "fused_kernels.cpp"
BASE_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math"]

_state: dict = {"module": None, "error": None}


def cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux ``/proc/cpuinfo``), else the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _compiler() -> Optional[str]:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def supports_openmp(compiler: str) -> bool:
    """Whether ``compiler -fopenmp`` builds a trivial program (Apple clang does not)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "omp.cpp"
        src.write_text("#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        try:
            done = subprocess.run([compiler, "-fopenmp", str(src), "-o", str(Path(tmp) / "omp")], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0


def flags(compiler: str) -> tuple[list[str], list[str]]:
    """(compile flags, link flags) for this compiler."""
    if supports_openmp(compiler):
        return BASE_FLAGS + ["-fopenmp"], ["-fopenmp"]
    return BASE_FLAGS, []


def cache_dir(cflags: list[str]) -> Path:
    import torch

    key = "\n".join([cpu_flags(), " ".join(cflags), torch.__version__, sys.version, hashlib.sha256(SOURCE.read_bytes()).hexdigest()])
    root = Path(os.environ.get("ATTNZOO_CACHE", Path.home() / ".cache" / "attnzoo"))
    folder = root / f"fused-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def kernels() -> Optional[ModuleType]:
    """The compiled kernel module (built once per process, cached on disk), or None if it cannot
    be built here; :func:`error` then says why."""
    if _state["module"] is None and _state["error"] is None:
        compiler = _compiler()
        if compiler is None:
            _state["error"] = "no C++ compiler found (set CXX, or install g++ or clang++)"
            return None
        try:
            from torch.utils.cpp_extension import load

            cflags, ldflags = flags(compiler)
            _state["module"] = load(name="attnzoo_fused", sources=[str(SOURCE)], extra_cflags=cflags, extra_ldflags=ldflags,
                                    build_directory=str(cache_dir(cflags)), verbose=False)
        except Exception as e:  # no ninja, build error: stay on the PyTorch path
            _state["error"] = f"{type(e).__name__}: {str(e)[:500]}"
    return _state["module"]


def error() -> Optional[str]:
    return _state["error"]


def require() -> ModuleType:
    """The kernels, or a RuntimeError saying why they are unavailable."""
    module = kernels()
    if module is None:
        raise RuntimeError(f"attnzoo fused kernels unavailable: {_state['error']}")
    return module
