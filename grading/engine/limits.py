"""The limits of one notebook's execution, each declared once: its default, and its help where it is configured.

Limits is what an execution carries (frozen plain data, sent to worker processes and Dask workers). Sandbox is the
same limits as nbgrader configuration (c.Sandbox.<name> in nbgrader_config.py): one trait for each field that
carries a help text, of the field's type, default and help; the cell timeout is nbgrader's own c.Execute.timeout.
"""

from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar

from traitlets import Bool, Integer, List, TraitType, Unicode
from traitlets.config import Configurable
from traitlets.traitlets import MetaHasTraits

# What every submission of this course imports; the forward-mode questions load the two torch._ modules on first use.
PRELOAD = ("numpy", "torch", "torch._dynamo", "torch._decomp.decompositions_for_jvp", "matplotlib.pyplot", "torchviz")

T = TypeVar("T")


def _configured(default: T, help: str) -> T:
    """A field of Limits that nbgrader_config.py may set as c.Sandbox.<name>; help says what it limits."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Limits:
    """What one execution may use. sandbox=False runs the kernel unconfined (explicitly unsafe)."""

    cell_timeout: int = 120  # configured as nbgrader's c.Execute.timeout
    notebook_timeout: int = _configured(900, "wall-clock seconds for the whole notebook")
    memory_bytes: int = _configured(
        3 << 30,
        "memory of the sandbox (address space of each process; the whole sandbox too where a memory cgroup can be "
        "made)",
    )
    max_processes: int = _configured(256, "processes and threads in the sandbox (cgroup pids.max, else RLIMIT_NPROC)")
    max_output_bytes: int = _configured(
        1 << 20,
        "bytes of output kept per notebook, every message counted as written (an error that does not fit keeps its "
        "name and the start of its message)",
    )
    max_message_bytes: int = _configured(
        64 << 20,
        "upper limit of a single message accepted from the kernel; the one applied also follows from "
        "max_output_bytes and the judge's answers (grading/engine/execute_sandboxed.py: message_limit)",
    )
    output_wait_seconds: int = _configured(
        60,
        "after a cell's reply, the longest wait for its outputs still on their way (a message zmq refused as too "
        "large may take the cell's last one with it: the cell then ends after this wait, noted)",
    )
    max_file_bytes: int = _configured(256 << 20, "largest file the kernel may write (RLIMIT_FSIZE)")
    tmpfs_bytes: int = _configured(
        512 << 20, "size of each folder the kernel can write: /tmp, HOME, /dev/shm and /assignment"
    )
    bwrap: str = _configured("bwrap", "the bubblewrap executable")
    use_cgroups: bool = _configured(True, "put each sandbox in its own pids/memory cgroup when the machine allows it")
    sandbox: bool = True  # set by the grader (--unsafe-no-sandbox, UNSAFE_NO_SANDBOX=1), never by configuration
    kernel_template: bool = _configured(
        True,
        "fork each submission's kernel from a per-worker template that has imported `preload` (see "
        "grading/engine/kernel_template.py); False starts a new kernel process in a new sandbox for each submission",
    )
    preload: tuple[str, ...] = _configured(PRELOAD, "modules the template imports once for every submission")
    allocator: str = _configured(
        "libjemalloc.so.2",
        "the malloc of the sandboxed kernels: a shared library of the system's (a file name, or an absolute path "
        "under /usr), preloaded (LD_PRELOAD) where this machine's Python starts with it; '' for the C library's own. "
        "jemalloc (Debian's package libjemalloc2) takes fewer core-seconds (README: Grading speed)",
    )


CONFIGURED: tuple[Field[Any], ...] = tuple(limit for limit in fields(Limits) if "help" in limit.metadata)
_TRAIT_TYPES: dict[type, type[TraitType[Any, Any]]] = {bool: Bool, int: Integer, str: Unicode}


def _trait(limit: Field[Any]) -> TraitType[Any, Any]:
    """The configurable trait of one field of Limits: its type, default and help."""
    if isinstance(limit.default, tuple):
        trait: TraitType[Any, Any] = List(Unicode(), default_value=list(limit.default), help=limit.metadata["help"])
    else:
        trait = _TRAIT_TYPES[type(limit.default)](limit.default, help=limit.metadata["help"])
    return trait.tag(config=True)


# Sandbox's traits, one for each configured field (a class made from Limits' fields, so nothing is declared twice)
_SandboxTraits: Any = MetaHasTraits(
    "_SandboxTraits", (Configurable,), {"__module__": __name__, **{limit.name: _trait(limit) for limit in CONFIGURED}}
)


class Sandbox(_SandboxTraits):
    """Limits of one submission's execution; set them in nbgrader_config.py as c.Sandbox.<name> (see Limits)."""

    def limits(self, cell_timeout: int) -> Limits:
        """The limits this configuration sets, with the cell timeout (nbgrader's c.Execute.timeout)."""
        configured = {limit.name: getattr(self, limit.name) for limit in CONFIGURED}
        configured["preload"] = tuple(configured["preload"])
        return Limits(cell_timeout=cell_timeout, **configured)
