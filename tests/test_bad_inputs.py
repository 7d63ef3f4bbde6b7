"""The bad-input suite: every entry point answers a wrong file, shape, setting or size with one line
on stderr, exit code 2, no traceback, and no partial output; the Python API raises PosencError."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import posenc
from posenc.cli import main
from posenc.errors import PosencError

FAST = ["--iters", "2", "--width", "8", "--depth", "1", "--features", "4", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    img = d / "img.png"
    Image.fromarray((np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)).save(img)
    (d / "notes.png").write_text("this is not an image")
    (d / "empty.png").write_bytes(b"")
    data = img.read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])
    (d / "folder.png").mkdir()
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                                 + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(d / "black.png")
    (d / "bad.json").write_text("{not json")
    (d / "strnum.json").write_text(json.dumps({"task": "image", "train": {"iters": "ten"}}))
    (d / "unknown.json").write_text(json.dumps({"task": "image", "trian": {}}))
    (d / "occ.json").write_text(json.dumps({"task": "occupancy"}))
    (d / "tag.yaml").write_text("task: !!python/object/apply:os.system ['echo hi']\n")
    (d / "list.json").write_text("[1, 2]")
    (d / "afile").write_text("x")
    (d / "nan.csv").write_text("1\n2\nnan\n4\n5\n")
    (d / "two.csv").write_text("1,2\n3,4\n5,6\n7,8\n9,10\n")
    (d / "words.csv").write_text("a\nb\nc\nd\ne\n")
    np.save(d / "complex.npy", np.arange(8) * (1 + 1j))
    np.save(d / "two.npy", np.zeros((8, 2)))
    np.save(d / "obj.npy", np.array([{"a": 1}] * 5, dtype=object), allow_pickle=True)
    (d / "sig.npy").write_bytes(b"garbage")
    (d / "garbage.obj").write_bytes(b"\x00\x01\x02 not a mesh \xff" * 10)
    (d / "empty.obj").write_text("")
    (d / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (d / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    (d / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    (d / "mesh.xyz").write_text("1 2 3")
    (d / "model.safetensors").write_bytes(b"not a model at all")
    imgrun = d / "imgrun"
    assert main(["fit", "image", str(img), "--res", "16", *FAST, "--out", str(imgrun)]) == 0
    import trimesh

    trimesh.creation.icosphere(subdivisions=1).export(d / "ball.obj")
    shaperun = d / "shaperun"
    assert main(["fit", "occupancy", str(d / "ball.obj"), "--samples", "300", "--batch", "64", "--eval-points", "100",
                 "--chamfer-points", "100", "--mc-res", "8", *FAST, "--out", str(shaperun)]) == 0
    (d / "images").mkdir()
    Image.open(img).save(d / "images" / "a.png")
    return d


def F(d: Path, name: str) -> str:
    return str(d / name)


CASES = [
    # (id, argv builder, words the one-line error must contain)
    ("missing-image", lambda d: ["fit", "image", F(d, "missing.png")], "not found"),
    ("not-an-image", lambda d: ["fit", "image", F(d, "notes.png")], "not an image"),
    ("empty-image", lambda d: ["fit", "image", F(d, "empty.png")], "empty"),
    ("truncated-image", lambda d: ["fit", "image", F(d, "trunc.png")], "truncated"),
    ("folder-as-image", lambda d: ["fit", "image", F(d, "folder.png")], "folder"),
    ("bomb-header", lambda d: ["fit", "image", F(d, "bomb.png"), "--res", "native"], "60000"),
    ("res-0", lambda d: ["fit", "image", F(d, "img.png"), "--res", "0"], "res"),
    ("res-negative", lambda d: ["fit", "image", F(d, "img.png"), "--res", "-5"], "res"),
    ("res-word", lambda d: ["fit", "image", F(d, "img.png"), "--res", "huge"], "res"),
    ("res-100000", lambda d: ["fit", "image", F(d, "img.png"), "--res", "100000"], "res"),
    ("protocol", lambda d: ["fit", "image", F(d, "img.png"), "--protocol", "foo"], "protocol"),
    ("crop", lambda d: ["fit", "image", F(d, "img.png"), "--crop", "circle"], "crop"),
    ("iters-0", lambda d: ["fit", "image", F(d, "img.png"), "--iters", "0"], "iters"),
    ("iters-negative", lambda d: ["fit", "image", F(d, "img.png"), "--iters", "-1"], "iters"),
    ("iters-absurd", lambda d: ["fit", "image", F(d, "img.png"), "--iters", "1000000000000"], "iters"),
    ("lr-0", lambda d: ["fit", "image", F(d, "img.png"), "--lr", "0"], "lr"),
    ("lr-negative", lambda d: ["fit", "image", F(d, "img.png"), "--lr", "-1"], "lr"),
    ("lr-nan", lambda d: ["fit", "image", F(d, "img.png"), "--lr", "nan"], "lr"),
    ("lr-huge", lambda d: ["fit", "image", F(d, "img.png"), "--lr", "1e6"], "lr"),
    ("threads", lambda d: ["fit", "image", F(d, "img.png"), "--threads", "-1"], "threads"),
    ("width-0", lambda d: ["fit", "image", F(d, "img.png"), "--width", "0"], "width"),
    ("width-huge", lambda d: ["fit", "image", F(d, "img.png"), "--width", "10000000"], "width"),
    ("depth-negative", lambda d: ["fit", "image", F(d, "img.png"), "--depth", "-1"], "depth"),
    ("depth-huge", lambda d: ["fit", "image", F(d, "img.png"), "--depth", "100000"], "depth"),
    ("features-0", lambda d: ["fit", "image", F(d, "img.png"), "--features", "0"], "features"),
    ("features-huge", lambda d: ["fit", "image", F(d, "img.png"), "--features", "100000000"], "features"),
    ("sigma-negative", lambda d: ["fit", "image", F(d, "img.png"), "--sigma", "-1"], "sigma"),
    ("sigma-word", lambda d: ["fit", "image", F(d, "img.png"), "--sigma", "abc"], "sigma"),
    ("method-empty", lambda d: ["fit", "image", F(d, "img.png"), "--method", ""], "method"),
    ("method-unknown", lambda d: ["fit", "image", F(d, "img.png"), "--method", "fourier"], "unknown method"),
    ("method-no-value", lambda d: ["fit", "image", F(d, "img.png"), "--method", "gaussian:sigma="], "no value"),
    ("method-word-value", lambda d: ["fit", "image", F(d, "img.png"), "--method", "gaussian:sigma=abc"], "sigma must be a number"),
    ("method-fraction", lambda d: ["fit", "image", F(d, "img.png"), "--method", "gaussian:features=2.5"], "features must be an integer"),
    ("method-unknown-setting", lambda d: ["fit", "image", F(d, "img.png"), "--method", "gaussian:bogus=1"], "no setting 'bogus'"),
    ("method-bad-pair", lambda d: ["fit", "image", F(d, "img.png"), "--method", "gaussian:sigma"], "key=value"),
    ("method-twice", lambda d: ["fit", "image", F(d, "img.png"), "--method", "gaussian:sigma=1:sigma=2"], "twice"),
    ("mask-grid", lambda d: ["fit", "image", F(d, "img.png"), "--method", "sape+gaussian:mask_grid=-3"], "mask_grid"),
    ("method-grid-zero", lambda d: ["fit", "image", F(d, "img.png"), "--method", "multires_lpe:base_grid=0"], "base_grid must be positive"),
    ("method-reg-negative", lambda d: ["fit", "image", F(d, "img.png"), "--method", "learned_rbf:reg=-1"], "reg must be non-negative"),
    ("encoding-unknown", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "foo"], "unknown encoding"),
    ("encoding-vs-method", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "lpe", "--method", "gaussian"], "contradicts"),
    ("policy-flag-alone", lambda d: ["fit", "image", F(d, "img.png"), "--epsilon", "0.1"], "progressive"),
    ("progressive-unknown", lambda d: ["fit", "image", F(d, "img.png"), "--progressive", "warp"], "invalid choice"),
    ("activation", lambda d: ["fit", "image", F(d, "img.png"), "--activation", "tanh"], "activation"),
    ("output", lambda d: ["fit", "image", F(d, "img.png"), "--output", "bad"], "output"),
    ("lr-schedule", lambda d: ["fit", "image", F(d, "img.png"), "--lr-schedule", "steps"], "lr_schedule"),
    ("frames-negative", lambda d: ["fit", "image", F(d, "img.png"), "--frames", "-1"], "frames"),
    ("step-chunk-negative", lambda d: ["fit", "image", F(d, "img.png"), "--step-chunk", "-3"], "step_chunk"),
    ("device-cuda", lambda d: ["fit", "image", F(d, "img.png"), "--device", "cuda"], "CUDA"),
    ("device-nonsense", lambda d: ["fit", "image", F(d, "img.png"), "--device", "abacus"], "device"),
    ("config-missing", lambda d: ["fit", "image", "--config", F(d, "none.json")], "not found"),
    ("config-bad-json", lambda d: ["fit", "image", "--config", F(d, "bad.json")], "cannot parse"),
    ("config-string-number", lambda d: ["fit", "image", "--config", F(d, "strnum.json")], "iters must be an integer"),
    ("config-unknown-key", lambda d: ["fit", "image", "--config", F(d, "unknown.json")], "unknown key"),
    ("config-other-task", lambda d: ["fit", "image", "--config", F(d, "occ.json")], "occupancy"),
    ("config-yaml-tag", lambda d: ["fit", "image", "--config", F(d, "tag.yaml")], "cannot parse"),
    ("config-not-mapping", lambda d: ["fit", "image", "--config", F(d, "list.json")], "mapping"),
    ("out-is-file", lambda d: ["fit", "image", F(d, "img.png"), "--out", F(d, "afile")], "is a file"),
    ("out-under-file", lambda d: ["fit", "image", F(d, "img.png"), "--out", F(d, "afile") + "/run"], "is a file"),
    ("out-finished-run", lambda d: ["fit", "image", F(d, "img.png"), "--res", "16", "--out", F(d, "imgrun")], "finished run"),
    ("max-memory-tiny", lambda d: ["fit", "image", F(d, "img.png"), "--max-memory", "0.0000001"], "max-memory"),
    ("batch-negative", lambda d: ["fit", "image", F(d, "img.png"), "--batch", "-1"], "batch"),
    ("smooth-even", lambda d: ["fit", "image", F(d, "img.png"), "--progressive", "spatial", "--smooth", "2"], "smooth"),
    ("mask-blur-even", lambda d: ["fit", "image", F(d, "img.png"), "--progressive", "spatial", "--mask-blur", "4"], "mask_blur"),
    ("blocks-negative", lambda d: ["fit", "image", F(d, "img.png"), "--progressive", "global", "--blocks", "-1"], "blocks"),
    ("log2-table", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "hash_grid", "--log2-table", "40"], "log2_table"),
    ("levels-0", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "hash_grid", "--levels", "0"], "levels"),
    ("max-res-below-base", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "hash_grid", "--max-res", "2"], "max_res"),
    ("lpe-grid-negative", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "lpe", "--grid", "-1"], "grid"),
    ("lpe-freqs", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "lpe", "--freqs", "cubic"], "freqs"),
    ("flag-of-another-encoding", lambda d: ["fit", "image", F(d, "img.png"), "--encoding", "positional", "--sigma", "3"], "no setting"),
    ("sampling", lambda d: ["fit", "image", F(d, "img.png"), "--sampling", "uniform"], "sampling"),
    # render
    ("render-missing-run", lambda d: ["render", F(d, "nope"), "--out", F(d, "r1.png")], "not found"),
    ("render-size-0", lambda d: ["render", F(d, "imgrun"), "--size", "0x0", "--out", F(d, "r2.png")], "size"),
    ("render-size-word", lambda d: ["render", F(d, "imgrun"), "--size", "big", "--out", F(d, "r3.png")], "size"),
    ("render-size-huge", lambda d: ["render", F(d, "imgrun"), "--size", "100000x100000", "--out", F(d, "r4.png")], "MP"),
    ("render-scale-0", lambda d: ["render", F(d, "imgrun"), "--scale", "0", "--out", F(d, "r5.png")], "scale"),
    ("render-scale-negative", lambda d: ["render", F(d, "imgrun"), "--scale", "-2", "--out", F(d, "r6.png")], "scale"),
    ("render-size-and-scale", lambda d: ["render", F(d, "imgrun"), "--scale", "2", "--size", "32x32", "--out", F(d, "r7.png")], "not both"),
    ("render-3d-run", lambda d: ["render", F(d, "shaperun"), "--out", F(d, "r8.png")], "occupancy"),
    ("render-out-folder", lambda d: ["render", F(d, "imgrun"), "--out", F(d, "folder.png")], "folder"),
    ("render-out-extension", lambda d: ["render", F(d, "imgrun"), "--out", F(d, "r9.xyz")], "extension"),
    ("render-garbage-model", lambda d: ["render", F(d, "model.safetensors"), "--out", F(d, "r10.png")], "cannot read"),
    # mesh
    ("mesh-res-small", lambda d: ["mesh", F(d, "shaperun"), "--res", "4", "--out", F(d, "m1.ply")], "res"),
    ("mesh-res-huge", lambda d: ["mesh", F(d, "shaperun"), "--res", "100000", "--out", F(d, "m2.ply")], "res"),
    ("mesh-image-run", lambda d: ["mesh", F(d, "imgrun"), "--out", F(d, "m3.ply")], "3-D model"),
    ("mesh-out-extension", lambda d: ["mesh", F(d, "shaperun"), "--res", "8", "--out", F(d, "m4.xyz")], "extension"),
    # 1-D signals
    ("signal-missing", lambda d: ["fit", "signal1d", F(d, "none.csv")], "not found"),
    ("signal-nan", lambda d: ["fit", "signal1d", F(d, "nan.csv")], "finite"),
    ("signal-complex", lambda d: ["fit", "signal1d", F(d, "complex.npy")], "complex"),
    ("signal-two-columns-csv", lambda d: ["fit", "signal1d", F(d, "two.csv")], "column"),
    ("signal-two-columns-npy", lambda d: ["fit", "signal1d", F(d, "two.npy")], "1-D"),
    ("signal-words", lambda d: ["fit", "signal1d", F(d, "words.csv")], "number"),
    ("signal-object-npy", lambda d: ["fit", "signal1d", F(d, "obj.npy")], "npy"),
    ("signal-garbage-npy", lambda d: ["fit", "signal1d", F(d, "sig.npy")], "npy"),
    ("signal-samples-1", lambda d: ["fit", "signal1d", "--samples", "1"], "samples"),
    # silhouettes
    ("silhouette-blank", lambda d: ["fit", "silhouette", F(d, "black.png")], "no shape"),
    ("silhouette-points", lambda d: ["fit", "silhouette", "--points", "2"], "points"),
    # meshes
    ("mesh-garbage", lambda d: ["fit", "occupancy", F(d, "garbage.obj")], "garbage.obj"),
    ("mesh-empty", lambda d: ["fit", "occupancy", F(d, "empty.obj")], "empty.obj"),
    ("mesh-no-faces", lambda d: ["fit", "occupancy", F(d, "points.obj")], "triangles"),
    ("mesh-degenerate", lambda d: ["fit", "occupancy", F(d, "flat.obj")], "degenerate"),
    ("mesh-nan", lambda d: ["fit", "occupancy", F(d, "nan.obj")], "non-finite"),
    ("mesh-suffix", lambda d: ["fit", "occupancy", F(d, "mesh.xyz")], "mesh must be"),
    ("samples-0", lambda d: ["fit", "occupancy", "--samples", "0"], "samples"),
    ("eikonal-occupancy", lambda d: ["fit", "occupancy", "--eikonal", "0.1"], "eikonal"),
    ("eikonal-negative", lambda d: ["fit", "sdf", "--eikonal", "-1"], "eikonal"),
    ("mc-res-huge", lambda d: ["fit", "sdf", "--mc-res", "100000"], "mc_res"),
    # benchmarks, pictures, resume
    ("bench-missing-data", lambda d: ["bench", "images", "--data", F(d, "nowhere"), "--out", F(d, "b1")], "not found"),
    ("bench-empty-methods", lambda d: ["bench", "images", "--data", F(d, "images"), "--methods", ",", "--out", F(d, "b2")], "methods"),
    ("bench-seeds-0", lambda d: ["bench", "images", "--data", F(d, "images"), "--seeds", "0", "--out", F(d, "b3")], "seeds"),
    ("bench-workers-0", lambda d: ["bench", "images", "--data", F(d, "images"), "--workers", "0", "--out", F(d, "b4")], "workers"),
    ("bench-unknown-method", lambda d: ["bench", "images", "--data", F(d, "images"), "--methods", "none,fourier", "--out", F(d, "b5")], "unknown method"),
    ("bench-missing-image", lambda d: ["bench", "images", "--data", F(d, "images"), "--images", "kodim99", "--out", F(d, "b6")], "kodim99"),
    ("viz-size-0", lambda d: ["viz", "fourier", "--size", "0", "--out", F(d, "v1.png")], "size"),
    ("viz-features-0", lambda d: ["viz", "fourier", "--features", "0", "--out", F(d, "v2.png")], "features"),
    ("resume-missing", lambda d: ["resume", F(d, "nope")], "not a run folder"),
    ("resume-finished", lambda d: ["resume", F(d, "imgrun")], "nothing to resume"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(case, files, capsys, tmp_path):
    name, argv, needle = case
    args = argv(files)
    if args[0] == "fit" and "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    if args[0] == "fit" and "--iters" not in args and "--config" not in args:
        args += ["--iters", "2"]
    code = main(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "a refused run left output"


API_CASES = [
    ("build-unknown", lambda: posenc.build_encoding({"type": "nope"}, 2)),
    ("build-not-mapping", lambda: posenc.build_encoding("gaussian", 2)),
    ("build-fraction", lambda: posenc.build_encoding({"type": "gaussian", "features": 2.5}, 2)),
    ("build-string", lambda: posenc.build_encoding({"type": "gaussian", "sigma": "abc"}, 2)),
    ("build-unknown-key", lambda: posenc.build_encoding({"type": "gaussian", "num_freqs": 3}, 2)),
    ("build-dim-0", lambda: posenc.build_encoding({"type": "gaussian"}, 0)),
    ("build-grid-5d", lambda: posenc.build_encoding({"type": "dense_grid"}, 5)),
    ("class-fraction", lambda: posenc.GaussianFourierFeatures(2, features=1.5)),
    ("policy-bad-grid", lambda: posenc.SpatialProgression(posenc.GaussianFourierFeatures(2), mask_grid=0)),
    ("policy-not-encoding", lambda: posenc.GlobalProgression(torch.nn.Linear(2, 2))),
    ("policy-iters", lambda: posenc.GlobalProgression(posenc.GaussianFourierFeatures(2), iters=0)),
    ("policy-build-unknown", lambda: posenc.build_policy({"type": "warp"}, posenc.GaussianFourierFeatures(2))),
    ("mlp-width", lambda: posenc.MLP(2, 3, width=0)),
    ("mlp-activation", lambda: posenc.MLP(2, 3, activation="tanh")),
    ("field-mismatch", lambda: posenc.Field(posenc.GaussianFourierFeatures(2, features=4), posenc.MLP(7, 3))),
    ("resolve-task", lambda: posenc.resolve_config("video")),
    ("resolve-method", lambda: posenc.resolve_config("image", method="nope")),
    ("resolve-override-key", lambda: posenc.resolve_config("image", overrides={"iters": 3})),
    ("resolve-override-type", lambda: posenc.resolve_config("image", overrides={"train.iters": "ten"})),
    ("fitconfig-dict", lambda: posenc.FitConfig.from_dict({"task": "image", "network": {"width": "wide"}})),
    ("load-missing", lambda: posenc.load("/nonexistent/f.safetensors")),
    ("encode-wrong-shape", lambda: posenc.GaussianFourierFeatures(2)(torch.rand(3, 5))),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_raises_posenc_error(case):
    with pytest.raises(PosencError):
        case[1]()


def test_the_suite_is_large_enough():
    assert len(CASES) + len(API_CASES) >= 80


@pytest.mark.parametrize("argv, needle", [
    (["render", "RUN", "--out", "x.png", "--threads", "-3"], "argument --threads: must be from 0 to 1,024, got -3"),
    (["bench", "perf", "--threads", "-1"], "argument --threads: must be from 0"),
    (["bench", "perf", "--points", "0"], "argument --points: must be from 1"),
    (["bench", "perf", "--steps", "x"], "argument --steps: 'x' is not an integer"),
    (["reproduce", "tancik-images", "--workers", "0"], "argument --workers: must be from 1"),
    (["fit", "image", "--seed", "-1"], "seed must be from 0"),
    (["fit", "image", "--seed", str(2**70)], "seed must be from 0"),
])
def test_integer_arguments_share_one_rule(argv, needle, capsys, tmp_path):
    from posenc.cli import main

    argv = [a.replace("RUN", str(tmp_path)) for a in argv]
    assert main([*argv, *(["--out", str(tmp_path / "o"), "--quiet"] if argv[0] == "fit" else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
