"""Weight norm in either of torch's forms, in one place for every module and model.

``torch.nn.utils.weight_norm`` (keys ``weight_g``/``weight_v``, the form parallel_wavegan's
checkpoints hold) recomputes ``weight`` in a forward pre-hook, so code that reads a conv's weight
without calling the conv (a fused op taking the weights directly) must compute it;
``torch.nn.utils.parametrizations.weight_norm`` computes it on access.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.weight_norm import WeightNorm


def effective_weight(module: nn.Module) -> torch.Tensor | None:
    """The weight ``module`` computes with now; None when a hook other than weight norm would change it."""
    hooks = list(module._forward_pre_hooks.values())
    if not hooks:
        return module.weight  # plain, or parametrized (the property computes it)
    if len(hooks) == 1 and isinstance(hooks[0], WeightNorm):
        return hooks[0].compute_weight(module)
    return None  # e.g. spectral norm's hook: let the module run it


def has_weight_norm(module: nn.Module) -> bool:
    return any(isinstance(h, WeightNorm) for h in module._forward_pre_hooks.values()) or (
        parametrize.is_parametrized(module, "weight")
        and any(type(p).__name__ == "_WeightNorm" for p in module.parametrizations.weight)
    )


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Fold weight norm (either form) of every submodule into a plain weight, in place; returns ``module``.

    For inference: the weight is then computed once, not on every call.
    """
    for m in module.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                nn.utils.remove_weight_norm(m, hook.name)
        if parametrize.is_parametrized(m, "weight") and any(
            type(p).__name__ == "_WeightNorm" for p in m.parametrizations.weight
        ):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module
