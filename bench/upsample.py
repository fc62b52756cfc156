"""Parallel WaveGAN's conditioning upsampler (ConvInUpsampleNetwork) for 1 s of 24 kHz audio.

PWG's 24 kHz configurations: hop 300 (80 mel frames + 2 x aux_context_window 2), upsample scales
4, 5, 3, 5, no activation. References: parallel_wavegan 0.6.1's module (each scale a nearest
``F.interpolate`` stretch then a 1 x (2s+1) ``Conv2d`` over the stretched signal; weights loaded
across) eagerly and, in full mode, under ``torch.compile``.
"""

from __future__ import annotations

import torch

from bench.harness import Case
from fastgan.nn import ConvInUpsampleNetwork

FRAMES = 80  # 1 s at 24 kHz, hop 300
QUICK_FRAMES = 20  # the CPU demo (parallel_wavegan's stretched conv2d backward is slow on CPU)
CONFIG = {"upsample_scales": [4, 5, 3, 5], "aux_channels": 80, "aux_context_window": 2}


def _parallel_wavegan_upsample():
    try:
        import scipy.signal
        import scipy.signal.windows

        if not hasattr(scipy.signal, "kaiser"):  # parallel_wavegan 0.6.1 imports it from the old place
            scipy.signal.kaiser = scipy.signal.windows.kaiser
        from parallel_wavegan.layers import upsample
    except ImportError:
        return None
    return upsample


def _runner(module, c, mode, grad):
    if mode == "fwd":

        def forward():
            with torch.no_grad():
                return module(c)

        return forward

    def forward_backward():
        c.grad = None
        module.zero_grad(set_to_none=True)
        module(c).backward(grad)

    return forward_backward


def cases(quick: bool, device: torch.device) -> list[Case]:
    batches = [1] if quick else [1, 16]
    frames = QUICK_FRAMES if quick else FRAMES
    dtypes = [torch.float32] if device.type == "cpu" else [torch.bfloat16]
    upsample = _parallel_wavegan_upsample()
    result = []
    for dtype in dtypes:
        ours = ConvInUpsampleNetwork(**CONFIG).to(device=device, dtype=dtype)
        with torch.no_grad():  # a trained-looking smoothing filter, not the box initialisation
            for p in ours.upsample.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        modules = {"fastgan": ours}
        if upsample is not None:
            theirs = upsample.ConvInUpsampleNetwork(**CONFIG).to(device=device, dtype=dtype)
            theirs.load_state_dict(ours.state_dict())
            modules["parallel_wavegan"] = theirs
            if not quick:
                modules["torch.compile"] = torch.compile(theirs, dynamic=False)
        for batch in batches:
            window = 2 * CONFIG["aux_context_window"]
            c = torch.randn(batch, CONFIG["aux_channels"], frames + window, device=device, dtype=dtype)
            out_length = frames * 300
            grad = torch.randn(batch, CONFIG["aux_channels"], out_length, device=device, dtype=dtype)
            size = dtype.itemsize
            for mode in ("fwd", "fwd+bwd"):
                c.requires_grad_(mode != "fwd")
                # fwd: the input read once, the 24 000-sample output written once (weights negligible).
                io = (c.numel() + grad.numel()) * size
                moved = io if mode == "fwd" else 2 * io + c.numel() * size
                runners = {name: _runner(module, c, mode, grad) for name, module in modules.items()}
                name = f"pwg 24k scales 4x5x3x5 c80 t{frames} b{batch}"
                result.append(Case("upsample", name, mode, dtype, runners, moved))
    return result
