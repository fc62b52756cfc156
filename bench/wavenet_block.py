"""Parallel WaveGAN's 30-layer WaveNet stack (64 residual, 128 gate, 64 skip, 80 aux channels,
kernel 3, dilations 2^(i % 10)) at 24 kHz x 1 s, batch 1 and 16; inference forward and
forward + backward (a training step's gradients for the input, aux features and every weight).
Full sizes add the same stack at 128/256/128 (the larger PWG/WaveNet vocoders' width, the
kernels' 128-channel block), batch 1 and 8 (the eager references keep five (B, 256, T)
intermediates per layer for the backward: batch 16 in fp32 would be ~60 GB of them).

fastgan runs each layer as one ``fastgan::wavenet_block`` op accumulating the skip sum; the
references are the eager composition of torch ops, parallel_wavegan's WaveNetResidualBlock stack
(an optional bench dependency, left out where not installed) and torch.compile of the eager
composition (full sizes only). Quick (CPU) sizes: one dilation cycle of 10 layers, 2048 samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import fastgan
from bench.harness import Case

AUX, KERNEL = 80, 3
# (residual, gate, skip channels) -> batches at full size; quick runs take the first only.
WIDTHS = {(64, 128, 64): (1, 16), (128, 256, 128): (1, 8)}


def _parallel_wavegan_layers():
    try:
        import scipy.signal
        import scipy.signal.windows

        if not hasattr(scipy.signal, "kaiser"):  # parallel_wavegan 0.6.1 imports it from the old place
            scipy.signal.kaiser = scipy.signal.windows.kaiser
        from parallel_wavegan.layers import WaveNetResidualBlock
    except ImportError:
        return None
    return WaveNetResidualBlock


def _eager_layer(block, x, c):
    """One block as the plain composition of torch ops (what an eager PWG does)."""
    h = F.conv1d(x, block.conv.weight, block.conv.bias, padding=block.conv.padding, dilation=block.conv.dilation)
    h = h + F.conv1d(c, block.conv1x1_aux.weight)
    a, b = h.split(h.shape[1] // 2, dim=1)
    g = torch.tanh(a) * torch.sigmoid(b)
    skip = F.conv1d(g, block.conv1x1_skip.weight, block.conv1x1_skip.bias)
    return (F.conv1d(g, block.conv1x1_out.weight, block.conv1x1_out.bias) + x) * math.sqrt(0.5), skip


def _stack_runner(blocks, layer_fn, accumulate: bool):
    def run(x, c):
        skips = None
        for block in blocks:
            if accumulate:
                x, skips = layer_fn(block, x, c, skips)
            else:
                x, skip = layer_fn(block, x, c)
                skips = skip if skips is None else skips + skip
        return x, skips

    return run


def _fused_layer(block, x, c, skips):
    return block(x, c, skip_sum=skips)


def _pwg_layer(block, x, c):
    return block(x, c)


def _runner(run, x, c, params, mode, grads):
    if mode == "fwd":

        def forward():
            with torch.no_grad():
                return run(x, c)

        return forward

    def forward_backward():
        x.grad = c.grad = None
        for p in params:
            p.grad = None
        torch.autograd.backward(run(x, c), grads)

    return forward_backward


def cases(quick: bool, device: torch.device) -> list[Case]:
    layers = 10 if quick else 30
    length = 2048 if quick else 24000
    widths = dict(list(WIDTHS.items())[:1]) if quick else WIDTHS
    dtypes = [torch.float32] if device.type == "cpu" else [torch.float32, torch.bfloat16]
    result = []
    for (residual, gate, skip), full_batches in widths.items():
        batches = (1, 2) if quick else full_batches
        for dtype in dtypes:
            result += _width_cases(residual, gate, skip, layers, length, batches, dtype, quick, device)
    return result


def _width_cases(residual, gate, skip, layers, length, batches, dtype, quick, device) -> list[Case]:
    pwg_class = _parallel_wavegan_layers()
    ours = torch.nn.ModuleList(
        fastgan.nn.WaveNetResidualBlock(KERNEL, residual, gate, skip, AUX, dilation=2 ** (i % 10))
        for i in range(layers)
    ).to(device=device, dtype=dtype)
    impls_fn = {
        "fastgan": (_stack_runner(ours, _fused_layer, True), list(ours.parameters())),
        "eager": (_stack_runner(ours, _eager_layer, False), list(ours.parameters())),
    }
    if pwg_class is not None:
        theirs = torch.nn.ModuleList(
            pwg_class(KERNEL, residual, gate, skip, AUX, dilation=2 ** (i % 10)) for i in range(layers)
        ).to(device=device, dtype=dtype)
        theirs.load_state_dict(ours.state_dict())
        impls_fn["parallel_wavegan"] = (_stack_runner(theirs, _pwg_layer, False), list(theirs.parameters()))
    if not quick:
        eager = _stack_runner(ours, _eager_layer, False)
        compiled = torch.compile(eager, mode="max-autotune-no-cudagraphs", dynamic=False)
        impls_fn["torch.compile"] = (compiled, list(ours.parameters()))
    element = torch.tensor([], dtype=dtype).element_size()
    result = []
    for batch in batches:
        x = torch.randn(batch, residual, length, device=device, dtype=dtype)
        c = torch.randn(batch, AUX, length, device=device, dtype=dtype)
        grads = (torch.randn_like(x), torch.randn(batch, skip, length, device=device, dtype=dtype))
        samples = batch * length
        # Per layer and sample: dilated conv, aux 1x1, both output 1x1 convs (multiply-adds x 2).
        flops_fwd = layers * samples * 2 * (gate * residual * KERNEL + gate * AUX + (residual + skip) * gate // 2)
        # Per layer, forward: read x, c, the skip sum; write x_out, the skip sum.
        bytes_fwd = layers * samples * element * (residual + AUX + 2 * skip + residual)
        for mode in ("fwd", "fwd+bwd"):
            x.requires_grad_(mode != "fwd")
            c.requires_grad_(mode != "fwd")
            runners = {name: _runner(run, x, c, params, mode, grads) for name, (run, params) in impls_fn.items()}
            # Backward: twice the forward's GEMMs (input and weight gradients); bytes: it reads
            # x, c and both incoming gradients and writes grad_x and grad_c per layer.
            flops = flops_fwd if mode == "fwd" else 3 * flops_fwd
            moved = bytes_fwd if mode == "fwd" else bytes_fwd + layers * samples * element * (2 * residual + 2 * AUX + skip + residual)  # fmt: skip
            name = f"pwg {layers}x {residual}/{gate}/{skip}/{AUX} t{length} b{batch}"
            result.append(Case("wavenet_block", name, mode, dtype, runners, moved, flops))
    return result
