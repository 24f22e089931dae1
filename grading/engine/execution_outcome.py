"""How one execution of a notebook ended, as types: what execute_in_sandbox returns and every grader reads.

    ExecutionStatus   how the execution ended
    ExecutionOutcome  that ending, with its words, times, answers and the cells it cost
    CellError         the names of the error outputs the engine leaves in cells it stopped or never ran

The coordinator decides from these, never from the words of a detail or from a status written as a string.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class ExecutionStatus(enum.Enum):
    """How one execution of a notebook ended."""

    OK = "ok"  # every cell ran (each cell's own errors are the cell's business)
    CELL_TIMEOUT = "cell-timeout"  # a cell ran too long and ignored the interrupt: the kernel was stopped
    NOTEBOOK_TIMEOUT = "notebook-timeout"  # the whole notebook ran too long: the kernel was stopped
    OUT_OF_MEMORY = "out-of-memory"  # the kernel was killed at the memory limit
    KERNEL_CRASHED = "kernel-crashed"  # the kernel died of a signal
    KERNEL_EXITED = "kernel-exited"  # the kernel exited (os._exit, sys.exit, ...)
    KERNEL_DIED = "kernel-died"  # the kernel stopped responding
    SANDBOX_ERROR = "sandbox-error"  # the notebook could not be executed at all: nothing of it counts


class CellError(enum.StrEnum):
    """The ename of each error output the engine (or nbgrader's Execute under it) writes into a cell it stopped."""

    KERNEL_DIED = "KernelDied"  # the cell that was running when the kernel stopped
    NOT_RUN = "NotRun"  # a later cell, never run
    CELL_TIMEOUT = "CellTimeoutError"  # a cell interrupted at the cell timeout (nbgrader's Execute.error_on_timeout)


# the enames of a cell the notebook's end or a limit stopped (a set of plain strings: an output's ename is one)
STOPPED_CELL_ERRORS = frozenset(error.value for error in CellError)


@dataclass(frozen=True)
class ExecutionOutcome:
    """How one execution ended (see grading.engine.execute_sandboxed.execute_in_sandbox)."""

    status: ExecutionStatus
    detail: str = ""  # in words, for the instructor
    seconds: float = 0.0
    cells_not_run: int = 0  # code cells that scored 0 because the kernel stopped
    output_truncated: bool = False
    answers: Mapping[str, str] = field(default_factory=dict)  # grade id -> what the kernel printed for the judge
    asking_seconds: float = 0.0

    @classmethod
    def failed(cls, detail: str) -> ExecutionOutcome:
        """An execution that never ran the notebook (the worker or the executor failed)."""
        return cls(ExecutionStatus.SANDBOX_ERROR, detail)
