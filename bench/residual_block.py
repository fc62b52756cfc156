"""Dilated residual blocks at the vocoders' real sizes: MelGAN's residual stacks, HiFi-GAN V1's ResBlock1s.

* ``residual_stack``: one MelGAN stage, three ResidualStacks (kernel 3, dilations 1/3/9) in a row,
  at channels 256/128/64/32 and 1/8, 1/64, 1/128, 1/256 of 22.05 kHz x 1 s (T = 689, 5512, 11025,
  22050 samples from 86 mel frames).
* ``hifigan_resblock``: one HiFi-GAN V1 ResBlock1 (dilations 1/3/5) with kernel 3, 7 or 11 at the
  same four stages (channels 256/128/64/32).

Implementations: ``fastgan`` (the modules: Triton kernels on CUDA, the fast reference on CPU),
``eager`` (fastgan's reference functions called directly: plain PyTorch, no custom op),
``parallel_wavegan`` (its layers with the same weights), and, full sizes only,
``torch.compile(mode="max-autotune-no-cudagraphs")`` of the eager reference. Batch 1 and 16,
inference (``fwd``, under ``torch.inference_mode``) and training (``fwd+bwd``, all gradients).
"""

from __future__ import annotations

import functools

import torch

import fastgan
from bench.harness import Case
from fastgan.references.residual_block import leaky_dilated_residual_reference

FRAMES = 86  # 22.05 kHz x 1 s / hop 256
STAGES = [(256, FRAMES * 8), (128, FRAMES * 64), (64, FRAMES * 128), (32, FRAMES * 256)]
MELGAN_DILATIONS = (1, 3, 9)
HIFIGAN_KERNELS = (3, 7, 11)
HIFIGAN_DILATIONS = (1, 3, 5)


def _parallel_wavegan_layers():
    try:
        from tests.oracle import parallel_wavegan

        return parallel_wavegan("layers")
    except BaseException:  # pytest.skip raises outside pytest too; the oracle is optional here
        return None


def _melgan_steps(modules):
    """(tensors, slope, dilation, padding, causal) for each ResidualStack, read from our modules."""
    steps = []
    for module in modules:
        (tensors, slope, padding) = module._fused_arguments()
        steps.append((tensors, slope, module.dilation, padding, module.use_causal_conv))
    return steps


def _hifigan_steps(block):
    return [
        ((w1, b1, w2, b2, None, None), slope, dilation, "zeros", block.use_causal_conv)
        for w1, b1, w2, b2, slope, dilation in block._fused_steps()
    ]


def _eager_chain(x, steps):
    for tensors, slope, dilation, padding, causal in steps:
        x = leaky_dilated_residual_reference(x, *tensors, slope, dilation, padding, causal)
    return x


def _runner(fn, x, params, mode):
    if mode == "fwd":

        def forward():
            with torch.inference_mode():
                return fn(x)

        return forward

    grad = torch.randn_like(x)

    def forward_backward():
        x.grad = None
        for p in params:
            p.grad = None
        fn(x).backward(grad)

    return forward_backward


def _block_cases(op, name, ours, theirs, steps, x, flops_fwd, quick):
    result = []
    eager = functools.partial(_eager_chain, steps=steps)
    impls = {"fastgan": ours, "eager": eager}
    if theirs is not None:
        impls["parallel_wavegan"] = theirs
    if not quick:
        impls["torch.compile"] = torch.compile(eager, mode="max-autotune-no-cudagraphs", dynamic=False)
    params = list(ours.parameters()) + ([] if theirs is None else list(theirs.parameters()))
    size = x.numel() * x.element_size()
    weights = sum(p.numel() * p.element_size() for p in ours.parameters())
    for mode in ("fwd", "fwd+bwd"):
        x_mode = x.detach().clone().requires_grad_(mode != "fwd")
        for p in params:
            p.requires_grad_(mode != "fwd")
        runners = {key: _runner(fn, x_mode, params, mode) for key, fn in impls.items()}
        steps_count = len(steps)
        # fwd: each step reads its input and writes its output once, plus the weights. fwd+bwd: the
        # forward, then per step read grad and x, write grad x, read/write the weight gradients.
        moved = steps_count * 2 * size + weights if mode == "fwd" else steps_count * 5 * size + 3 * weights
        flops = flops_fwd if mode == "fwd" else 3 * flops_fwd
        result.append(Case(op, name, mode, x.dtype, runners, moved, flops))
    return result


def cases(quick: bool, device: torch.device) -> list[Case]:
    layers = _parallel_wavegan_layers()
    batches = [1] if quick else [1, 16]
    dtypes = [torch.float32] if device.type == "cpu" else [torch.float32, torch.bfloat16]
    # Quick (CPU demo): two stages at 1/8 of the length, HiFi-GAN's kernel 3 and 7.
    stages = [(256, FRAMES * 8 // 2), (64, FRAMES * 128 // 8)] if quick else STAGES
    kernels = (3, 7) if quick else HIFIGAN_KERNELS
    result = []
    generator = torch.Generator(device="cpu").manual_seed(0)
    for dtype in dtypes:
        for batch in batches:
            for channels, length in stages:
                x = torch.randn(batch, channels, length, generator=generator).to(device=device, dtype=dtype)
                # MelGAN: three ResidualStacks (kernel 3, dilations 1/3/9).
                ours = torch.nn.Sequential(*[fastgan.nn.ResidualStack(3, channels, d) for d in MELGAN_DILATIONS]).to(
                    device=device, dtype=dtype
                )
                theirs = None
                if layers is not None:
                    theirs = torch.nn.Sequential(*[layers.ResidualStack(3, channels, d) for d in MELGAN_DILATIONS])
                    theirs.load_state_dict(ours.state_dict())
                    theirs = theirs.to(device=device, dtype=dtype)
                flops = batch * length * len(MELGAN_DILATIONS) * 2 * channels * channels * (3 + 2)
                name = f"melgan c{channels} t{length} b{batch}"
                steps = _melgan_steps(list(ours))
                result += _block_cases("residual_stack", name, ours, theirs, steps, x, flops, quick)
                # HiFi-GAN V1: one ResBlock1 per kernel size.
                for kernel_size in kernels:
                    ours = fastgan.nn.HiFiGANResidualBlock(kernel_size, channels, HIFIGAN_DILATIONS)
                    ours = ours.to(device=device, dtype=dtype)
                    theirs = None
                    if layers is not None:
                        theirs = layers.HiFiGANResidualBlock(kernel_size, channels, HIFIGAN_DILATIONS)
                        theirs.load_state_dict(ours.state_dict())
                        theirs = theirs.to(device=device, dtype=dtype)
                    flops = batch * length * len(HIFIGAN_DILATIONS) * 2 * (2 * channels * channels * kernel_size)
                    name = f"hifigan c{channels} t{length} k{kernel_size} b{batch}"
                    steps = _hifigan_steps(ours)
                    result += _block_cases("hifigan_resblock", name, ours, theirs, steps, x, flops, quick)
    return result
