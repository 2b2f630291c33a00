"""The codec CLI on a small trained run: round trips, errors, adaptation, fuzzing."""

import functools
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from codec.cli import main
from codec.trained import load_client_model
from common.bitstream import FORMAT_VERSION, BitstreamError
from common.coding import Codec
from common.config import TrainConfig
from common.data import load_client_data, train_batches
from common.model import create_model
from common.run_folder import (
    RunFolder,
    write_state_file,
)
from common.split import KeySplit
from common.train import train_steps
from server.results import RunRecorder
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory as the ServerApp and ClientApps leave it (1 round, 2 clients)."""
    root = tmp_path_factory.mktemp("codec")
    conf = tiny_config(root)
    model = create_model(conf.model, seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    train_conf = TrainConfig(local_steps=40, lr=5e-3, lmbda=0.01)
    recorder = RunRecorder(RunFolder(Path(conf.output_dir)), conf)
    for client_id in (0, 1):
        data = load_client_data(conf.data, client_id, conf.seed)
        batches = train_batches(data.train, 32, 8, seed=client_id)
        train_steps(model, batches, train_conf, torch.device("cpu"))
        state_file = RunFolder(Path(conf.output_dir)).client_state_file(conf, client_id)
        write_state_file(state_file, split.personal_state(model.state_dict()), conf.model, 1)
    recorder.checkpoint(1, ArrayRecord(split.shared_state(model.state_dict())))
    return Path(conf.output_dir)


def save_image(path: Path, shape, mode: str, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = (127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 5.0)).astype(np.uint8)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = np.stack([np.roll(base, 3 * c, axis=1) for c in range(channels)], axis=-1)
    array = np.clip(array + rng.integers(0, 8, array.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode=mode).save(path)
    return path


@pytest.fixture(scope="module")
def codec(run_dir) -> Codec:
    model, _, _ = load_client_model(run_dir, client_id=0)
    return Codec.from_model(model)


def cli(command: str, run_dir: Path, *args, client: int | None = 0) -> int:
    """Run ``fedntc-codec COMMAND --run RUN_DIR [--client N] ARGS...`` in-process."""
    who = ["--client", str(client)] if client is not None else []
    return main([command, "--run", str(run_dir), *who, *map(str, args)])


@pytest.mark.parametrize(
    ("shape", "mode", "out_mode"),
    [((37, 50), "RGB", "RGB"), ((64, 64), "L", "L"), ((20, 33), "RGBA", "RGB")],
)
def test_compress_decompress_round_trip_is_bit_exact(run_dir, tmp_path, shape, mode, out_mode):
    src = save_image(tmp_path / "in" / "img.png", shape, mode)
    recon = tmp_path / "recon"
    assert cli("compress", run_dir, tmp_path / "in", "-o", tmp_path / "bits", "--recon", recon) == 0
    bitstream = tmp_path / "bits" / "img.fntc"
    assert bitstream.read_bytes()[:4] == b"FNTC"
    assert cli("decompress", run_dir, bitstream, "-o", tmp_path / "out") == 0
    decoded = Image.open(tmp_path / "out" / "img.png")
    assert decoded.size == Image.open(src).size and decoded.mode == out_mode
    assert np.array_equal(
        np.asarray(decoded), np.asarray(Image.open(tmp_path / "recon" / "img.png"))
    )


def test_other_clients_model_is_refused(run_dir, tmp_path, capsys):
    save_image(tmp_path / "a.png", (32, 32), "RGB")
    assert cli("compress", run_dir, tmp_path / "a.png", "-o", tmp_path) == 0
    code = cli("decompress", run_dir, tmp_path / "a.fntc", "-o", tmp_path / "out", client=1)
    assert code == 2
    assert "encoded with model" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.png").exists()


def test_damaged_files_give_clear_errors(codec):
    data = codec.encode(Image.new("RGB", (40, 24), (120, 60, 30)))
    with pytest.raises(BitstreamError, match="checksum|truncated"):
        codec.decode(data[:-7], "x.fntc")
    with pytest.raises(BitstreamError, match="bad magic"):
        codec.decode(b"PNG!" + data[4:], "x.fntc")
    with pytest.raises(BitstreamError, match=f"version 9 is not supported.*{FORMAT_VERSION}"):
        codec.decode(data[:4] + bytes([9]) + data[5:], "x.fntc")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError, match="checksum"):
        codec.decode(bytes(flipped), "x.fntc")
    with pytest.raises(BitstreamError, match="x.fntc"):
        codec.decode(b"", "x.fntc")


def test_evaluate_reports_real_and_estimated_rate(run_dir, tmp_path, capsys):
    for i in range(2):
        save_image(tmp_path / "imgs" / f"{i}.png", (64, 96), "RGB", seed=i)
    csv_path = tmp_path / "eval.csv"
    assert cli("evaluate", run_dir, tmp_path / "imgs", "--csv", csv_path) == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0].split(",") == [
        "image",
        "pixels",
        "bytes",
        "real_bpp",
        "est_bpp",
        "mse",
        "psnr",
        "ms_ssim",
    ]
    mean = dict(zip(lines[0].split(","), lines[-1].split(","), strict=True))
    assert float(mean["real_bpp"]) >= float(mean["est_bpp"]) * 0.9
    assert float(mean["psnr"]) > 10
    assert "mean (pixel-weighted)" in capsys.readouterr().out


def test_adapt_fits_a_new_entropy_model_only(run_dir, tmp_path, capsys):
    for i in range(3):
        save_image(tmp_path / "new" / f"{i}.png", (48, 48), "L", seed=i)
    state = tmp_path / "newclient" / "personal.pt"
    assert (
        main(
            [
                "adapt",
                "--run",
                str(run_dir),
                "--images",
                str(tmp_path / "new"),
                "--state-out",
                str(state),
                "--steps",
                "30",
                "--crop",
                "32",
            ]
        )
        == 0
    )
    adapted, _, split = load_client_model(run_dir, state_file=state)
    original, _, _ = load_client_model(run_dir, client_id=0)
    a, o = adapted.state_dict(), original.state_dict()
    assert all(torch.equal(a[k], o[k]) for k in split.shared), "transforms must stay frozen"
    assert not torch.equal(a["entropy_bottleneck.quantiles"], o["entropy_bottleneck.quantiles"])
    codec = Codec.from_model(adapted)
    image = Image.open(tmp_path / "new" / "0.png")
    assert codec.decode(codec.encode(image)).size == image.size


def test_missing_input_exits_with_error(run_dir, tmp_path, capsys):
    assert cli("compress", run_dir, tmp_path / "nope.png", "-o", tmp_path) == 2
    assert "nope.png" in capsys.readouterr().err


def test_vector_run_is_refused_with_a_reason(tmp_path, capsys):
    import json

    from common.config import DataConfig, ModelConfig, RunConfig, flatten

    conf = RunConfig(
        model=ModelConfig(name="fedntc-vector", input_dim=2),
        data=DataConfig(source="vectors", latent_dim=2),
    )
    (tmp_path / "config.json").write_text(json.dumps(flatten(conf)))
    assert cli("compress", tmp_path, tmp_path / "x.png", "-o", tmp_path) == 2
    assert "vector model" in capsys.readouterr().err


@settings(
    max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzzed_bitstreams_decode_right_or_raise(codec, data):
    """Mutated and truncated files either decode to the right image or raise BitstreamError."""
    original, expected = _encoded_sample(codec)
    stream = bytearray(original)
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "splice"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(stream) - 1))
            stream[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        stream = stream[: data.draw(st.integers(0, len(stream) - 1))]
    elif kind == "insert":
        pos = data.draw(st.integers(0, len(stream)))
        stream[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        pos = data.draw(st.integers(0, len(stream) - 1))
        stream[pos:] = data.draw(st.binary(max_size=64))
    try:
        decoded = codec.decode(bytes(stream), "fuzz")
    except BitstreamError:
        return
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))


@functools.cache
def _sample_image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8))


def _encoded_sample(codec):
    data = codec.encode(_sample_image())
    return data, codec.decode(data)


@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_forged_headers_with_valid_checksums_never_crash(codec, data):
    """Mutations of the header and framing, with the CRC recomputed so they get past it:
    the parser and geometry checks must raise BitstreamError or decode; nothing else."""
    original, _ = _encoded_sample(codec)
    body = bytearray(original[:-4])
    header_end = 64  # magic, version, fingerprint, geometry, shape and string lengths
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(5, min(header_end, len(body) - 1)))
        body[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))]
    forged = bytes(body) + struct.pack(">I", zlib.crc32(bytes(body)))
    try:
        image = codec.decode(forged, "forged")
    except BitstreamError:
        return
    assert isinstance(image, Image.Image)


def test_hyperprior_codec_round_trip():
    from common.config import ModelConfig

    model = create_model(ModelConfig(name="bmshj2018-hyperprior", N=8, M=12), seed=0)
    codec = Codec.from_model(model)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (37, 70, 3), dtype=np.uint8))
    data = codec.encode(image)
    assert codec.decode(data).size == image.size
    assert np.array_equal(np.asarray(codec.decode(data)), np.asarray(codec.decode(data)))
    with pytest.raises(BitstreamError, match="encoded with model"):
        Codec.from_model(
            create_model(ModelConfig(name="bmshj2018-hyperprior", N=8, M=12), seed=1)
        ).decode(data)


def test_codec_works_with_a_model_file_alone(tmp_path):
    """No run needed: a base model file, or a plain CompressAI state dict of --arch."""
    from common.config import ModelConfig
    from common.init import save_base

    model = create_model(ModelConfig(N=8, M=12), seed=5)
    base = tmp_path / "base.pt"
    save_base(model.state_dict(), {"name": "bmshj2018-factorized", "N": 8, "M": 12}, base)
    plain = tmp_path / "plain.pth.tar"
    torch.save({"state_dict": model.state_dict()}, plain)
    image = tmp_path / "in" / "photo.png"
    image.parent.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(image)
    for name, path in (("base", base), ("plain", plain)):
        bits, out = tmp_path / f"bits-{name}", tmp_path / f"out-{name}"
        assert main(["compress", "--checkpoint", str(path), str(image), "-o", str(bits)]) == 0
        assert main(["decompress", "--checkpoint", str(path), str(bits), "-o", str(out)]) == 0
        assert Image.open(out / "photo.png").size == (52, 40)
    assert (
        main(
            [
                "compress",
                "--checkpoint",
                str(base),
                "--client",
                "0",
                str(image),
                "-o",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )


def forged_size(data: bytes, height: int, width: int) -> bytes:
    """``data`` with the header's image size replaced (checksum recomputed)."""
    body = bytearray(data[:-4])
    struct.pack_into(">II", body, 21, height, width)  # after magic, version, fingerprint
    return bytes(body) + struct.pack(">I", zlib.crc32(bytes(body)))


def test_a_header_declaring_a_huge_image_is_refused_before_decoding(codec, run_dir, tmp_path):
    data, _ = _encoded_sample(codec)
    huge = forged_size(data, 60000, 60000)
    with pytest.raises(BitstreamError, match="3600000000 pixels, over the decoder's limit"):
        codec.decode(huge, "huge.fntc")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.fntc").write_bytes(data)
    assert cli("decompress", run_dir, tmp_path / "in", "-o", tmp_path / "out") == 0
    # the limit is a setting: a small one refuses a file that decodes with the default
    small = ["--max-pixels", "16", "--overwrite"]
    assert cli("decompress", run_dir, tmp_path / "in", "-o", tmp_path / "out", *small) == 2


def test_an_image_over_the_pixel_limit_fails_with_its_name(run_dir, tmp_path, capsys):
    path = save_image(tmp_path / "in" / "big.png", (64, 96), "RGB")
    args = ("compress", run_dir, path, "-o", tmp_path / "bits")
    assert cli(*args, "--max-pixels", "4000") == 2
    err = capsys.readouterr().err
    assert "big.png" in err and "6144 pixels, over the limit of 4000" in err
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the process-wide setting is restored
    # Pillow's own decompression-bomb error (over twice the limit) is reported the same way
    assert cli(*args, "--max-pixels", "100") == 2
    assert "big.png" in capsys.readouterr().err
    assert not (tmp_path / "bits" / "big.fntc").exists()


def test_outputs_are_never_overwritten_or_written_twice(run_dir, tmp_path, capsys):
    save_image(tmp_path / "in" / "a.png", (32, 40), "RGB")
    bits, out = tmp_path / "bits", tmp_path / "out"
    assert cli("compress", run_dir, tmp_path / "in", "-o", bits) == 0
    assert cli("decompress", run_dir, bits, "-o", out) == 0
    decoded = (out / "a.png").read_bytes()
    (out / "a.png").write_bytes(b"my own file")
    assert cli("decompress", run_dir, bits, "-o", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "a.png").read_bytes() == b"my own file"
    assert cli("decompress", run_dir, bits, "-o", out, "--overwrite") == 0
    assert (out / "a.png").read_bytes() == decoded
    # two inputs that would write the same output are refused before anything is written
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.fntc").write_bytes((bits / "a.fntc").read_bytes())
    assert cli("decompress", run_dir, bits / "a.fntc", other / "a.fntc", "-o", tmp_path / "o2") == 2
    assert "would both be written as a" in capsys.readouterr().err
    assert not (tmp_path / "o2" / "a.png").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no leftovers
