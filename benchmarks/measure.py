"""The timing and memory measures every benchmark uses: wall-clock seconds of a step, medians of
steps timed in turns, torch's peak allocation, and the bytes autograd saves for backward.

`device` is "cpu" or "cuda" throughout; on CUDA the timing and peak-memory measures wait for the
device's queued work, so that a figure covers the work of its step and of no other.
"""

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, TypeVar

import torch

Result = TypeVar("Result")


def synchronize(device: str) -> None:
    """Wait until `device` has finished the work queued on it (CUDA runs asynchronously)."""
    if device == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[], Result], device: str = "cpu") -> tuple[Result, float]:
    """(`step()`'s result, its wall-clock seconds). The device's earlier work is finished before
    the clock starts and the step's own before it stops."""
    synchronize(device)
    start = time.perf_counter()
    result = step()
    synchronize(device)
    return result, time.perf_counter() - start


def median_seconds(
    rounds: Sequence[Mapping[str, Callable[[], Any]]], device: str, warm_up_rounds: int = 0
) -> dict[str, float]:
    """{name: median seconds} of the steps named in `rounds`, where `rounds[r][name]` is that step
    in round r; the first `warm_up_rounds` rounds are run but not timed.

    A round runs every step once, in turn. Round r starts with the r-th step and goes round, so
    every step takes every place in the order equally often, and drift of a shared machine (other
    jobs, the state of the allocator and caches that the step before leaves) falls on all alike.
    """
    names = list(rounds[0])
    times = {name: [] for name in names}
    for index, steps in enumerate(rounds):
        start = index % len(names)
        for name in names[start:] + names[:start]:
            _, seconds = timed(steps[name], device)
            if index >= warm_up_rounds:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


MEASURED_BLOCK = "benchmark.measured_block"  # the profiler's name for the block whose peak is wanted


def peak_memory_MiB(device: str, lead_in: Callable[[], Any], measured: Callable[[], Any]) -> float:
    """Peak of torch's allocations while `measured()` runs, above the level when it starts, in MiB;
    `lead_in()` runs just before (the same step: what it leaves behind, `measured` frees).

    CUDA: torch's counters. CPU: torch's CPU allocator keeps no counters, so both run under torch's
    profiler with `profile_memory`, which records every allocation and free with its size and time
    (a free only of memory allocated while it records: hence the lead-in inside the recording);
    the peak is that of their running sum during `measured`. This counts tensors alone, as on
    CUDA, and is the same from run to run. The process's resident set is not: it adds what glibc's
    heap keeps of freed memory, which depends on the process's history.
    """
    if device == "cuda":
        lead_in()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        measured()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profiler:
        lead_in()
        with torch.profiler.record_function(MEASURED_BLOCK):
            measured()
    return _recorded_peak_bytes(profiler.profiler.kineto_results.events()) / 2**20


def _recorded_peak_bytes(events: list) -> int:
    """The highest running sum of the recorded CPU allocations (+) and frees (-) inside the
    MEASURED_BLOCK event, above the sum at its start."""
    (block,) = [event for event in events if event.name() == MEASURED_BLOCK]
    records = [
        event for event in events if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]
    live, start_level, peak = 0, None, 0
    for event in sorted(records, key=lambda event: event.start_ns()):
        if event.start_ns() >= block.start_ns() and start_level is None:
            start_level = peak = live
        live += event.nbytes()
        if start_level is not None and event.start_ns() <= block.end_ns():
            peak = max(peak, live)
    return 0 if start_level is None else peak - start_level


def saved_for_backward_MiB(forward: Callable[[], Any]) -> float:
    """MiB of the distinct storages autograd saves for backward while `forward()` builds its graph
    (a storage saved by several operations counts once)."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(storages.values()) / 2**20
