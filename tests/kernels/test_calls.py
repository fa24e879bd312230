"""The stubs of a hollow step: an output of the right shape, handed back as is or, for the kinds that write
(a live hollow step's other kind, and its baseline), freshly allocated and written every call."""
import pytest
import torch

from hwprof.kernels.calls import Hollow, HollowMatmuls, HollowOps


def test_a_stub_hands_back_one_buffer_and_a_writing_stub_a_fresh_written_copy_each_call():
    x, w = torch.randn(4, 8), torch.randn(16, 8)
    quiet = Hollow(torch.float32)
    assert quiet.linear(x, w).data_ptr() == quiet.linear(x, w).data_ptr() and quiet.rms_norm(x, None) is x
    writing = Hollow(torch.float32, ["mm"])
    first, second = writing.linear(x, w), writing.linear(x, w)
    assert first.shape == (4, 16) and first.data_ptr() != second.data_ptr() and torch.equal(first, second)
    assert writing.rms_norm(x, None) is x                     # the ops' stubs do not write
    q, k = Hollow(torch.float32, ["ops"]).rotary(x, w, None, None)
    assert torch.equal(q, x) and q.data_ptr() != x.data_ptr() and torch.equal(k, w) and k.data_ptr() != w.data_ptr()


def test_the_other_kinds_stubs_of_a_live_hollow_step_always_write():
    x, w = torch.randn(4, 8), torch.randn(16, 8)
    live_ops, live_mm = HollowMatmuls(torch.float32), HollowOps(torch.float32)
    assert live_ops.writes == {"mm"} and live_mm.writes == {"ops"}
    assert live_ops.linear(x, w).data_ptr() != live_ops.linear(x, w).data_ptr()
    assert live_mm.residual(x, x).data_ptr() != x.data_ptr()
    assert torch.equal(live_mm.linear(x, w), torch.nn.functional.linear(x, w))    # the live kind is real
    with pytest.raises(ValueError, match="unknown stub kinds"):
        Hollow(torch.float32, ["attention"])
