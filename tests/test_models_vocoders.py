"""MelGAN, Multi-band MelGAN, Parallel WaveGAN and HiFi-GAN against parallel_wavegan 0.6.1.

Each case builds parallel_wavegan's model from a seed, loads its state_dict into ours (the keys
must be identical, weight norm's ``weight_g``/``weight_v`` included) and compares outputs, and for
the small configurations every parameter's gradient. Default (paper-size) configurations run on
the fallback path only (marked ``reference``: through the Triton interpreter they would take
hours); the small ones run in both passes, so the interpreter pass runs the models' kernels.
"""

from __future__ import annotations

import copy

import fastgan.models as models
import numpy as np
import pytest
import torch

import fastgan.nn
from fastgan.nn import PQMF
from tests.conftest import DEVICE, INTERPRETER
from tests.oracle import parallel_wavegan
from tests.small_generators import PWG_CAUSAL
from tests.tolerances import MODELS, assert_close_scaled

# torch.nn.utils.weight_norm (the form whose keys parallel_wavegan's checkpoints hold) is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")

FRAMES = 4

# name, constructor kwargs, input maker(seeded generator) -> args. Small enough for the interpreter.
SMALL_GENERATORS = {
    "melgan": ("MelGANGenerator", dict(in_channels=5, channels=16, upsample_scales=[2, 2], stacks=2),
               lambda: (torch.randn(2, 5, FRAMES),)),
    "melgan-causal": ("MelGANGenerator", dict(in_channels=5, channels=16, upsample_scales=[2, 2], stacks=2,
                                              use_causal_conv=True), lambda: (torch.randn(2, 5, 2 * FRAMES),)),
    "mb-melgan": ("MelGANGenerator", dict(in_channels=5, out_channels=4, channels=16, upsample_scales=[3, 2],
                                          stacks=2), lambda: (torch.randn(1, 5, FRAMES),)),
    "hifigan-resblock1": ("HiFiGANGenerator", dict(in_channels=5, channels=16, upsample_scales=(2, 2),
                                                   upsample_kernel_sizes=(4, 4), resblock_kernel_sizes=(3, 5),
                                                   resblock_dilations=[(1, 3), (1, 2)]),
                          lambda: (torch.randn(2, 5, FRAMES),)),
    "hifigan-resblock2": ("HiFiGANGenerator", dict(in_channels=5, channels=16, upsample_scales=(4,),
                                                   upsample_kernel_sizes=(8,), resblock_kernel_sizes=(3, 5),
                                                   resblock_dilations=[(1, 2), (2, 6)], use_additional_convs=False),
                          lambda: (torch.randn(1, 5, FRAMES),)),
    "pwg": ("ParallelWaveGANGenerator", dict(layers=4, stacks=2, residual_channels=8, gate_channels=16,
                                             skip_channels=8, aux_channels=5, aux_context_window=1,
                                             upsample_params={"upsample_scales": [2, 2]}),
            lambda: (torch.randn(2, 1, 4 * FRAMES), torch.randn(2, 5, FRAMES + 2))),
}  # fmt: skip

SMALL_DISCRIMINATORS = {
    "melgan-msd": ("MelGANMultiScaleDiscriminator", dict(scales=2, channels=4, max_downsample_channels=16,
                                                        downsample_scales=[2, 2])),
    "hifigan-mpd": ("HiFiGANMultiPeriodDiscriminator", dict(periods=[2, 3], discriminator_params=dict(
        channels=4, downsample_scales=[3, 1], max_downsample_channels=8))),
    "hifigan-msd": ("HiFiGANMultiScaleDiscriminator", dict(scales=2, discriminator_params=dict(
        channels=4, max_downsample_channels=8, max_groups=4, kernel_sizes=[5, 7, 5, 3], downsample_scales=[2, 1]),
        follow_official_norm=True)),
    "hifigan-msmpd": ("HiFiGANMultiScaleMultiPeriodDiscriminator", dict(
        scales=2, scale_discriminator_params=dict(channels=4, max_downsample_channels=8, max_groups=4,
                                                  kernel_sizes=[5, 7, 5, 3], downsample_scales=[2, 1]),
        periods=[2, 3], period_discriminator_params=dict(channels=4, downsample_scales=[3, 1],
                                                         max_downsample_channels=8))),
    "pwg": ("ParallelWaveGANDiscriminator", dict(layers=4, conv_channels=8)),
}  # fmt: skip


def pwg_models():
    return parallel_wavegan("models")


def build_pair(name: str, kwargs: dict, seed: int = 0, perturb: bool = True):
    """parallel_wavegan's model from a seed and ours with its state_dict loaded, both on DEVICE."""
    torch.manual_seed(seed)
    theirs = getattr(pwg_models(), name)(**copy.deepcopy(kwargs)).to(DEVICE)
    ours = getattr(models, name)(**copy.deepcopy(kwargs)).to(DEVICE)
    if perturb:  # as after training: no parameter keeps its (often deterministic) initial value
        with torch.no_grad():
            for parameter in theirs.parameters():
                parameter.add_(0.1 * parameter.abs().mean() * torch.randn_like(parameter))
    assert list(ours.state_dict()) == list(theirs.state_dict()), "state_dict keys differ"
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def flatten(outputs):
    if isinstance(outputs, (list, tuple)):
        return [t for item in outputs for t in flatten(item)]
    return [outputs]


def assert_outputs_close(ours, theirs):
    ours, theirs = flatten(ours), flatten(theirs)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert_close_scaled(a, b, MODELS)


def assert_gradients_close(ours: torch.nn.Module, theirs: torch.nn.Module):
    named = dict(theirs.named_parameters())
    grads = [p.grad.abs().max() for p in theirs.parameters() if p.grad is not None]
    model_scale = torch.stack(grads).max().item()
    for name, parameter in ours.named_parameters():
        expected = named[name].grad
        if expected is None:  # unused by parallel_wavegan's graph (e.g. the last WaveNet layer's residual conv)
            assert parameter.grad is None or parameter.grad.abs().max() == 0, f"{name}: expected no gradient"
            continue
        assert parameter.grad is not None, f"no gradient for {name}"
        if expected.abs().max() <= 1e-6 * model_scale:
            # Zero in exact arithmetic, rounding noise in both (e.g. weight_v of a weight-normed conv
            # whose rows have one element: w = g * sign(v)); only its size can be compared.
            assert parameter.grad.abs().max() <= 1e-5 * model_scale, name
            continue
        assert_close_scaled(parameter.grad, expected, MODELS)


class TestSmallConfigurations:
    """Forward and every parameter gradient equal to parallel_wavegan's; both passes."""

    @pytest.mark.parametrize("case", list(SMALL_GENERATORS))
    def test_generator(self, case):
        name, kwargs, make_inputs = SMALL_GENERATORS[case]
        theirs, ours = build_pair(name, kwargs)
        inputs = make_inputs()
        expected, actual = theirs(*inputs), ours(*inputs)
        assert_outputs_close(actual, expected)
        grad_out = torch.randn_like(expected)
        expected.backward(grad_out)
        actual.backward(grad_out)
        assert_gradients_close(ours, theirs)

    @pytest.mark.parametrize("case", list(SMALL_DISCRIMINATORS))
    def test_discriminator(self, case):
        name, kwargs = SMALL_DISCRIMINATORS[case]
        theirs, ours = build_pair(name, kwargs)
        x = torch.randn(2, 1, 67)
        x_theirs, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
        expected, actual = flatten(theirs(x_theirs)), flatten(ours(x_ours))
        assert_outputs_close(actual, expected)
        grads = [torch.randn_like(t) for t in expected]
        torch.autograd.backward(expected, grads)
        torch.autograd.backward(actual, grads)
        assert_gradients_close(ours, theirs)
        assert_close_scaled(x_ours.grad, x_theirs.grad, MODELS)

    @pytest.mark.parametrize("case", ["melgan", "pwg"])  # HiFi-GAN: the checkpoint tests fold it too
    def test_remove_weight_norm_keeps_the_function_and_parallel_wavegans_keys(self, case):
        name, kwargs, make_inputs = SMALL_GENERATORS[case]
        theirs, ours = build_pair(name, kwargs)
        inputs = make_inputs()
        with torch.no_grad():
            before = ours(*inputs)
            theirs.remove_weight_norm()
            ours.remove_weight_norm()
            assert not any(k.endswith(("weight_g", "weight_v")) for k in ours.state_dict())
            assert list(ours.state_dict()) == list(theirs.state_dict())
            assert_outputs_close(ours(*inputs), before)
            assert_outputs_close(ours(*inputs), theirs(*inputs))

    def test_scale_discriminator_loads_a_checkpoint_trained_without_its_norm(self):
        # parallel_wavegan's compatibility rule (its PR 409): the norm the config names but the
        # checkpoint lacks is removed from the model before loading.
        kwargs = SMALL_DISCRIMINATORS["hifigan-msd"][1]["discriminator_params"]
        torch.manual_seed(0)
        theirs = pwg_models().HiFiGANScaleDiscriminator(**kwargs, use_weight_norm=False).to(DEVICE)
        ours = models.HiFiGANScaleDiscriminator(**kwargs).to(DEVICE)
        ours.load_state_dict(theirs.state_dict())
        assert not ours.use_weight_norm
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())  # removal re-registers weight after bias
        x = torch.randn(1, 1, 67)
        with torch.no_grad():
            assert_outputs_close(ours(x), theirs(x))

    def test_inference_matches_parallel_wavegan(self):
        for case in ("melgan", "hifigan-resblock1"):
            name, kwargs, _ = SMALL_GENERATORS[case]
            theirs, ours = build_pair(name, kwargs)
            features = np.random.default_rng(0).standard_normal((FRAMES, 5)).astype(np.float32)
            with torch.no_grad():
                expected, actual = theirs.inference(features), ours.inference(features)
            assert actual.shape == (FRAMES * 4, 1)
            assert_close_scaled(actual, expected, MODELS)
        name, kwargs, _ = SMALL_GENERATORS["pwg"]
        theirs, ours = build_pair(name, kwargs)
        features, noise = torch.randn(FRAMES, 5), torch.randn(FRAMES * 4, 1)
        with torch.no_grad():
            expected, actual = theirs.inference(features, noise), ours.inference(features, noise)
        assert actual.shape == (FRAMES * 4, 1)
        assert_close_scaled(actual, expected, MODELS)

    def test_multiband_inference_synthesises_through_pqmf(self):
        name, kwargs, _ = SMALL_GENERATORS["mb-melgan"]
        theirs, ours = build_pair(name, kwargs)
        theirs.pqmf = parallel_wavegan("layers").PQMF(subbands=4).to(DEVICE)
        ours.pqmf = PQMF(subbands=4).to(DEVICE)
        features = torch.randn(FRAMES, 5)
        with torch.no_grad():
            expected, actual = theirs.inference(features), ours.inference(features)
        assert actual.shape == (FRAMES * 6 * 4, 1)
        assert_close_scaled(actual, expected, MODELS)


PWG_INFERENCE = {
    "centred": dict(SMALL_GENERATORS["pwg"][1], upsample_params={"upsample_scales": [3, 2]}),
    "causal": dict(PWG_CAUSAL),
    "no-context-conv": dict(SMALL_GENERATORS["pwg"][1], upsample_net="UpsampleNetwork", aux_context_window=0,
                            upsample_params={"upsample_scales": [2, 3]}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PWG_INFERENCE))
@pytest.mark.parametrize("threads", [1, 2])
def test_pwg_inference_with_aux_convs_at_frame_rate(monkeypatch, case, threads):
    """CPU inference on the reference path hands the blocks the frames and the upsampler as a band (their aux
    convs run at frame rate): still parallel_wavegan's output, in chunks of three frames per thread."""
    import fastgan.references.wavenet_block as reference

    kwargs = PWG_INFERENCE[case]
    theirs, ours = build_pair("ParallelWaveGANGenerator", kwargs)
    theirs.eval(), ours.eval()
    frames, window = 11, kwargs.get("aux_context_window", 2)
    generator = torch.Generator(device=DEVICE).manual_seed(4)
    z = torch.randn(2, 1, frames * 6, generator=generator)
    c = torch.randn(2, kwargs["aux_channels"], frames + 2 * window, generator=generator)
    monkeypatch.setattr(reference, "CPU_CHUNK", 20)  # 18 samples (three frames) a chunk per thread
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            assert ours._aux_at_frame_rate(z, c) == (DEVICE.type == "cpu" and not INTERPRETER)
            actual, expected = ours(z, c), theirs(z, c)
    finally:
        torch.set_num_threads(previous)
    assert_outputs_close(actual, expected)
    assert not ours._aux_at_frame_rate(z.requires_grad_(), c), "training takes the upsampled features"


@pytest.mark.reference  # paper-size models: too slow for the Triton interpreter
class TestDefaultConfigurations:
    @pytest.mark.parametrize(
        "name, kwargs, make_inputs",
        [
            ("MelGANGenerator", {}, lambda: (torch.randn(1, 80, FRAMES),)),
            ("MelGANGenerator", dict(out_channels=4, channels=384, upsample_scales=[5, 5, 3], stacks=4),
             lambda: (torch.randn(1, 80, 2 * FRAMES),)),  # Multi-band MelGAN's (dilation 27 needs > 27 samples)
            ("HiFiGANGenerator", models.HIFIGAN_CONFIGS["v1"], lambda: (torch.randn(1, 80, FRAMES),)),
            ("HiFiGANGenerator", models.HIFIGAN_CONFIGS["v2"], lambda: (torch.randn(1, 80, FRAMES),)),
            ("HiFiGANGenerator", models.HIFIGAN_CONFIGS["v3"], lambda: (torch.randn(1, 80, FRAMES),)),
            ("ParallelWaveGANGenerator", {}, lambda: (torch.randn(1, 1, 256 * FRAMES), torch.randn(1, 80, FRAMES + 4))),
            ("MelGANMultiScaleDiscriminator", {}, lambda: (torch.randn(1, 1, 4096),)),
            ("HiFiGANMultiPeriodDiscriminator", {}, lambda: (torch.randn(1, 1, 4096),)),
            ("HiFiGANMultiScaleDiscriminator", {}, lambda: (torch.randn(1, 1, 4096),)),
            ("ParallelWaveGANDiscriminator", {}, lambda: (torch.randn(1, 1, 4096),)),
        ],
        ids=["melgan", "mb-melgan", "hifigan-v1", "hifigan-v2", "hifigan-v3", "pwg", "melgan-msd", "hifigan-mpd",
             "hifigan-msd", "pwg-d"],
    )  # fmt: skip
    def test_outputs_equal_parallel_wavegans(self, name, kwargs, make_inputs):
        # The seed's weights as they are (the small configurations cover perturbed, "trained" ones).
        theirs, ours = build_pair(name, kwargs, perturb=False)
        inputs = make_inputs()
        with torch.no_grad():
            assert_outputs_close(ours(*inputs), theirs(*inputs))
            theirs.remove_weight_norm() if hasattr(theirs, "remove_weight_norm") else None
            ours.remove_weight_norm() if hasattr(ours, "remove_weight_norm") else None
            assert_outputs_close(ours(*inputs), theirs(*inputs))

    @pytest.mark.parametrize(
        "version, millions", [("v1", 13.92), ("v2", 0.92), ("v3", 1.46)]
    )  # the HiFi-GAN paper's Table 1 (parameters without weight norm's extra g)
    def test_hifigan_parameter_counts_match_the_paper(self, version, millions):
        generator = models.HiFiGANGenerator.from_config(version)
        generator.remove_weight_norm()
        count = sum(p.numel() for p in generator.parameters()) / 1e6
        assert millions <= count < millions + 0.01

    def test_melgan_parameter_count_matches_the_paper(self):
        generator = models.MelGANGenerator()
        generator.remove_weight_norm()
        assert round(sum(p.numel() for p in generator.parameters()) / 1e6, 2) == 4.26  # Kumar et al. 2019


PAIRS = {
    "melgan": ("melgan", "melgan-msd"),
    "mb-melgan": ("mb-melgan", "melgan-msd"),
    "hifigan": ("hifigan-resblock1", "hifigan-msmpd"),
    "pwg": ("pwg", "pwg"),
}


def small_discriminator(case: str) -> torch.nn.Module:
    name, kwargs = SMALL_DISCRIMINATORS[case]
    return getattr(models, name)(**copy.deepcopy(kwargs)).to(DEVICE)


@pytest.mark.parametrize("pair", list(PAIRS))
def test_backward_through_generator_and_discriminator(pair):
    """One least-squares GAN step with feature matching: every parameter of both gets a finite gradient."""
    generator_case, discriminator_case = PAIRS[pair]
    name, kwargs, make_inputs = SMALL_GENERATORS[generator_case]
    generator = getattr(models, name)(**copy.deepcopy(kwargs)).to(DEVICE)
    discriminator = small_discriminator(discriminator_case)
    fake = generator(*make_inputs())
    if pair == "mb-melgan":
        fake = PQMF(subbands=4).to(DEVICE).synthesis(fake)
    real = torch.randn_like(fake)

    def outputs(x):
        result = discriminator(x)
        return result if isinstance(result, list) else [[result]]

    def last(o):
        return o[-1] if isinstance(o, list) else o

    loss_d = sum(((last(r) - 1) ** 2).mean() + (last(f) ** 2).mean()
                 for r, f in zip(outputs(real), outputs(fake.detach()), strict=True))  # fmt: skip
    loss_d.backward()
    for parameter in discriminator.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
    discriminator.zero_grad()
    real_features = [[t.detach() for t in (o if isinstance(o, list) else [o])] for o in outputs(real)]
    fake_outputs = outputs(fake)
    loss_adv = sum(((last(f) - 1) ** 2).mean() for f in fake_outputs)
    loss_fm = sum((a - b).abs().mean() for fo, ro in zip(fake_outputs, real_features, strict=True)
                  for a, b in zip(fo[:-1] if isinstance(fo, list) else [], ro[:-1], strict=True))  # fmt: skip
    (loss_adv + 2.0 * loss_fm).backward()
    for parameter in generator.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()


@pytest.mark.parametrize("pair", list(PAIRS))
def test_training_after_an_inference_mode_call(pair, monkeypatch):
    """A validation pass under torch.inference_mode, then a training step in the same process: constants
    that the ops cache (the upsampler's phase map, STFT windows and DFT bases) are made inside that first
    call, and must not be inference tensors that autograd then refuses to save."""
    import fastgan.functional
    import fastgan.ops.stft_loss
    import fastgan.references.upsample

    monkeypatch.setattr(fastgan.references.upsample, "_ASSIGNMENTS", {})
    monkeypatch.setattr(fastgan.ops.stft_loss, "_STFT_WINDOWS", {})
    if INTERPRETER or DEVICE.type == "cuda":  # the kernels run: their bases are cached too
        import fastgan.kernels.stft_loss as stft_kernels

        for cache in ("_BASIS_CACHE", "_WINDOW_CACHE", "_MEL_CACHE"):
            monkeypatch.setattr(stft_kernels, cache, {})
    generator_case, discriminator_case = PAIRS[pair]
    name, kwargs, make_inputs = SMALL_GENERATORS[generator_case]
    generator = getattr(models, name)(**copy.deepcopy(kwargs)).to(DEVICE)
    discriminator = small_discriminator(discriminator_case)
    inputs = make_inputs()

    def step():
        fake = generator(*inputs).sum(1)
        real = torch.ones_like(fake)
        sc, mag = fastgan.functional.stft_loss(fake, real, 16, 4, 12, "hann_window")
        return sc + mag + flatten(discriminator(fake.unsqueeze(1)))[-1].mean()

    with torch.inference_mode():
        step()
    step().backward()
    for parameter in generator.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()


class TestErrors:
    def test_bad_configurations(self):
        with pytest.raises(ValueError, match="must be 2 x"):
            models.HiFiGANGenerator(upsample_scales=(8,), upsample_kernel_sizes=(15,), channels=16)
        with pytest.raises(ValueError, match="unknown configuration"):
            models.HiFiGANGenerator.from_config("v4")
        with pytest.raises(ValueError, match="multiple of stacks"):
            models.ParallelWaveGANGenerator(layers=10, stacks=3)
        with pytest.raises(ValueError, match="unknown upsample_net"):
            models.ParallelWaveGANGenerator(upsample_net="Nope")
        with pytest.raises(ValueError, match="divisible"):
            models.MelGANGenerator(channels=264)

    def test_pwg_length_mismatch_names_both_lengths(self):
        name, kwargs, _ = SMALL_GENERATORS["pwg"]
        generator = getattr(models, name)(**kwargs)
        with pytest.raises(ValueError, match="upsampled features have 16 samples, noise z has 15"):
            generator(torch.randn(1, 1, 15), torch.randn(1, 5, FRAMES + 2))

    def test_default_upsample_params_are_not_mutated(self):
        params = {"upsample_scales": [2, 2]}
        models.ParallelWaveGANGenerator(layers=2, stacks=1, upsample_params=params)
        assert params == {"upsample_scales": [2, 2]}


# The streaming/export set (12 mel channels): every generator family, causal variants included.
INPUT_CHECKED = ("melgan", "melgan-causal", "mb-melgan", "hifigan-resblock1", "pwg", "pwg-causal")


def small_generator(name: str):
    from tests.small_generators import small_generators

    return small_generators()[name]().to(DEVICE).eval()


class TestInputErrors:
    """Bad input to ``inference``/``forward`` gets an error naming the problem, not a raw torch error."""

    @pytest.mark.parametrize("name", INPUT_CHECKED)
    def test_inference_names_the_expected_feature_shape(self, name):
        from tests.small_generators import MEL

        generator = small_generator(name)
        cls = type(generator).__name__
        with torch.no_grad():
            with pytest.raises(ValueError, match=rf"{cls}\.inference: c must be \(frames, {MEL}\), got shape "
                                                 rf"\({MEL}, 40\) \(it looks transposed"):  # fmt: skip
                generator.inference(torch.randn(MEL, 40))
            with pytest.raises(ValueError, match=rf"c must be \(frames, {MEL}\), got shape \(40, {MEL + 1}\)$"):
                generator.inference(torch.randn(40, MEL + 1))

    @pytest.mark.parametrize("name", INPUT_CHECKED)
    def test_inference_says_how_many_frames_the_model_needs(self, name):
        from tests.small_generators import MEL

        generator = small_generator(name)
        need = generator.min_frames
        with torch.no_grad():
            for frames in {0, need - 1} - {-1}:
                with pytest.raises(ValueError, match=rf"too short: {frames} frames, this model needs at least {need}"):
                    generator.inference(torch.randn(frames, MEL))
            generator.inference(torch.randn(need, MEL))  # the minimum itself runs

    @pytest.mark.parametrize(
        "kwargs",
        [
            dict(in_channels=5, channels=16, upsample_scales=[2, 2], stacks=2),
            dict(in_channels=5, channels=16, upsample_scales=[2], stacks=4),  # a residual stack's pad dominates
            dict(in_channels=5, channels=16, upsample_scales=[2, 2], stacks=3, use_causal_conv=True),
            dict(in_channels=5, channels=16, upsample_scales=[2, 2], kernel_size=9, pad="ReplicationPad1d"),
        ],
    )
    def test_melgan_min_frames_is_the_exact_limit_of_its_layers(self, kwargs):
        """Derived from the structure: one frame fewer fails inside torch's own layers, the minimum runs."""
        from fastgan.models._common import run_layers

        generator = models.MelGANGenerator(**kwargs).to(DEVICE)
        need = generator.min_frames
        with torch.no_grad():
            run_layers(generator.melgan, torch.randn(1, 5, need))
            with pytest.raises((RuntimeError, ValueError)):  # raised by torch's layers or the fused ops
                run_layers(generator.melgan, torch.randn(1, 5, need - 1))

    @pytest.mark.parametrize("name", INPUT_CHECKED)
    def test_inference_rejects_a_dtype_other_than_the_models(self, name):
        from tests.small_generators import MEL

        generator = small_generator(name)
        with torch.no_grad():
            with pytest.raises(TypeError, match=r"c has dtype torch\.float64, the model's parameters torch\.float32"):
                generator.inference(torch.randn(40, MEL, dtype=torch.float64))
            with pytest.raises(TypeError, match=r"c must be a floating-point tensor, got dtype torch\.int64"):
                generator.inference(torch.ones(40, MEL, dtype=torch.int64))
            # parallel_wavegan's conversion of array input stays: any real array becomes the model's floats
            assert generator.inference(np.ones((40, MEL))).dtype == torch.float32

    @pytest.mark.parametrize("name", ["melgan", "mb-melgan", "hifigan-resblock1"])
    def test_forward_checks_channels_frames_and_dtype(self, name):
        from tests.small_generators import MEL

        generator = small_generator(name)
        cls = type(generator).__name__
        with torch.no_grad():
            with pytest.raises(ValueError, match=rf"{cls}\.forward: c must be \(batch, {MEL}, frames\), got shape "
                                                 rf"\(1, {MEL + 1}, 40\)"):  # fmt: skip
                generator(torch.randn(1, MEL + 1, 40))
            with pytest.raises(ValueError, match=r"too short: 0 frames"):
                generator(torch.randn(1, MEL, 0))
            with pytest.raises(TypeError, match=r"float64"):
                generator(torch.randn(1, MEL, 40, dtype=torch.float64))
            generator(torch.randn(MEL, 40))  # unbatched, as torch's layers (and parallel_wavegan) take it

    def test_forward_under_autocast_takes_the_autocast_dtypes(self):
        from tests.small_generators import MEL

        generator = small_generator("melgan")
        with torch.no_grad(), torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            assert generator(torch.randn(1, MEL, 20, dtype=torch.bfloat16)).shape == (1, 1, 160)
            with pytest.raises(TypeError, match=r"float64"):  # autocast leaves float64 alone
                generator(torch.randn(1, MEL, 20, dtype=torch.float64))

    def test_pwg_inference_checks_the_noise_shape(self):
        from tests.small_generators import MEL

        generator = small_generator("pwg")
        with torch.no_grad():
            with pytest.raises(ValueError, match=r"x must be \(samples, 1\), got shape \(240,\)"):
                generator.inference(torch.randn(40, MEL), torch.randn(240))
            with pytest.raises(TypeError, match=r"x has dtype torch\.float64"):
                generator.inference(torch.randn(40, MEL), torch.randn(240, 1, dtype=torch.float64))
            assert generator.inference(None, torch.randn(240, 1)).shape == (240, 1)

    def test_pwg_forward_checks_noise_and_feature_channels(self):
        from tests.small_generators import MEL

        generator = small_generator("pwg")
        with torch.no_grad():
            with pytest.raises(ValueError, match=r"z must be \(batch, 1, samples\), got shape \(1, 2, 240\)"):
                generator(torch.randn(1, 2, 240), torch.randn(1, MEL, 44))
            with pytest.raises(
                ValueError,
                match=rf"c must be \(batch, {MEL}, frames \+ 2 \* aux_context_window\), "
                rf"got shape \(1, {MEL + 1}, 44\)",
            ):
                generator(torch.randn(1, 1, 240), torch.randn(1, MEL + 1, 44))

    def test_pqmf_refuses_integer_signals(self):
        """Integer input used to cast the filters to integers (all zero): a silently wrong answer."""
        pqmf = PQMF(subbands=4).to(DEVICE)
        with pytest.raises(TypeError, match=r"PQMF\.analysis: x must be floating-point, got dtype torch\.int64"):
            pqmf.analysis((1000 * torch.randn(1, 1, 64)).long())
        with pytest.raises(TypeError, match=r"PQMF\.synthesis: x must be floating-point, got dtype torch\.int32"):
            pqmf.synthesis(torch.ones(1, 4, 16, dtype=torch.int32))
        with pytest.raises(TypeError, match=r"got dtype torch\.complex64"):
            pqmf(torch.ones(1, 1, 64, dtype=torch.complex64))
        x = torch.randn(1, 1, 64, dtype=torch.float64)
        assert pqmf.analysis(x).dtype == torch.float64  # any float dtype: the filters follow it


DROP_INS = {
    "layers": ["ResidualStack", "HiFiGANResidualBlock", "WaveNetResidualBlock", "UpsampleNetwork",
               "ConvInUpsampleNetwork", "PQMF"],
    "losses": ["STFTLoss", "MultiResolutionSTFTLoss"],
    "models": ["MelGANGenerator", "MelGANDiscriminator", "MelGANMultiScaleDiscriminator", "ParallelWaveGANGenerator",
               "ParallelWaveGANDiscriminator", "HiFiGANGenerator", "HiFiGANMultiPeriodDiscriminator",
               "HiFiGANMultiScaleDiscriminator", "HiFiGANMultiScaleMultiPeriodDiscriminator"],
}  # fmt: skip


def _source_defaults(init) -> list[tuple[str, object]]:
    """(name, default) of ``init``'s arguments as its source writes them. parallel_wavegan's constructors update
    some dict defaults in place (ParallelWaveGANGenerator's upsample_params gains three keys on first use), so
    the live signature depends on which tests built one before."""
    import ast
    import inspect
    import textwrap

    arguments = ast.parse(textwrap.dedent(inspect.getsource(init))).body[0].args
    positional = arguments.posonlyargs + arguments.args
    live = inspect.signature(init).parameters
    defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    result = []
    for argument, default in zip(positional, defaults, strict=True):
        try:
            value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
        except ValueError:  # not a literal (a name, a call): the live default is the source's
            value = live[argument.arg].default
        result.append((argument.arg, value))
    return result


@pytest.mark.reference  # signatures only: nothing runs a kernel
@pytest.mark.parametrize("name", [f"{where}.{name}" for where, names in DROP_INS.items() for name in names])
def test_drop_in_constructor_matches_parallel_wavegan(name):
    # Swapping the import must keep every call working: parallel_wavegan's arguments, in its order, with its
    # defaults (fastgan's own options come after them, keyword-only).
    import inspect

    where, class_name = name.split(".")
    ours = getattr(fastgan.nn if where != "models" else models, class_name)
    theirs = _source_defaults(getattr(parallel_wavegan(where), class_name).__init__)
    ours_params = list(inspect.signature(ours.__init__).parameters.values())
    assert [(p.name, p.default) for p in ours_params[: len(theirs)]] == theirs
    extra = ours_params[len(theirs) :]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra), [p.name for p in extra]
