"""Every tolerance the tests use, stated once: (atol, rtol) by dtype, per kind of computation.

A tolerance is a claim about the arithmetic, not a knob: each table says why it holds.
"""

from __future__ import annotations

import torch

# Element-wise ops (gathers, activations): the kernel computes in fp32 and rounds once to the
# storage dtype, the reference may round once more; one or two units in the last place.
ELEMENTWISE = {
    torch.float32: (0.0, 0.0),  # bit-exact: same fp32 operations in the same order
    torch.float16: (1e-3, 2e-3),  # fp16 ulp = 2**-10 ~ 9.8e-4 relative
    torch.bfloat16: (8e-3, 1.6e-2),  # bf16 ulp = 2**-7 ~ 7.8e-3 relative
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, table: dict, dtype: torch.dtype | None = None):
    atol, rtol = table[dtype or actual.dtype]
    assert not torch.isnan(actual).any(), "output holds NaN (an unwritten element?)"
    if atol == 0 and rtol == 0:
        assert torch.equal(actual, expected.to(actual.dtype)), (
            f"not bit-exact: max abs diff {(actual.double() - expected.double()).abs().max().item():.3e}"
        )
    else:
        torch.testing.assert_close(actual, expected.to(actual.dtype), atol=atol, rtol=rtol)
