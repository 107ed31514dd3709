"""benchmarks/measure.py: steps timed in rotating turns, torch's peak allocation on the CPU, and the
bytes autograd saves for backward."""

import time

import torch

from benchmarks.measure import median_seconds, peak_memory_MiB, saved_for_backward_MiB, timed


def test_timed_returns_the_steps_result_and_its_seconds():
    result, seconds = timed(lambda: "done")
    assert result == "done" and seconds >= 0


def test_each_round_starts_one_step_further_and_warm_up_rounds_are_not_timed():
    calls = []

    def step(name, round_index, seconds=0.0):
        return lambda: (calls.append((round_index, name)), time.sleep(seconds))

    rounds = [{name: step(name, r, seconds=0.3 if r == 0 else 0.0) for name in "abc"} for r in range(4)]
    medians = median_seconds(rounds, "cpu", warm_up_rounds=1)
    orders = ["abc", "bca", "cab", "abc"]  # the warm-up round 0 included
    assert calls == [(r, name) for r, order in enumerate(orders) for name in order]
    assert set(medians) == {"a", "b", "c"}
    assert all(seconds < 0.15 for seconds in medians.values())  # the warm-up's 0.3 s sleeps left out


def test_cpu_peak_memory_is_the_peak_of_live_tensors_above_the_level_at_the_start():
    MiB, kept = 2**20, []

    def lead_in():  # leaves 5 MiB for the measured block to free
        kept.clear()
        kept.append(torch.empty(5 * MiB, dtype=torch.uint8))
        torch.empty(64 * MiB, dtype=torch.uint8)  # allocated and freed before: not counted

    def allocate_4_free_them_then_3():
        first = torch.empty(4 * MiB, dtype=torch.uint8)
        del first
        kept.append(torch.empty(MiB, dtype=torch.uint8))
        kept.append(torch.empty(2 * MiB, dtype=torch.uint8))

    assert peak_memory_MiB("cpu", lead_in, allocate_4_free_them_then_3) == 4  # not the 7 allocated in all

    def replace_the_lead_ins_tensor():
        kept.clear()  # frees the lead-in's 5 MiB
        kept.append(torch.empty(5 * MiB, dtype=torch.uint8))

    assert peak_memory_MiB("cpu", lead_in, replace_the_lead_ins_tensor) == 0


def test_a_storage_saved_for_backward_counts_once():
    x = torch.ones(2**18, requires_grad=True)  # 1 MiB of float32
    assert saved_for_backward_MiB(lambda: (x * x).sum()) == 1  # x saved as both factors
    assert saved_for_backward_MiB(lambda: (x * x + x.exp()).sum()) == 2  # and exp's result
    with torch.no_grad():
        assert saved_for_backward_MiB(lambda: (x * x).sum()) == 0
