"""Exact streaming: chunked synthesis equals the whole utterance, for every generator and chunk size.

The whole-utterance output is the model's own ``inference`` (fastgan's ops: the references in the
fallback pass, the Triton kernels through the interpreter in the second pass); the stream runs
plain-PyTorch convolutions over cached state. They sum the same fp32 products in another order,
so the comparison uses the REDUCTION table on outputs scaled to max |expected| = 1.
"""

from __future__ import annotations

import pytest
import torch

from fastgan import StreamingVocoder
from tests.conftest import DEVICE, INTERPRETER
from tests.oracle import parallel_wavegan
from tests.small_generators import HIFIGAN_RESBLOCK1, MEL, MELGAN, PWG, PWG_CAUSAL, small_generators
from tests.tolerances import REDUCTION, assert_close_scaled

FRAMES = 23
CHUNKS = (1, 3, 10, 64)  # one frame at a time, uneven, the nominal 10, longer than the utterance


MODELS = list(small_generators())


def _whole(generator, mel, noise=None):
    with torch.no_grad():
        if noise is not None:
            return generator.inference(mel, x=noise.reshape(-1, 1)).reshape(-1)
        return generator.inference(mel).reshape(-1)


def _streamed(generator, mel, chunk, noise=None):
    vocoder = StreamingVocoder(generator, chunk_frames=chunk)
    return torch.cat(list(vocoder.stream(mel, noise))), vocoder


def _inputs(generator, frames=FRAMES):
    g = torch.Generator(device=DEVICE).manual_seed(1)
    mel = torch.randn(frames, MEL, generator=g, device=DEVICE)
    noise = None
    if hasattr(generator, "first_conv"):
        noise = torch.randn(frames * generator.upsample_factor, generator=g, device=DEVICE)
    return mel, noise


@pytest.mark.parametrize("name", MODELS)
def test_streamed_equals_whole(name):
    generator = small_generators()[name]().to(DEVICE).eval()
    mel, noise = _inputs(generator)
    expected = _whole(generator, mel, noise)
    chunks = CHUNKS if not INTERPRETER else (1, 10)
    for chunk in chunks:
        actual, vocoder = _streamed(generator, mel, chunk, noise)
        assert actual.shape == (FRAMES * vocoder.hop_size,)
        assert_close_scaled(actual, expected, REDUCTION, torch.float32)


@pytest.mark.parametrize("name", ["melgan", "hifigan-resblock1", "pwg", "mb-melgan"])
def test_lookahead_is_what_the_stream_holds_back(name):
    """After n frames, exactly n * hop - lookahead samples are out; each later chunk gives chunk * hop."""
    generator = small_generators()[name]().to(DEVICE).eval()
    frames = 40
    mel, noise = _inputs(generator, frames)
    vocoder = StreamingVocoder(generator, chunk_frames=1, sample_rate=16000)
    hop = vocoder.hop_size
    emitted = 0
    for n in range(1, frames + 1):
        z = None if noise is None else noise[(n - 1) * hop : n * hop]
        piece = vocoder.push(mel[n - 1 : n], z)
        emitted += piece.numel()
        if n * hop > vocoder.lookahead_samples + 4 * hop:  # past every layer's start
            assert piece.numel() == hop
            assert emitted == n * hop - vocoder.lookahead_samples
    assert emitted + vocoder.flush().numel() == frames * hop
    assert vocoder.lookahead_frames == -(-vocoder.lookahead_samples // hop)
    assert vocoder.lookahead_ms == pytest.approx(1000 * vocoder.lookahead_samples / 16000)
    assert vocoder.latency_ms == pytest.approx(1000 * (hop + vocoder.lookahead_samples) / 16000)
    assert vocoder.lookahead_samples > 0


@pytest.mark.parametrize("name", ["melgan-causal", "pwg-causal"])
def test_causal_generators_have_no_lookahead(name):
    generator = small_generators()[name]().to(DEVICE).eval()
    assert StreamingVocoder(generator).lookahead_samples == 0


def test_batched_stream_equals_each_item():
    generator = small_generators()["hifigan-resblock1"]().to(DEVICE).eval()
    g = torch.Generator(device=DEVICE).manual_seed(2)
    mel = torch.randn(2, MEL, FRAMES, generator=g, device=DEVICE)
    vocoder = StreamingVocoder(generator, chunk_frames=4)
    out = torch.cat([vocoder.push(mel[..., i : i + 4]) for i in range(0, FRAMES, 4)] + [vocoder.flush()], -1)
    assert out.shape == (2, 1, FRAMES * vocoder.hop_size)
    for b in range(2):
        assert_close_scaled(out[b, 0], _whole(generator, mel[b].t()), REDUCTION, torch.float32)


def test_a_vocoder_is_reusable_after_flush():
    generator = small_generators()["melgan"]().to(DEVICE).eval()
    mel, _ = _inputs(generator)
    first, vocoder = _streamed(generator, mel, 5)
    second = torch.cat(list(vocoder.stream(mel)))
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_bad_inputs_raise_clear_errors():
    generator = small_generators()["melgan"]().to(DEVICE).eval()
    vocoder = StreamingVocoder(generator, chunk_frames=4)
    with pytest.raises(ValueError, match="nothing was pushed"):
        vocoder.flush()
    with pytest.raises(ValueError, match=rf"takes {MEL} mel channels, got shape \(4, {MEL + 1}\)"):
        vocoder.push(torch.zeros(4, MEL + 1, device=DEVICE))  # the caller's (frames, mel) shape, as given
    with pytest.raises(ValueError, match="must be"):
        vocoder.push(torch.zeros(MEL, device=DEVICE))
    with pytest.raises(ValueError, match="noise is only for Parallel WaveGAN"):
        vocoder.push(torch.zeros(4, MEL, device=DEVICE), noise=torch.zeros(32, device=DEVICE))
    with pytest.raises(ValueError, match="chunk_frames"):
        StreamingVocoder(generator, chunk_frames=0)


def test_changing_the_batch_mid_utterance_is_refused():
    generator = small_generators()["melgan"]().to(DEVICE).eval()
    vocoder = StreamingVocoder(generator, chunk_frames=4)
    vocoder.push(torch.randn(1, MEL, 5, device=DEVICE))
    with pytest.raises(ValueError, match=r"batch of 2 .*this utterance has batch 1.*flush\(\) or reset\(\) first"):
        vocoder.push(torch.randn(2, MEL, 5, device=DEVICE))
    vocoder.push(torch.randn(1, MEL, 5, device=DEVICE))  # the stream is intact
    assert vocoder.flush().shape[0] == 1
    vocoder.push(torch.randn(2, MEL, 5, device=DEVICE))  # a new utterance may take another batch
    assert vocoder.flush().shape[0] == 2


def test_non_float_mel_or_noise_is_refused_not_cast():
    generator = small_generators()["melgan"]().to(DEVICE).eval()
    vocoder = StreamingVocoder(generator, chunk_frames=4)
    for dtype in (torch.complex64, torch.int64, torch.bool):
        with pytest.raises(TypeError, match=rf"mel must be real floating-point, got dtype {dtype}"):
            vocoder.push(torch.ones(5, MEL, dtype=dtype, device=DEVICE))
    with pytest.raises(TypeError, match=r"got dtype torch\.complex128"):
        vocoder.push(torch.ones(5, MEL, dtype=torch.float64).numpy().astype("complex128"))
    pwg = StreamingVocoder(small_generators()["pwg"]().to(DEVICE).eval(), chunk_frames=4)
    with pytest.raises(TypeError, match=r"noise must be real floating-point, got dtype torch\.complex64"):
        pwg.push(torch.randn(4, MEL, device=DEVICE), noise=torch.ones(4 * pwg.hop_size, dtype=torch.complex64))
    assert vocoder.push(torch.randn(5, MEL, dtype=torch.float64, device=DEVICE)).dtype == torch.float32  # cast


def test_stream_takes_numpy_as_push_does():
    generator = small_generators()["melgan"]().to(DEVICE).eval()
    mel, _ = _inputs(generator)
    expected, vocoder = _streamed(generator, mel, 4)
    torch.testing.assert_close(torch.cat(list(vocoder.stream(mel.cpu().numpy()))), expected, atol=0, rtol=0)
    pwg = small_generators()["pwg"]().to(DEVICE).eval()
    mel, noise = _inputs(pwg)
    expected, vocoder = _streamed(pwg, mel, 4, noise)
    actual = torch.cat(list(vocoder.stream(mel.cpu().numpy(), noise.cpu().numpy())))
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


def test_chunk_frames_must_be_an_integer():
    generator = small_generators()["melgan"]().to(DEVICE).eval()
    for bad in (2.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"chunk_frames must be an integer >= 1, got {bad}"):
            StreamingVocoder(generator, chunk_frames=bad)
    for bad in (None, "4", True):
        with pytest.raises(TypeError, match=rf"chunk_frames must be an integer >= 1, got {bad!r}"):
            StreamingVocoder(generator, chunk_frames=bad)
    assert StreamingVocoder(generator, chunk_frames=4.0).chunk_frames == 4


def test_a_generator_without_parameters_is_refused_clearly():
    with pytest.raises(ValueError, match=r"StreamingVocoder: ReLU has no parameters; expected a MelGAN"):
        StreamingVocoder(torch.nn.ReLU())


@pytest.mark.parametrize("name", ["melgan", "hifigan-resblock1", "pwg", "mb-melgan"])
def test_static_state_step_equals_eager(name):
    """The step a CUDA graph records (static state read, new state copied back in place), run eagerly:
    steady-state chunks take it, and the stream is unchanged across utterances."""
    generator = small_generators()[name]().to(DEVICE).eval()
    frames = 50
    mel, noise = _inputs(generator, frames)
    eager, vocoder = _streamed(generator, mel, 5, noise)
    assert vocoder.capture(emulate=True)
    replays = {"n": 0}
    replay = vocoder._graph.replay

    def counting(*args):
        replays["n"] += 1
        return replay(*args)

    vocoder._graph.replay = counting
    for _ in range(2):  # two utterances: flush and reset between them
        graphed = torch.cat(list(vocoder.stream(mel, noise)))
        torch.testing.assert_close(graphed, eager, atol=0, rtol=0)
    assert replays["n"] >= 2 * (frames // 5 - 1 - -(-vocoder.lookahead_frames // 5) - 4)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs need a CUDA device (FASTGAN_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("name", ["melgan", "hifigan-resblock1", "pwg"])
def test_cuda_graph_step_equals_eager(name):
    generator = small_generators()[name]().to(DEVICE).eval()
    frames = 60
    mel, noise = _inputs(generator, frames)
    eager, vocoder = _streamed(generator, mel, 5, noise)
    assert vocoder.capture()
    graphed = torch.cat(list(vocoder.stream(mel, noise)))
    assert_close_scaled(graphed, eager, REDUCTION, torch.float32)


@pytest.mark.reference
@pytest.mark.parametrize(
    "kind", ["MelGANGenerator", "HiFiGANGenerator", "ParallelWaveGANGenerator", "ParallelWaveGANGenerator-causal"]
)
def test_parallel_wavegan_models_stream_exactly(kind):
    """The streaming nodes are built from the module tree, so parallel_wavegan's own classes stream too."""
    models = parallel_wavegan("models")
    kwargs = {
        "ParallelWaveGANGenerator-causal": PWG_CAUSAL,
        "MelGANGenerator": MELGAN,
        "HiFiGANGenerator": HIFIGAN_RESBLOCK1,
        "ParallelWaveGANGenerator": PWG,
    }[kind]
    generator = getattr(models, kind.removesuffix("-causal"))(**kwargs).to(DEVICE).eval()
    mel, noise = _inputs(generator)
    expected = _whole(generator, mel, noise)
    if kind.endswith("-causal"):
        assert StreamingVocoder(generator).lookahead_samples == 0
    for chunk in (1, 7):
        actual, _ = _streamed(generator, mel, chunk, noise)
        assert_close_scaled(actual, expected, REDUCTION, torch.float32)
