import time

import pytest
import torch

from hwprof.measuring.timing import CpuTimer, CudaTimer, timer_for


def test_cpu_timer_times_n_calls():
    calls = []
    t = CpuTimer().time_batch(lambda: (calls.append(1), time.sleep(0.002)), 5)
    assert len(calls) == 5
    assert 0.01 <= t < 0.5


def test_timer_for_picks_by_device_type():
    assert isinstance(timer_for(torch.device("cpu")), CpuTimer)
    assert timer_for(torch.device("cpu")).name == "perf_counter_ns"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only build")
def test_cuda_timer_is_not_built_without_cuda():
    with pytest.raises(Exception):
        CudaTimer(torch.device("cuda", 0), flush_l2=True)
