"""Every generator under torch.autocast(bfloat16): the custom ops are opaque to autocast, so their
functional forms cast inputs and weights as autocast casts the convolutions they replace."""

from __future__ import annotations

import fastgan.models as models
import pytest
import torch

from tests.conftest import DEVICE
from tests.test_models_vocoders import SMALL_GENERATORS
from tests.tolerances import AUTOCAST_BF16_REL_RMS

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")


@pytest.mark.parametrize("case", list(SMALL_GENERATORS))
def test_generator_under_bf16_autocast(case):
    name, kwargs, make_inputs = SMALL_GENERATORS[case]
    torch.manual_seed(0)
    generator = getattr(models, name)(**kwargs).to(DEVICE)
    inputs = [t.to(DEVICE) for t in make_inputs()]
    expected = generator(*inputs)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        actual = generator(*inputs)
    assert actual.dtype == torch.bfloat16
    assert torch.isfinite(actual).all()
    error = (actual.float() - expected).square().mean().sqrt() / expected.square().mean().sqrt()
    assert error < AUTOCAST_BF16_REL_RMS, f"relative RMS error {error:.2e}"
    actual.float().square().mean().backward()
    for parameter_name, parameter in generator.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize("case", list(SMALL_GENERATORS))
def test_generator_cast_to_bf16_for_inference(case):
    # A deployed model in bf16 (weights and inputs rounded, weight norm folded): on CPU the references
    # keep bf16 where the CPU has native bf16 GEMMs, on GPU the kernels round each GEMM operand; the
    # same per-stage rounding budget as autocast.
    name, kwargs, make_inputs = SMALL_GENERATORS[case]
    torch.manual_seed(0)
    generator = getattr(models, name)(**kwargs).to(DEVICE).eval()
    generator.remove_weight_norm()
    inputs = [t.to(DEVICE) for t in make_inputs()]
    with torch.no_grad():
        expected = generator(*inputs)
        generator.to(torch.bfloat16)
        actual = generator(*[t.to(torch.bfloat16) for t in inputs])
    assert actual.dtype == torch.bfloat16
    assert torch.isfinite(actual).all()
    error = (actual.float() - expected).square().mean().sqrt() / expected.square().mean().sqrt()
    assert error < AUTOCAST_BF16_REL_RMS, f"relative RMS error {error:.2e}"


def _functional_cases():
    """Each functional form that takes weights, as (name, call(*tensors), fp32 tensors); tiny for the interpreter."""
    from fastgan import functional as F

    def randn(*shape):
        return torch.randn(*shape, device=DEVICE)

    C, T = 6, 13
    return {
        "melgan_step": (
            lambda *t: F.leaky_dilated_residual(*t, negative_slope=0.2, dilation=3),
            [randn(1, C, T), randn(C, C, 3), randn(C), randn(C, C, 1), randn(C), randn(C, C, 1), randn(C)],
        ),
        "resblock1": (
            lambda *t: F.leaky_dilated_residual(*t, negative_slope=0.1, dilation=1, padding="zeros"),
            [randn(1, C, T), randn(C, C, 3), randn(C), randn(C, C, 3), randn(C)],
        ),
        "conv_transpose": (
            lambda *t: F.conv_transpose1d(*t, stride=2, padding=1, negative_slope=0.1),
            [randn(1, C, T), randn(C, 5, 4), randn(5)],
        ),
        "stretch": (lambda *t: F.stretch_conv1d(*t), [randn(1, C, T), randn(2, 3)]),
        "wavenet": (
            lambda *t: F.wavenet_block(*t, dilation=2),
            [randn(1, 4, T), randn(1, 3, T), randn(8, 4, 3), randn(8), randn(8, 3), randn(4, 4), randn(4),
             randn(5, 4), randn(5)],
        ),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["melgan_step", "resblock1", "conv_transpose", "stretch", "wavenet"])
def test_functional_form_under_autocast_casts_like_the_convs(case):
    # fp32 activations and weights under bf16 autocast: the op runs on everything cast to bf16, as autocast casts
    # the convolutions it replaces, whichever backend runs it (so the result equals the explicit bf16 call).
    torch.manual_seed(0)
    call, tensors = _functional_cases()[case]
    expected = call(*[t.to(torch.bfloat16) for t in tensors])
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        actual = call(*tensors)
    actual, expected = (r if isinstance(r, tuple) else (r,) for r in (actual, expected))
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got, want, rtol=0, atol=0)
