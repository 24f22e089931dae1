"""The sandboxed kernels' malloc (c.Sandbox.allocator): jemalloc, preloaded where this machine has it, which PyTorch's
many small allocations need fewer core-seconds with; the C library's where it is missing, or told so. Under jemalloc
memory that was freed is there again, and the memory limit still stops a hog with a MemoryError."""

import pytest

from grading.engine.execution_outcome import ExecutionStatus
from grading.engine.sandbox import Limits, allocator_library, kernel_environment
from support.sandbox_runs import run, text

USES_JEMALLOC = "print(any('libjemalloc' in line for line in open('/proc/self/maps')))"


def test_the_malloc_is_a_library_of_the_systems_that_starts_and_that_the_sandbox_shows(tmp_path):
    outside = tmp_path / "libjemalloc.so.2"  # a folder the sandbox does not show
    outside.write_bytes(b"")
    not_preloaded = [
        "",  # the C library's malloc, as told
        "libnot-on-this-machine.so.1",
        str(outside),
        "libc.so",  # a linker script, not a library: the loader would complain in every process
        "../../usr/lib/libc.so.6",  # relative to wherever the grader runs
        "libjemalloc.so.2:libc.so.6",  # LD_PRELOAD would read two libraries
    ]
    assert [allocator_library(name) for name in not_preloaded] == [None] * len(not_preloaded)
    assert "LD_PRELOAD" not in kernel_environment(Limits(allocator=""))


@pytest.mark.usefixtures("bubblewrap", "jemalloc")
@pytest.mark.parametrize("template", [True, False], ids=["forked from the template", "new kernel process"])
def test_kernels_allocate_with_jemalloc_and_with_the_c_librarys_malloc_when_told(template):
    cells, _ = run(USES_JEMALLOC, "import torch\nprint(float(torch.ones(1 << 20).sum()))", kernel_template=template)
    assert [text(cell) for cell in cells] == ["True\n", "1048576.0\n"]
    cells, _ = run(USES_JEMALLOC, allocator="", kernel_template=False)
    assert text(cells[0]) == "False\n"


@pytest.mark.usefixtures("bubblewrap", "jemalloc")
def test_memory_freed_under_jemalloc_is_there_again_and_hogs_get_memory_errors():
    # RLIMIT_AS counts address space: jemalloc must give back what a freed tensor held (3 GiB here)
    cells, outcome = run(
        USES_JEMALLOC,
        "import torch\nx = torch.ones(1 << 28)  # 1 GiB\ndel x\ny = torch.ones(1300 << 18)  # 1.3 GiB\n"
        "print(float(y[-1]))\ndel y",
        "x = torch.empty(1 << 33, dtype=torch.uint8)",
        "chunks = []\ntry:\n    while True:\n        chunks.append(bytearray(64 << 20))\n"
        "except MemoryError:\n    del chunks\n    print('stopped')",
        "print('next')",
    )
    assert outcome.status is ExecutionStatus.OK
    assert [text(cells[0]), text(cells[1])] == ["True\n", "1.0\n"]
    assert "can't allocate memory" in text(cells[2]) or "not enough memory" in text(cells[2])
    assert [text(cells[3]), text(cells[4])] == ["stopped\n", "next\n"]
