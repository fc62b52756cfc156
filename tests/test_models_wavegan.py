"""WaveGAN / SpecGAN and their conditional and controllable variants: shapes, parameter counts
from the paper's layer shapes, phase shuffle in training only, label conditioning, backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fastgan.models import (
    SpecGANDiscriminator,
    SpecGANGenerator,
    SpecGANTransform,
    WaveGANClassifier,
    WaveGANDiscriminator,
    WaveGANGenerator,
)

from fastgan.references import phase_shuffle_reference
from tests.conftest import DEVICE, INTERPRETER
from tests.tolerances import REDUCTION, assert_close_scaled

# Small model sizes keep the interpreter pass's phase-shuffle grids to a few programs.
SMALL = 2
# A WaveGAN generator always ends in 16384 (or 65536) samples: its transposed convs take minutes in
# the Triton interpreter. There, test_generator_stack_on_a_short_input runs the same layers (and
# kernels) on a 1-sample input instead; tests/test_conv_transpose.py covers the kernel itself.
full_length_generator = pytest.mark.skipif(
    INTERPRETER, reason="16384-sample generator: minutes in the Triton interpreter (short-input test covers it)"
)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv(c_in: int, c_out: int, kernel: int) -> int:  # 1-D: kernel taps; 2-D: kernel x kernel
    return c_in * c_out * kernel + c_out


# The paper's tables (Donahue et al. 2019, appendix), d = model size, c = audio channels.
def wavegan_generator_params(d: int, c: int = 1, latent: int = 100, slice_len: int = 16384, cond: int = 0) -> int:
    widths = [16 * d, 8 * d, 4 * d, 2 * d, d, c] if slice_len == 16384 else [32 * d, 16 * d, 8 * d, 4 * d, 2 * d, d, c]
    total = dense(latent + cond, 16 * widths[0])
    return total + sum(conv(a, b, 25) for a, b in zip(widths[:-1], widths[1:], strict=True))


def wavegan_discriminator_params(d: int, c: int = 1, slice_len: int = 16384) -> int:
    widths = [c, d, 2 * d, 4 * d, 8 * d, 16 * d] if slice_len == 16384 else [c, d, 2 * d, 4 * d, 8 * d, 16 * d, 32 * d]
    return sum(conv(a, b, 25) for a, b in zip(widths[:-1], widths[1:], strict=True)) + dense(16 * widths[-1], 1)


class TestWaveGAN:
    @pytest.mark.parametrize("slice_len", [16384, 65536])
    def test_parameter_counts_match_the_papers_layer_shapes(self, slice_len):
        generator = WaveGANGenerator(slice_len=slice_len)
        discriminator = WaveGANDiscriminator(slice_len=slice_len)
        assert count(generator) == wavegan_generator_params(64, slice_len=slice_len)
        assert count(discriminator) == wavegan_discriminator_params(64, slice_len=slice_len)
        # d = 64, 16384 samples: the dense layer alone is 100 x 16384 + 16384.
        assert generator.dense.weight.shape == ((16 if slice_len == 16384 else 32) * 64 * 16, 100)

    def test_conditional_parameter_counts(self):
        generator = WaveGANGenerator(model_size=SMALL, num_classes=10, embedding_dim=7)
        assert count(generator) == wavegan_generator_params(SMALL, cond=7) + 10 * 7
        discriminator = WaveGANDiscriminator(model_size=SMALL, num_classes=10)
        assert count(discriminator) == wavegan_discriminator_params(SMALL) + 10 * 16 * 16 * SMALL

    @pytest.mark.parametrize("slice_len", [16384, 65536])
    @full_length_generator
    def test_shapes_and_range(self, slice_len):
        generator = WaveGANGenerator(model_size=SMALL, slice_len=slice_len)
        discriminator = WaveGANDiscriminator(model_size=SMALL, slice_len=slice_len)
        z = generator.sample_latent(2)
        assert z.min() >= -1 and z.max() <= 1
        audio = generator(z)
        assert audio.shape == (2, 1, slice_len)
        assert audio.abs().max() <= 1
        assert discriminator(audio).shape == (2, 1)

    @full_length_generator
    def test_generator_matches_a_plain_composition(self):
        generator = WaveGANGenerator(model_size=SMALL)
        z = generator.sample_latent(3)
        x = F.relu(F.linear(z, generator.dense.weight, generator.dense.bias).reshape(3, 16 * SMALL, 16))
        for i, layer in enumerate(generator.upconvs):
            x = F.conv_transpose1d(x, layer.weight, layer.bias, stride=4, padding=11, output_padding=1)
            x = torch.tanh(x) if i == 4 else F.relu(x)
        assert_close_scaled(generator(z), x, REDUCTION)  # the transposed convs are reductions

    def test_generator_stack_on_a_short_input(self):
        generator = WaveGANGenerator(model_size=SMALL)
        x = torch.randn(2, 16 * SMALL, 1, requires_grad=True)
        expected_input = x.detach().clone().requires_grad_()
        out = generator.upsample(x)
        assert out.shape == (2, 1, 4**5)
        expected = expected_input
        for i, layer in enumerate(generator.upconvs):
            expected = F.conv_transpose1d(F.relu(expected), layer.weight, layer.bias, stride=4, padding=11,
                                          output_padding=1)  # fmt: skip
            assert expected.shape[2] == 4 ** (i + 1)
        expected = torch.tanh(expected)
        assert_close_scaled(out, expected, REDUCTION)
        grad = torch.randn_like(out)
        out.backward(grad)
        expected.backward(grad)
        assert_close_scaled(x.grad, expected_input.grad, REDUCTION)

    def discriminator_by_hand(self, discriminator, x, shuffle: bool):
        """The paper's discriminator from plain ops; shifts drawn in the module's order."""
        convs = discriminator.body.convs
        for i, layer in enumerate(convs):
            x = F.conv1d(x, layer.weight, layer.bias, stride=4, padding=11)
            if i < 4 and shuffle:  # the first four convs only, at both lengths
                shifts = discriminator.body.shuffles[i].draw_shifts(x.shape[0], x.device)
                x = phase_shuffle_reference(x, shifts, 0.2)
            else:
                x = F.leaky_relu(x, 0.2)
        return discriminator.dense(x.flatten(1))

    def test_phase_shuffle_active_in_training_only(self):
        discriminator = WaveGANDiscriminator(model_size=SMALL)
        x = torch.randn(4, 1, 16384)
        discriminator.eval()
        eval_out = discriminator(x)
        assert torch.equal(eval_out, discriminator(x))  # deterministic in eval
        torch.testing.assert_close(eval_out, self.discriminator_by_hand(discriminator, x, shuffle=False))
        discriminator.train()
        torch.manual_seed(5)
        train_out = discriminator(x)
        torch.manual_seed(5)
        torch.testing.assert_close(train_out, self.discriminator_by_hand(discriminator, x, shuffle=True))
        assert not torch.allclose(train_out, eval_out)
        assert all(shuffle.n == 2 for shuffle in discriminator.body.shuffles)
        assert len(discriminator.body.shuffles) == len(discriminator.body.convs) - 1 == 4

    def test_long_variant_shuffles_after_the_first_four_convs_only(self):
        """slice_len=65536: six convs; the paper's code shuffles after layers 0-3, not after 4 (nor 5)."""
        discriminator = WaveGANDiscriminator(model_size=2, slice_len=65536)
        assert len(discriminator.body.convs) == 6 and len(discriminator.body.shuffles) == 4
        x = torch.randn(2, 1, 65536)
        torch.manual_seed(3)
        out = discriminator(x)
        torch.manual_seed(3)
        torch.testing.assert_close(out, self.discriminator_by_hand(discriminator, x, shuffle=True))

    @full_length_generator
    def test_conditional_generator_and_discriminator_use_the_label(self):
        generator = WaveGANGenerator(model_size=SMALL, num_classes=4)
        discriminator = WaveGANDiscriminator(model_size=SMALL, num_classes=4).eval()
        z = generator.sample_latent(1).expand(4, -1)
        labels = torch.arange(4)
        audio = generator(z, labels)
        for i in range(1, 4):
            assert not torch.allclose(audio[0], audio[i])
        logits = discriminator(audio[:1].expand(4, -1, -1), labels)
        assert len(set(logits.flatten().cpu().tolist())) == 4
        # The projection term is <embed(label), features>.
        features = discriminator.body(audio[:1])
        expected = discriminator.dense(features) + (discriminator.projection.weight[2] * features).sum()
        torch.testing.assert_close(logits[2:3], expected)

    def test_bad_inputs(self):
        generator = WaveGANGenerator(model_size=SMALL)
        with pytest.raises(ValueError, match=r"z must be \(batch, 100\)"):
            generator(torch.rand(2, 99))
        with pytest.raises(ValueError, match="without num_classes"):
            generator(torch.rand(2, 100), torch.tensor([0, 1]))
        with pytest.raises(ValueError, match="pass labels"):
            WaveGANGenerator(model_size=SMALL, num_classes=3)(torch.rand(2, 100))
        with pytest.raises(ValueError, match="slice_len must be one of"):
            WaveGANGenerator(slice_len=8000)
        with pytest.raises(ValueError, match=r"x must be \(batch, 1, 16384\)"):
            WaveGANDiscriminator(model_size=SMALL)(torch.randn(2, 1, 16000))

    def test_bad_labels(self):
        generator = WaveGANGenerator(model_size=SMALL, num_classes=3)
        z = torch.rand(2, 100)
        with pytest.raises(ValueError, match=r"WaveGANGenerator: labels must be in \[0, 3\), got values 1\.\.3"):
            generator(z, torch.tensor([1, 3]))
        with pytest.raises(ValueError, match=r"labels must be \(2,\) integers, one per example, got torch.float32"):
            generator(z, torch.tensor([0.0, 1.0]))
        with pytest.raises(
            ValueError, match=r"labels must be \(2,\) integers, one per example, got torch.int64 \(3,\)"
        ):
            generator(z, torch.tensor([0, 1, 2]))
        discriminator = WaveGANDiscriminator(model_size=SMALL, num_classes=3)
        with pytest.raises(ValueError, match=r"WaveGANDiscriminator: labels must be in \[0, 3\), got values -1\.\.0"):
            discriminator(torch.randn(2, 1, 16384), torch.tensor([-1, 0]))

    @full_length_generator
    def test_backward_through_generator_and_discriminator(self):
        generator = WaveGANGenerator(model_size=SMALL, num_classes=3)
        discriminator = WaveGANDiscriminator(model_size=SMALL, num_classes=3).train()
        labels = torch.tensor([0, 2])
        fake = generator(generator.sample_latent(2), labels)
        real = torch.rand(2, 1, 16384) * 2 - 1
        # WGAN-GP style critic loss, then the generator's loss.
        loss_d = discriminator(fake.detach(), labels).mean() - discriminator(real, labels).mean()
        loss_d.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in discriminator.parameters())
        loss_g = -discriminator(fake, labels).mean()
        loss_g.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in generator.parameters())

    @full_length_generator
    def test_controllable_classifier_steers_the_generator(self):
        generator = WaveGANGenerator(model_size=SMALL, num_classes=3)
        classifier = WaveGANClassifier(num_classes=3, model_size=SMALL)
        assert count(classifier) == wavegan_discriminator_params(SMALL) - dense(16 * 16 * SMALL, 1) + dense(
            16 * 16 * SMALL, 3
        )
        labels = torch.tensor([0, 1, 2])
        logits = classifier(generator(generator.sample_latent(3), labels))
        assert logits.shape == (3, 3)
        F.cross_entropy(logits, labels).backward()
        assert generator.embedding.weight.grad is not None and generator.embedding.weight.grad.abs().sum() > 0
        # No phase shuffle in the classifier: train and eval agree.
        x = torch.randn(2, 1, 16384)
        torch.testing.assert_close(classifier.train()(x), classifier.eval()(x))


def specgan_generator_params(d: int, c: int = 1, latent: int = 100) -> int:
    widths = [16 * d, 8 * d, 4 * d, 2 * d, d, c]
    return dense(latent, 16 * 16 * d) + sum(conv(a, b, 25) for a, b in zip(widths[:-1], widths[1:], strict=True))


def specgan_discriminator_params(d: int, c: int = 1) -> int:
    widths = [c, d, 2 * d, 4 * d, 8 * d, 16 * d]
    return sum(conv(a, b, 25) for a, b in zip(widths[:-1], widths[1:], strict=True)) + dense(16 * 16 * d, 1)


class TestSpecGAN:
    def test_parameter_counts_match_the_papers_layer_shapes(self):
        assert count(SpecGANGenerator()) == specgan_generator_params(64)
        assert count(SpecGANDiscriminator()) == specgan_discriminator_params(64)

    def test_shapes_backward_and_conditioning(self):
        generator = SpecGANGenerator(model_size=SMALL, num_classes=2)
        discriminator = SpecGANDiscriminator(model_size=SMALL, num_classes=2)
        z = generator.sample_latent(1).expand(2, -1)
        labels = torch.tensor([0, 1])
        spec = generator(z, labels)
        assert spec.shape == (2, 1, 128, 128) and spec.abs().max() <= 1
        assert not torch.allclose(spec[0], spec[1])
        logits = discriminator(spec, labels)
        assert logits.shape == (2, 1)
        (-logits.mean()).backward()
        assert all(p.grad is not None for p in generator.parameters())
        with pytest.raises(ValueError, match=r"x must be \(batch, 1, 128, 128\)"):
            discriminator(torch.randn(2, 1, 64, 64), labels)

    def test_bad_labels(self):
        # As WaveGAN's: a clear error instead of an IndexError (a device-side assert on CUDA) or ignored labels.
        z = torch.rand(2, 100)
        with pytest.raises(ValueError, match="SpecGANGenerator: labels given, but the model was built without"):
            SpecGANGenerator(model_size=SMALL)(z, torch.tensor([0, 1]))
        conditional = SpecGANGenerator(model_size=SMALL, num_classes=3)
        with pytest.raises(ValueError, match="pass labels"):
            conditional(z)
        with pytest.raises(ValueError, match=r"SpecGANGenerator: labels must be in \[0, 3\), got values 1\.\.3"):
            conditional(z, torch.tensor([1, 3]))
        with pytest.raises(ValueError, match=r"labels must be \(2,\) integers, one per example, got torch.float32"):
            conditional(z, torch.tensor([0.0, 1.0]))
        spec = torch.randn(2, 1, 128, 128)
        with pytest.raises(ValueError, match="SpecGANDiscriminator: labels given, but the model was built without"):
            SpecGANDiscriminator(model_size=SMALL)(spec, torch.tensor([0, 1]))
        with pytest.raises(ValueError, match=r"SpecGANDiscriminator: labels must be in \[0, 3\), got values -1\.\.0"):
            SpecGANDiscriminator(model_size=SMALL, num_classes=3)(spec, torch.tensor([-1, 0]))
        for model in (SpecGANGenerator, SpecGANDiscriminator, WaveGANGenerator, WaveGANDiscriminator):
            for bad in (1, 2.5, True):
                with pytest.raises(ValueError, match=rf"{model.__name__}: num_classes must be an integer >= 2"):
                    model(model_size=SMALL, num_classes=bad)

    def test_transform_normalises_and_griffin_lim_inverts(self):
        time = torch.arange(16384) / 16000
        waves = torch.stack(
            [0.5 * torch.sin(2 * torch.pi * f * time) + 0.05 * torch.randn(16384) for f in (220.0, 440.0, 1000.0)]
        )
        transform = SpecGANTransform().fit(waves)
        spec = transform(waves)
        assert spec.shape == (3, 1, 128, 128)
        assert spec.min() >= -1 and spec.max() <= 1
        # Per-bin standardisation over the fitting batch: mean ~ 0 before clipping.
        unclipped = (transform.log_magnitude(waves) - transform.mean[:, None]) / transform.std[:, None]
        torch.testing.assert_close(unclipped.mean(dim=(0, 2)), torch.zeros(128), atol=1e-4, rtol=0)
        # Griffin-Lim converges: the rebuilt audio's magnitudes approach the target's.
        target = transform.magnitude(spec)

        def spectral_convergence(iterations):
            wave = transform.invert(spec, iterations, generator=torch.Generator(device=DEVICE).manual_seed(0))
            assert wave.shape == (3, 16384)
            rebuilt = torch.stft(wave, 256, 128, window=transform.window, center=True, return_complex=True).abs()
            return ((rebuilt - target).norm() / target.norm()).item()

        one, many = spectral_convergence(1), spectral_convergence(32)
        assert many < one and many < 0.2
