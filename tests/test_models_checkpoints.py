"""fastgan.load_generator: parallel_wavegan training checkpoints written the way its trainer writes
them (optimizer and scheduler states included, config.yml and stats beside), the original HiFi-GAN
repository's generator checkpoints, and every way a checkpoint can be wrong."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import fastgan
from fastgan.checkpoints import CheckpointError
from tests.conftest import DEVICE
from tests.oracle import parallel_wavegan
from tests.tolerances import MODELS, assert_close_scaled

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning"),
    pytest.mark.filterwarnings("ignore:distutils Version classes are deprecated:DeprecationWarning"),  # the oracle's
]

SMALL_MELGAN = dict(in_channels=6, out_channels=1, channels=16, upsample_scales=[2, 2], stacks=2)
SMALL_PWG = dict(in_channels=1, out_channels=1, layers=4, stacks=2, residual_channels=8, gate_channels=16, skip_channels=8, aux_channels=6,
                 aux_context_window=1, upsample_params={"upsample_scales": [2, 2]})  # fmt: skip
SMALL_HIFIGAN = dict(in_channels=6, out_channels=1, channels=16, upsample_scales=(2, 2), upsample_kernel_sizes=(4, 4),
                     resblock_kernel_sizes=(3, 5), resblock_dilations=[(1, 3), (1, 2)])  # fmt: skip


def write_parallel_wavegan_run(directory, generator_type, params, discriminator, stats_format="npy", version="0.6.1",
                               extra_config=None, seed=0):  # fmt: skip
    """A run directory as parallel_wavegan's trainer leaves it: checkpoint, config.yml, stats."""
    pwg = parallel_wavegan("models")
    torch.manual_seed(seed)
    generator = getattr(pwg, generator_type)(**copy.deepcopy(params))
    with torch.no_grad():  # as after some training
        for parameter in generator.parameters():
            parameter.add_(0.1 * parameter.abs().mean() * torch.randn_like(parameter))
    optimizers = {
        "generator": torch.optim.Adam(generator.parameters(), 1e-4),
        "discriminator": torch.optim.RAdam(discriminator.parameters(), 5e-5),
    }
    schedulers = {
        "generator": torch.optim.lr_scheduler.MultiStepLR(optimizers["generator"], [100, 200], 0.5),
        "discriminator": torch.optim.lr_scheduler.StepLR(optimizers["discriminator"], 200000, 0.5),
    }
    optimizers["generator"].step()  # optimizer state with tensors in it
    state = {
        "optimizer": {k: v.state_dict() for k, v in optimizers.items()},
        "scheduler": {k: v.state_dict() for k, v in schedulers.items()},
        "steps": 10,
        "epochs": 1,
        "model": {"generator": generator.state_dict(), "discriminator": discriminator.state_dict()},
    }
    path = directory / "checkpoint-10steps.pkl"
    torch.save(state, path)
    config = {
        "generator_type": generator_type,
        "generator_params": copy.deepcopy(params),
        "format": "hdf5" if stats_format == "h5" else "npy",
        "version": version,
        "sampling_rate": 22050,
        "hop_size": 4,
        **(extra_config or {}),
    }
    with open(directory / "config.yml", "w") as f:
        yaml.dump(config, f, Dumper=yaml.Dumper)  # parallel_wavegan's trainer dumps with the full Dumper
    channels = params.get("aux_channels", params.get("in_channels"))
    rng = np.random.default_rng(seed)
    mean, scale = rng.standard_normal(channels).astype(np.float32), (rng.random(channels) + 0.5).astype(np.float32)
    if stats_format == "h5":
        import h5py

        with h5py.File(directory / "stats.h5", "w") as f:
            f["mean"], f["scale"] = mean, scale
    else:
        np.save(directory / "stats.npy", np.stack([mean, scale]))
    return path


@pytest.mark.parametrize(
    "generator_type, params, stats_format",
    [
        ("MelGANGenerator", SMALL_MELGAN, "npy"),
        ("ParallelWaveGANGenerator", SMALL_PWG, "h5"),
        ("HiFiGANGenerator", SMALL_HIFIGAN, "npy"),
    ],
)
def test_parallel_wavegan_checkpoint_round_trip(tmp_path, generator_type, params, stats_format):
    discriminator = parallel_wavegan("models").ParallelWaveGANDiscriminator(layers=3, conv_channels=4)
    path = write_parallel_wavegan_run(tmp_path, generator_type, params, discriminator, stats_format)
    ours = fastgan.load_generator(path).to(DEVICE)
    theirs = parallel_wavegan("utils").load_model(str(path)).to(DEVICE).eval()
    assert type(ours).__name__ == generator_type and not ours.training
    assert list(ours.state_dict()) == list(theirs.state_dict())  # stats buffers included
    features = torch.randn(5, 6)
    with torch.no_grad():
        if generator_type == "ParallelWaveGANGenerator":
            noise = torch.randn(5 * 4, 1)
            expected = theirs.inference(features, noise, normalize_before=True)
            actual = ours.inference(features, noise, normalize_before=True)
        else:
            expected = theirs.inference(features, normalize_before=True)
            actual = ours.inference(features, normalize_before=True)
    assert actual.shape == expected.shape == (20, 1)
    assert_close_scaled(actual, expected, MODELS)


@pytest.mark.parametrize(
    "version, pqmf_params", [("0.6.1", None), ("0.4.2", None), ("0.6.1", {"taps": 48, "beta": 8.0})]
)
def test_multiband_melgan_checkpoint_gets_its_pqmf(tmp_path, version, pqmf_params):
    params = dict(SMALL_MELGAN, out_channels=4, upsample_scales=[2])
    discriminator = parallel_wavegan("models").MelGANMultiScaleDiscriminator(
        scales=1, channels=4, downsample_scales=[2]
    )
    extra = {"pqmf_params": pqmf_params} if pqmf_params else None
    path = write_parallel_wavegan_run(tmp_path, "MelGANGenerator", params, discriminator, version=version,
                                      extra_config=extra)  # fmt: skip
    ours = fastgan.load_generator(path).to(DEVICE)
    theirs = parallel_wavegan("utils").load_model(str(path)).to(DEVICE).eval()
    assert ours.pqmf is not None and ours.pqmf.subbands == 4
    for name in ("analysis_filter", "synthesis_filter"):
        torch.testing.assert_close(getattr(ours.pqmf, name), getattr(theirs.pqmf, name), rtol=0, atol=0)
    features = torch.randn(40, 6)
    with torch.no_grad():
        expected, actual = theirs.inference(features), ours.inference(features)
    assert actual.shape == (40 * 2 * 4, 1)
    assert_close_scaled(actual, expected, MODELS)


def test_checkpoint_saved_without_weight_norm_loads(tmp_path):
    pwg = parallel_wavegan("models")
    torch.manual_seed(0)
    generator = pwg.MelGANGenerator(**SMALL_MELGAN)
    generator.remove_weight_norm()
    torch.save({"model": {"generator": generator.state_dict()}}, tmp_path / "g.pkl")
    with open(tmp_path / "config.yml", "w") as f:
        yaml.dump({"generator_type": "MelGANGenerator", "generator_params": SMALL_MELGAN}, f)
    ours = fastgan.load_generator(tmp_path / "g.pkl").to(DEVICE)
    c = torch.randn(1, 6, 5)
    with torch.no_grad():
        assert_close_scaled(ours(c), generator.to(DEVICE)(c), MODELS)


def test_a_fastgan_training_checkpoint_carries_its_config_and_stats(tmp_path):
    """fastgan's trainer keeps the config and stats inside the checkpoint and writes no config.yml: they are used
    when nothing is beside it (numpy arrays inside, as earlier fastgan runs stored their RNG state and stats, load
    too); a config.yml or stats file beside it, or passed, still comes first."""
    from fastgan.models import MelGANGenerator

    torch.manual_seed(0)
    generator = MelGANGenerator(**SMALL_MELGAN)
    config = {"generator_type": "MelGANGenerator", "generator_params": SMALL_MELGAN, "hop_size": 4, "num_mels": 6}
    mean, scale = np.linspace(-3, 1, 6, dtype=np.float32), np.linspace(0.5, 2, 6, dtype=np.float32)
    state = {
        "model": {"generator": generator.state_dict()},
        "config": config,
        "stats": {"mean": mean, "scale": scale},
        "rng": {"numpy": np.random.get_state()},  # a uint32 array
        "steps": 3,
    }
    torch.save(state, tmp_path / "checkpoint-3steps.pkl")
    ours = fastgan.load_generator(tmp_path / "checkpoint-3steps.pkl")
    np.testing.assert_array_equal(ours.mean.numpy(), mean)
    np.testing.assert_array_equal(ours.scale.numpy(), scale)
    c = torch.randn(1, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(c), generator.eval()(c), rtol=0, atol=0)
    (tmp_path / "config.yml").write_text(yaml.safe_dump(dict(config, generator_params=dict(SMALL_MELGAN, stacks=3))))
    with pytest.raises(CheckpointError, match=r"config\.yml.*missing keys"):  # the file beside it is the one read
        fastgan.load_generator(tmp_path / "checkpoint-3steps.pkl")
    assert fastgan.load_generator(tmp_path / "checkpoint-3steps.pkl", config=config).mean.shape == (6,)
    np.save(tmp_path / "stats.npy", np.stack([mean + 1, scale]))
    ours = fastgan.load_generator(tmp_path / "checkpoint-3steps.pkl", config=config)
    np.testing.assert_array_equal(ours.mean.numpy(), mean + 1)


# The original HiFi-GAN repository's generator (jik876/hifi-gan, models.py), written here from the
# paper's description as an independent oracle for the key mapping: conv_pre, ups, resblocks
# (convs1/convs2 for ResBlock1, convs for ResBlock2), conv_post.
class OfficialResBlock(nn.Module):
    def __init__(self, channels, kernel_size, dilations, kind):
        super().__init__()

        def conv(d):
            return nn.utils.weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                                  padding=(kernel_size * d - d) // 2))  # fmt: skip

        self.kind = kind
        if kind == "1":
            self.convs1 = nn.ModuleList(conv(d) for d in dilations)
            self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        else:
            self.convs = nn.ModuleList(conv(d) for d in dilations)

    def forward(self, x):
        if self.kind == "1":
            for c1, c2 in zip(self.convs1, self.convs2, strict=True):
                x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        else:
            for c in self.convs:
                x = c(F.leaky_relu(x, 0.1)) + x
        return x


class OfficialGenerator(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.num_kernels = len(h["resblock_kernel_sizes"])
        ch = h["upsample_initial_channel"]
        self.conv_pre = nn.utils.weight_norm(nn.Conv1d(h["num_mels"], ch, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            nn.utils.weight_norm(nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True))
        )
        self.resblocks = nn.ModuleList(
            OfficialResBlock(ch // 2 ** (i + 1), k, d, h["resblock"])
            for i in range(len(self.ups))
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True)
        )
        self.conv_post = nn.utils.weight_norm(nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, 1, padding=3))

    def forward(self, x):
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = sum(self.resblocks[i * self.num_kernels + j](x) for j in range(self.num_kernels))
            x = xs / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


OFFICIAL_CONFIGS = {
    "resblock1": {"resblock": "1", "num_mels": 6, "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4],
                  "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 7],
                  "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]], "sampling_rate": 22050},
    "resblock2": {"resblock": "2", "num_mels": 6, "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4],
                  "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5, 7],
                  "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]], "sampling_rate": 22050},
}  # fmt: skip


@pytest.mark.parametrize("kind", list(OFFICIAL_CONFIGS))
def test_original_hifigan_checkpoint(tmp_path, kind):
    config = OFFICIAL_CONFIGS[kind]
    torch.manual_seed(0)
    official = OfficialGenerator(config)
    with torch.no_grad():
        for parameter in official.parameters():
            parameter.add_(0.1 * parameter.abs().mean() * torch.randn_like(parameter))
    torch.save({"generator": official.state_dict()}, tmp_path / "g_00100000")
    (tmp_path / "config.json").write_text(json.dumps(config))
    ours = fastgan.load_generator(tmp_path / "g_00100000").to(DEVICE)
    c = torch.randn(2, 6, 5)
    with torch.no_grad():
        expected = official.to(DEVICE)(c)
        assert_close_scaled(ours(c), expected, MODELS)
        ours.remove_weight_norm()
        assert_close_scaled(ours(c), expected, MODELS)


class NotAWeight:
    """Any object a weights-only unpickler must refuse."""

    def __init__(self):
        self.payload = "code would run here"


class TestErrors:
    def run_dir(self, tmp_path):
        discriminator = parallel_wavegan("models").ParallelWaveGANDiscriminator(layers=3, conv_channels=4)
        return write_parallel_wavegan_run(tmp_path, "MelGANGenerator", SMALL_MELGAN, discriminator)

    def test_missing_config_names_the_expected_file(self, tmp_path):
        path = self.run_dir(tmp_path)
        (tmp_path / "config.yml").unlink()
        with pytest.raises(CheckpointError, match=r"no configuration found: expected .*config\.yml"):
            fastgan.load_generator(path)

    def test_missing_checkpoint(self, tmp_path):
        with pytest.raises(CheckpointError, match="no such checkpoint file"):
            fastgan.load_generator(tmp_path / "nope.pkl")

    def test_unknown_generator_type(self, tmp_path):
        path = self.run_dir(tmp_path)
        (tmp_path / "config.yml").write_text(
            yaml.dump({"generator_type": "StyleMelGANGenerator", "generator_params": {}})
        )
        with pytest.raises(CheckpointError, match=r"config\.yml: unknown generator_type 'StyleMelGANGenerator'"):
            fastgan.load_generator(path)

    def test_mismatched_keys_are_named(self, tmp_path):
        path = self.run_dir(tmp_path)
        config = yaml.safe_load((tmp_path / "config.yml").read_text())
        config["generator_params"]["stacks"] = 3  # the checkpoint has 2 residual stacks per scale
        (tmp_path / "config.yml").write_text(yaml.dump(config))
        with pytest.raises(CheckpointError, match=r"checkpoint-10steps\.pkl: .*missing keys: melgan\.\d+\.skip_layer"):
            fastgan.load_generator(path)

    def test_mismatched_shapes_name_the_file(self, tmp_path):
        path = self.run_dir(tmp_path)
        config = yaml.safe_load((tmp_path / "config.yml").read_text())
        config["generator_params"]["channels"] = 32
        (tmp_path / "config.yml").write_text(yaml.dump(config))
        with pytest.raises(CheckpointError, match=r"checkpoint-10steps\.pkl: .*size mismatch"):
            fastgan.load_generator(path)

    def test_a_checkpoint_that_would_run_code_is_refused(self, tmp_path):
        discriminator = parallel_wavegan("models").ParallelWaveGANDiscriminator(layers=3, conv_channels=4)
        path = write_parallel_wavegan_run(tmp_path, "MelGANGenerator", SMALL_MELGAN, discriminator)
        state = torch.load(path, weights_only=True)
        state["trainer"] = NotAWeight()
        torch.save(state, path)
        with pytest.raises(CheckpointError, match="weights_only=True"):
            fastgan.load_generator(path)

    def test_a_config_with_python_objects_is_refused(self, tmp_path):
        path = self.run_dir(tmp_path)
        (tmp_path / "config.yml").write_text("generator_type: !!python/object/apply:os.getcwd []\n")
        with pytest.raises(CheckpointError, match="safe loader refuses"):
            fastgan.load_generator(path)

    def test_not_a_generator_checkpoint(self, tmp_path):
        torch.save({"state_dict": {}}, tmp_path / "x.pt")
        with pytest.raises(CheckpointError, match=r"not a generator checkpoint.*'state_dict'"):
            fastgan.load_generator(tmp_path / "x.pt")

    def test_hifigan_config_problems(self, tmp_path):
        torch.manual_seed(0)
        official = OfficialGenerator(OFFICIAL_CONFIGS["resblock1"])
        torch.save({"generator": official.state_dict()}, tmp_path / "g_1")
        with pytest.raises(CheckpointError, match=r"config\.json"):
            fastgan.load_generator(tmp_path / "g_1")
        bad = dict(OFFICIAL_CONFIGS["resblock1"], upsample_kernel_sizes=[7, 4])
        (tmp_path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match="kernel = 2 x rate"):
            fastgan.load_generator(tmp_path / "g_1")
        (tmp_path / "config.json").write_text(json.dumps({"resblock": "1"}))
        with pytest.raises(CheckpointError, match="missing upsample_rates"):
            fastgan.load_generator(tmp_path / "g_1")

    def test_malformed_config_json_names_the_file(self, tmp_path):
        torch.manual_seed(0)
        torch.save({"generator": OfficialGenerator(OFFICIAL_CONFIGS["resblock1"]).state_dict()}, tmp_path / "g_1")
        (tmp_path / "config.json").write_text('{"resblock": "1", "upsample_rates": [4, 2],')  # cut short
        with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
            fastgan.load_generator(tmp_path / "g_1")
        (tmp_path / "config.json").write_text("[1, 2]")
        with pytest.raises(CheckpointError, match=r"config\.json: expected a mapping of settings, got list"):
            fastgan.load_generator(tmp_path / "g_1")

    def test_malformed_config_yml_names_the_file(self, tmp_path):
        path = self.run_dir(tmp_path)
        (tmp_path / "config.yml").write_text("generator_type: [MelGANGenerator\n")  # unclosed flow sequence
        with pytest.raises(CheckpointError, match=r"config\.yml: not valid YAML"):
            fastgan.load_generator(path)

    def test_null_generator_params(self, tmp_path):
        path = self.run_dir(tmp_path)
        (tmp_path / "config.yml").write_text("generator_type: MelGANGenerator\ngenerator_params: null\n")
        with pytest.raises(CheckpointError, match=r"config\.yml: generator_params must be a mapping, got NoneType"):
            fastgan.load_generator(path)

    def test_hifigan_upsample_lists_of_different_lengths(self, tmp_path):
        torch.manual_seed(0)
        torch.save({"generator": OfficialGenerator(OFFICIAL_CONFIGS["resblock1"]).state_dict()}, tmp_path / "g_1")
        bad = dict(OFFICIAL_CONFIGS["resblock1"], upsample_kernel_sizes=[8, 4, 4])
        (tmp_path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(
            CheckpointError,
            match=r"config\.json: upsample_rates \(2\) and upsample_kernel_sizes \(3\) differ in length",
        ):
            fastgan.load_generator(tmp_path / "g_1")

    @pytest.mark.parametrize(
        "content, reason",
        [
            (b"", "empty file"),
            (b"junk" * 10, "not a readable torch checkpoint"),
            # Text whose first byte the weights-only unpickler takes for an opcode it refuses: junk, not code.
            (b"not a checkpoint", "not a readable torch checkpoint"),
            (b"PK\x03\x04" + b"junk" * 10, "not a readable torch checkpoint"),  # a zip header, then nothing
        ],
        ids=["empty", "junk", "text", "zip-header"],
    )
    def test_an_unreadable_checkpoint_file(self, tmp_path, content, reason):
        (tmp_path / "g.pkl").write_bytes(content)
        with pytest.raises(CheckpointError, match=rf"g\.pkl: {reason}"):
            fastgan.load_generator(tmp_path / "g.pkl")

    def test_a_directory_is_not_a_checkpoint(self, tmp_path):
        with pytest.raises(CheckpointError, match=rf"{tmp_path.name}: is a directory, not a checkpoint file"):
            fastgan.load_generator(tmp_path)

    def test_a_directory_is_not_a_config(self, tmp_path):
        path = self.run_dir(tmp_path)
        (tmp_path / "config.yml").unlink()
        (tmp_path / "config.yml").mkdir()
        with pytest.raises(CheckpointError, match=r"config\.yml: cannot read the config"):
            fastgan.load_generator(path)
