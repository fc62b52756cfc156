"""fastgan.losses against hand-computed values and parallel_wavegan 0.6.1's loss modules."""

from __future__ import annotations

import pytest
import torch

from fastgan import losses
from tests.oracle import parallel_wavegan

# Plain PyTorch (no op dispatches to a Triton kernel here): runs once, in the fallback pass. The multi-resolution
# STFT loss is fastgan.nn's module, tested with its op in tests/test_stft_loss.py.
pytestmark = pytest.mark.reference


def _structures():
    """Discriminator outputs as a tensor, a list of tensors, and a list of feature-map lists."""
    torch.manual_seed(1)
    single = (torch.randn(4, 1, 50), torch.randn(4, 1, 50))
    multi = ([torch.randn(4, 1, 30 + 5 * i) for i in range(3)], [torch.randn(4, 1, 30 + 5 * i) for i in range(3)])
    feats = (
        [[torch.randn(4, 8, 20), torch.randn(4, 1, 20)] for _ in range(2)],
        [[torch.randn(4, 8, 20), torch.randn(4, 1, 20)] for _ in range(2)],
    )
    return {"tensor": single, "list": multi, "feature-lists": feats}


STRUCTURES = _structures()


def test_hand_computed_values():
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    # least squares: G (x-1)^2, D real (x-1)^2, fake x^2
    assert losses.generator_adversarial_loss(x, "mse").item() == pytest.approx((9 + 2.25 + 1 + 0.25 + 1) / 5)
    real, fake = losses.discriminator_adversarial_loss(x, x, "mse")
    assert real.item() == pytest.approx((9 + 2.25 + 1 + 0.25 + 1) / 5)
    assert fake.item() == pytest.approx((4 + 0.25 + 0 + 0.25 + 4) / 5)
    # hinge: G -x, D real relu(1-x), fake relu(1+x)
    assert losses.generator_adversarial_loss(x, "hinge").item() == pytest.approx(0.0)
    real, fake = losses.discriminator_adversarial_loss(x, x, "hinge")
    assert real.item() == pytest.approx((3 + 1.5 + 1 + 0.5 + 0) / 5)
    assert fake.item() == pytest.approx((0 + 0.5 + 1 + 1.5 + 3) / 5)
    # Wasserstein: G -E[D(fake)], critic E[D(fake)] - E[D(real)]
    real, fake = losses.discriminator_adversarial_loss(x + 1, x, "wgan")
    assert (real + fake).item() == pytest.approx(1.0)
    assert losses.generator_adversarial_loss(x + 1, "wgan").item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="loss_type must be one of"):
        losses.GeneratorAdversarialLoss(loss_type="bce")


@pytest.mark.parametrize("structure", list(STRUCTURES))
@pytest.mark.parametrize("loss_type", ["mse", "hinge"])
@pytest.mark.parametrize("average", [True, False])
def test_adversarial_losses_match_parallel_wavegan(structure, loss_type, average):
    pwg = parallel_wavegan("losses")
    fake, real = STRUCTURES[structure]
    g_ref = pwg.GeneratorAdversarialLoss(average, loss_type)(fake)
    g = losses.GeneratorAdversarialLoss(average, loss_type)(fake)
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-7)
    r_ref, f_ref = pwg.DiscriminatorAdversarialLoss(average, loss_type)(fake, real)
    r, f = losses.DiscriminatorAdversarialLoss(average, loss_type)(fake, real)
    torch.testing.assert_close(r, r_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(f, f_ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("average_by_layers", [True, False])
@pytest.mark.parametrize("average_by_discriminators", [True, False])
@pytest.mark.parametrize("include_final_outputs", [True, False])
def test_feature_matching_matches_parallel_wavegan(average_by_layers, average_by_discriminators, include_final_outputs):
    pwg = parallel_wavegan("losses")
    torch.manual_seed(2)
    hat = [[torch.randn(2, 4, 16 - i - j, requires_grad=True) for j in range(4)] for i in range(3)]
    real = [[torch.randn(2, 4, 16 - i - j, requires_grad=True) for j in range(4)] for i in range(3)]
    args = (average_by_layers, average_by_discriminators, include_final_outputs)
    expected = pwg.FeatureMatchLoss(*args)(hat, real)
    actual = losses.FeatureMatchLoss(*args)(hat, real)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7)
    actual.backward()
    assert all(r.grad is None for layer in real for r in layer)  # the real features are detached


def test_gradient_penalty_of_a_linear_critic_is_hand_computable():
    # D(x) = <w, x> has gradient w at every point: penalty = lambda * (||w|| - 1)^2, whatever the mixing.
    w = torch.randn(1, 1, 64)

    def critic(x):
        return (x * w).sum(dim=(1, 2))

    real, fake = torch.randn(5, 1, 64), torch.randn(5, 1, 64)
    gp = losses.gradient_penalty(critic, real, fake)
    assert losses.WGAN_GP_WEIGHT == 10.0 and losses.WGAN_CRITIC_STEPS == 5
    assert gp.item() == pytest.approx(10.0 * (w.norm().item() - 1) ** 2, rel=1e-5)


def test_gradient_penalty_per_example_norms_and_graph():
    # A nonlinear critic: compare with per-example autograd at the same interpolation points.
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 5), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    real, fake = torch.randn(3, 1, 40), torch.randn(3, 1, 40)
    net(real)
    torch.manual_seed(7)
    gp = losses.gradient_penalty(net, real, fake, weight=10.0)
    torch.manual_seed(7)
    alpha = torch.rand(3, 1, 1)
    expected = 0.0
    for b in range(3):
        x = (alpha[b] * real[b] + (1 - alpha[b]) * fake[b])[None].requires_grad_(True)
        (g,) = torch.autograd.grad(net(x).sum(), x)
        expected += (g.norm() - 1) ** 2 / 3
    assert gp.item() == pytest.approx(10.0 * expected.item(), rel=1e-5)
    gp.backward()  # create_graph: the penalty trains the critic
    for weight in (net[0].weight, net[3].weight):  # (biases of the last layer do not move the input gradient)
        assert weight.grad is not None and torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="differ in shape"):
        losses.gradient_penalty(net, real, fake[:, :, :30])


def test_auxiliary_classifier_loss():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    expected = (-(2.0 - torch.logsumexp(logits[0], 0)) + torch.log(torch.tensor(3.0))) / 2
    assert losses.auxiliary_classifier_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="labels must be"):
        losses.auxiliary_classifier_loss(logits, labels[:1])


@pytest.mark.parametrize("kwargs", [{}, {"fmin": 0, "fmax": None, "num_mels": 64, "hop_size": 128}])
def test_mel_loss_matches_parallel_wavegan(kwargs):
    import soundfile as sf

    from tests.test_audio import CORPUS

    pwg = parallel_wavegan("losses")
    speech, _ = sf.read(CORPUS / "arctic" / "arctic_a0007.wav", dtype="float32")
    y = torch.from_numpy(speech[: 2 * 8192].copy()).reshape(2, 1, 8192)
    y_hat = (y + 0.05 * torch.randn_like(y)).requires_grad_(True)
    expected = pwg.MelSpectrogramLoss(**kwargs)(y_hat, y)
    (g_expected,) = torch.autograd.grad(expected, y_hat)
    actual = losses.MelSpectrogramLoss(**kwargs)(y_hat, y)
    (g_actual,) = torch.autograd.grad(actual, y_hat)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    # both fp32: torch.stft in each, the same ops in a different order
    assert (g_actual - g_expected).norm() <= 1e-4 * g_expected.norm()


def test_multi_resolution_stft_loss_is_fastgan_nns():
    from fastgan.nn import MultiResolutionSTFTLoss

    assert losses.MultiResolutionSTFTLoss is MultiResolutionSTFTLoss
