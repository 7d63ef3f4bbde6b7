"""posenc as a library: the README's training-loop snippets run as written, components describe and
rebuild themselves, one resolver serves the CLI and the API, policies work in any loop."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import posenc
from posenc.cli import _fit_config_from_args, build_parser
from posenc.config import TASK_CONFIGS, TASK_DIMS, FitConfig, resolve_config
from posenc.encodings import build_encoding, encoding_class, encoding_names
from posenc.errors import PosencError
from posenc.methods import apply_method, method_names

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section_code(title: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


def test_readme_training_loop_snippets_run_as_written(tmp_path, monkeypatch):
    blocks = readme_section_code("Use posenc in your own training loop")
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    sdf_ns: dict = {}
    exec(compile(blocks[0], "README:sdf", "exec"), sdf_ns)  # noqa: S102 - our own README
    field, field2, sape = sdf_ns["field"], sdf_ns["field2"], sdf_ns["sape"]
    x = torch.rand(2, 5, 3)
    torch.testing.assert_close(field(x), field2(x))
    assert int(sape.steps) == 20 and float(sape.level.mean()) > sape.start_level
    assert posenc.build_encoding(sdf_ns["enc"].config, 3).config == sdf_ns["enc"].config
    img_ns: dict = {}
    exec(compile(blocks[1], "README:image", "exec"), img_ns)  # noqa: S102
    assert float(img_ns["psnr"]) > 20.0  # the fit works, not just runs
    policy = img_ns["policy"]
    assert int(policy.steps) == 200 and (bool(policy.stopped) or float(policy.level) == policy.n)  # early stop or all open


def test_public_api_exports():
    for name in ("GlobalProgression", "SpatialProgression", "Field", "MLP", "Siren", "param_groups", "build_encoding",
                 "build_policy", "save", "load", "resolve_config", "bound_step", "PosencError"):
        assert hasattr(posenc, name) and name in posenc.__all__
    for name in encoding_names():
        cls = encoding_class(name)
        assert getattr(posenc, cls.__name__) is cls  # every encoding, by its class name


@pytest.mark.parametrize("name", encoding_names())
def test_config_rebuilds_an_identical_encoding(name):
    for d in (1, 2, 3):
        if encoding_class(name).max_dim is not None and d > encoding_class(name).max_dim:
            continue
        cfg = {"type": name, encoding_class(name).size_knob: 8} if d == 3 and encoding_class(name).size_knob in ("res", "max_res") else {"type": name}
        if name == "multires_grid" and d == 3:
            cfg = {"type": name, "max_res": 16}
        enc = build_encoding(cfg, d)
        again = build_encoding(enc.config, d)
        assert again.config == enc.config and set(enc.config) == {"type", "in_dim", *encoding_class(name).settings()}
        assert all(v is not None for v in enc.config.values()), "no placeholder left in .config"
        for (k, a), (_, b) in zip(enc.state_dict().items(), again.state_dict().items()):
            assert torch.equal(a, b), k
        x = torch.rand(4, d)
        torch.testing.assert_close(enc(x), again(x))


def test_fourier_family_takes_any_dimension_and_grids_four():
    x5 = torch.rand(7, 5)
    for name in ("none", "basic", "positional", "gaussian", "rbf_grid"):
        enc = build_encoding({"type": name}, 5)
        assert enc(x5).shape == (7, enc.out_dim)
    x4 = torch.rand(2, 3, 4)  # an (x, y, z, t) field
    for cfg in ({"type": "hash_grid", "levels": 4, "log2_table": 12}, {"type": "lpe"}, {"type": "dense_grid", "res": 4}):
        enc = build_encoding(cfg, 4)
        assert enc(x4).shape == (2, 3, enc.out_dim)
    sape = posenc.SpatialProgression(build_encoding({"type": "gaussian", "features": 8, "include_input": True}, 4))
    assert sape.mask_grid == 16 and sape(x4).shape == (2, 3, sape.out_dim)
    with pytest.raises(PosencError, match="dimension 1 to 4"):
        build_encoding({"type": "lpe"}, 5)


def test_policy_takes_any_leading_shape_counts_steps_and_extends_its_budget():
    enc = build_encoding({"type": "gaussian", "features": 8, "include_input": True}, 2)
    sape = posenc.SpatialProgression(enc, iters=40, mask_grid=4)
    x = torch.rand(3, 50, 2)
    for _ in range(5):
        out = sape(x)
        assert out.shape == (3, 50, enc.out_dim)
        sape.update(torch.ones(3, 50))
    assert int(sape.steps) == 5
    torch.testing.assert_close(sape.level, torch.full_like(sape.level, 5 / sape.tau))
    before = sape.level.clone()
    sape.iters = 80  # extended: the ramp continues from where it is, at half the speed
    sape(x)
    sape.update(torch.ones(3, 50))
    torch.testing.assert_close(sape.level, before + 1 / sape.tau)
    assert sape.tau == 80 / (2 * 8)
    with pytest.raises(PosencError, match="losses for"):
        sape(x)
        sape.update(torch.ones(7))
    glob = posenc.GlobalProgression(enc, iters=40)
    for _ in range(3):
        glob.update(torch.ones(4))
    glob.iters = 400
    glob.update(torch.ones(4))
    assert float(glob.level) == pytest.approx(3 / 2.5 + 1 / 25.0)
    assert posenc.build_policy(sape.config, enc).config == sape.config


def test_policy_wraps_any_module_with_bands():
    class Plain(torch.nn.Module):
        in_dim, out_dim = 1, 4
        bands = [posenc.Band((0, 1), 1.0), posenc.Band((2, 3), 5.0)]

        def forward(self, x):
            return torch.cat([torch.sin(x), torch.cos(x), torch.sin(5 * x), torch.cos(5 * x)], -1)

    pol = posenc.GlobalProgression(Plain(), iters=8)
    out = pol(torch.rand(3, 1))
    assert out.shape == (3, 4) and torch.all(out[:, 2:] == 0)  # the high band is closed at step 0
    # a module without bind / bind_chunks takes the general path inside every fast path, same values
    x = torch.rand(7, 1)
    for policy in (posenc.GlobalProgression(Plain(), iters=40), posenc.SpatialProgression(Plain(), iters=40, mask_grid=4)):
        for _ in range(5):  # the high band part-way open: the mask is neither 0 nor 1
            policy(x)
            policy.update(torch.rand(7))
        ratio = policy(x)[:, 2:] / Plain()(x)[:, 2:]
        assert bool(((ratio > 0.01) & (ratio < 0.99)).all())
        torch.testing.assert_close(policy.bind(x)(), policy(x))
        torch.testing.assert_close(torch.cat([f() for _, f in policy.bind_chunks(x, 3)]), policy(x))
    for encoding in (Plain(), policy):
        field = posenc.Field(encoding, posenc.MLP(4, 2, width=8, depth=1))
        torch.testing.assert_close(field.bind(x)(), field(x))
        torch.testing.assert_close(torch.cat([f() for _, f in field.bind_chunks(x, 3)]), field(x))
    with pytest.raises(PosencError, match="Linear has no in_dim"):
        posenc.SpatialProgression(torch.nn.Linear(2, 3))


def test_policies_bind_the_encoding_they_wrap():
    """A policy's fast path is the encoding's own: ``bind`` binds it once, ``bind_chunks`` once a pass."""
    x = torch.rand(10, 2)
    for make in (lambda e: posenc.GlobalProgression(e, iters=40), lambda e: posenc.SpatialProgression(e, iters=40, mask_grid=4)):
        enc = build_encoding({"type": "gaussian", "features": 8}, 2)
        bound = []
        enc.bind = lambda points, bind=enc.bind: bound.append(points.shape[0]) or bind(points)
        policy = make(enc)
        torch.testing.assert_close(policy.bind(x)(), policy(x))
        assert bound == [10]
        policy.bind_chunks(x, 4)
        assert bound == [10, 4, 4, 2]


def test_save_and_load_need_no_run_config(tmp_path):
    torch.manual_seed(0)
    enc = build_encoding({"type": "lpe", "grid": 4, "bands": 3}, 2)
    field = posenc.Field(posenc.SpatialProgression(enc, mask_grid=8), posenc.Siren(enc.out_dim, 2, width=16, depth=2))
    with torch.no_grad():
        field.encoding.level.copy_(torch.rand(64) * 3)
    posenc.save(field, tmp_path / "f.safetensors")
    again = posenc.load(tmp_path / "f.safetensors")
    x = torch.rand(10, 2)
    torch.testing.assert_close(again(x), field(x))
    assert again.config == field.config
    first = (tmp_path / "f.safetensors").read_bytes()
    posenc.save(field, tmp_path / "g.safetensors")
    assert (tmp_path / "g.safetensors").read_bytes() == first  # same field, same bytes
    with pytest.raises(PosencError, match="not a posenc model"):
        from safetensors.torch import save_file

        save_file({"a": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
        posenc.load(tmp_path / "x.safetensors")


def test_param_groups_train_learned_encodings_at_their_own_rate():
    enc = build_encoding({"type": "hash_grid", "levels": 2, "log2_table": 8}, 2)
    field = posenc.Field(posenc.SpatialProgression(enc), posenc.MLP(enc.out_dim, 1, width=8, depth=1))
    groups = posenc.param_groups(field, lr=1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 1e-2]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in enc.parameters()}


# -- one resolver ---------------------------------------------------------------------------------
PARSER = build_parser()


def cli_config(*argv: str) -> FitConfig:
    return _fit_config_from_args(PARSER.parse_args(["fit", *argv]))


@pytest.mark.parametrize("task", list(TASK_CONFIGS))
def test_every_method_resolves_identically_through_cli_and_api(task):
    for method in method_names():
        api = resolve_config(task, method=method).to_dict()
        assert cli_config(task, "--method", method).to_dict() == api, method
        assert resolve_config(FitConfig(task=task, method=method)).to_dict() == api, method
        assert apply_method(FitConfig.for_task(task), method).to_dict() == api, method
        prefix, _, enc = method.rpartition("+")
        if enc in encoding_names():  # --encoding / --progressive spell the same method
            flags = ["--encoding", enc] + (["--progressive", {"sape": "spatial", "progressive": "global"}[prefix]] if prefix else [])
            assert cli_config(task, *flags).to_dict() == api, method
        # resolved configs are complete and stable: no placeholder, nothing left to decide
        assert resolve_config(api).to_dict() == api
        assert None not in api["encoding"].values() and None not in api["progressive"].values()
        assert None not in api["network"].values() and None not in api["train"].values()


def test_flags_override_and_config_files_round_trip(tmp_path):
    cfg = cli_config("image", "--method", "sape+gaussian:sigma=20", "--epsilon", "0.01", "--width", "32", "--res", "64")
    assert (cfg.progressive["epsilon"], cfg.network.width, cfg.data.res, cfg.encoding["sigma"]) == (0.01, 32, 64, 20.0)
    assert cfg.progressive["mask_blur"] == 5 and cfg.progressive["mask_grid"] == 128  # the image task's SAPE
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert cli_config("image", "--config", str(path)).to_dict() == cfg.to_dict()
    lpe = cli_config("image", "--config", str(path), "--method", "lpe")  # the file's data, lpe's preset network
    assert (lpe.network.width, lpe.network.activation, lpe.data.res, lpe.progressive["type"]) == (64, "leaky_relu", 64, "none")
    added = cli_config("image", "--config", str(tmp_path / "plain.json") if False else str(path), "--progressive", "global")
    assert added.progressive["type"] == "global" and added.encoding["sigma"] == 20.0
    with pytest.raises(PosencError, match="contradicts"):
        cli_config("image", "--method", "lpe", "--encoding", "gaussian")
    with pytest.raises(PosencError, match="needs a progressive policy"):
        cli_config("image", "--epsilon", "0.1")


def test_help_shows_each_tasks_real_defaults():
    for task, expected in (("silhouette", ["training steps (default 10000)", "Adam learning rate (default 1e-05)",
                                           "hidden layers (default 2)"]),
                           ("image", ["(default spatial: 5)", "(default spatial: 128)", "training steps (default 2000)"])):
        text = PARSER._subparsers._group_actions[0].choices["fit"]._subparsers._group_actions[0].choices[task].format_help()
        text = " ".join(text.split())  # argparse wraps long help lines
        for line in expected:
            assert line in text, (task, line)


def test_encodings_listing_is_complete_and_clean(capsys):
    from posenc.cli import main

    assert main(["encodings"]) == 0
    out = capsys.readouterr().out
    for name in [*encoding_names(), "siren", "progressive+ENC", "sape+ENC"]:
        assert re.search(rf"^{re.escape(name)}\s", out, flags=re.M), name
    assert "``" not in out and ":math:" not in out


def test_a_new_encoding_is_one_class_with_one_decorator():
    """Registering is all it takes: the method string, the resolver, the CLI flags' table and the
    registry-driven tests see it (the class is removed again afterwards)."""
    from posenc.encodings import base

    @posenc.register("toy_square_wave")
    class ToySquareWave(posenc.Encoding):
        """Square waves: ``sign(sin(2 pi f v))`` for f = 1..``levels``."""

        def __init__(self, in_dim: int, levels: int = 3) -> None:
            super().__init__(in_dim)
            self.levels = levels
            self._finish(levels * in_dim)

        def encode(self, x):
            f = torch.arange(1, self.levels + 1, dtype=x.dtype)
            return torch.sign(torch.sin(2 * torch.pi * f * x[..., None])).flatten(1)

        def band_frequencies(self):
            return [([k * self.in_dim + a for a in range(self.in_dim)], float(k + 1)) for k in range(self.levels)]

    try:
        cfg = resolve_config("image", method="sape+toy_square_wave:levels=5")
        assert cfg.encoding == {"type": "toy_square_wave", "levels": 5}
        field = posenc.methods.build_field(cfg)
        assert field(torch.rand(4, 2)).shape == (4, 3)
        with pytest.raises(PosencError, match="levels must be an integer"):
            resolve_config("image", method="toy_square_wave:levels=2.5")
    finally:
        del base._REGISTRY["toy_square_wave"]


@pytest.mark.parametrize("task", sorted(TASK_DIMS))
def test_builds_the_field_the_resolved_config_describes(task):
    cfg = resolve_config(task, method="sape+gaussian:features=8:width=8")
    field = posenc.methods.build_field(cfg)
    assert field.in_dim == TASK_DIMS[task][0] and field.out_dim == TASK_DIMS[task][1]
    assert field.policy is not None and field.policy.iters == cfg.train.iters
    assert field.policy.config == {**cfg.progressive, "iters": cfg.train.iters}


def test_the_cli_trainer_trains_through_the_public_fast_path(image_path, tmp_path, monkeypatch):
    """``posenc fit`` binds the field once (``Field.bind``, the public fast path) and feeds the policy
    through ``update``: no private second implementation."""
    calls = {"bind": 0, "update": 0}
    bind, update = posenc.Field.bind, posenc.SpatialProgression.update

    def counting_bind(self, x):
        calls["bind"] += 1
        return bind(self, x)

    def counting_update(self, loss, x=None):
        calls["update"] += 1
        return update(self, loss, x)

    monkeypatch.setattr(posenc.Field, "bind", counting_bind)
    monkeypatch.setattr(posenc.SpatialProgression, "update", counting_update)
    cfg = posenc.resolve_config("image", method="sape+gaussian:features=8:width=16:depth=1:mask_grid=8",
                                overrides={"data.path": str(image_path), "data.res": 32, "train.iters": 7,
                                           "train.threads": 1, "train.checkpoint_every": 0})
    posenc.fit(cfg, tmp_path / "run", progress=False)
    assert calls == {"bind": 1, "update": 7}
