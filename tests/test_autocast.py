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
