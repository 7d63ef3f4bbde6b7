"""A library call never fails silently: the failures a user met in an own training loop, one test each
(out-of-domain points, NaN, 0-d and wrong-dtype inputs, param groups, SAPE's update contract,
save/load symmetry, the version). Registry-generated: every encoding is covered without edits."""

from __future__ import annotations

import importlib.metadata
import warnings

import pytest
import torch

import posenc
from posenc.config import resolve_config
from posenc.encodings import build_encoding, encoding_class, encoding_names
from posenc.errors import PosencError, PosencWarning

NAMES = encoding_names()


def enc2(name: str, **kw) -> posenc.Encoding:
    return build_encoding({"type": name, **kw}, 2)


@pytest.mark.parametrize("name", NAMES)
def test_points_outside_the_domain_warn_once_and_error_on_request(name):
    enc = enc2(name)
    inside = torch.rand(16, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc(inside)  # nothing to say inside [0, 1]^2
    outside = inside * 2 - 0.5
    with pytest.warns(PosencWarning, match=r"points lie outside its domain \[0, 1\]\^2"):
        enc(outside)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc(outside)  # once per encoding
    strict = enc2(name, outside="error")
    with pytest.raises(PosencError, match="outside its domain"):
        strict(outside)
    quiet = enc2(name, outside="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(quiet(outside), enc(outside))


@pytest.mark.parametrize("name", NAMES)
def test_a_domain_maps_onto_the_unit_box(name):
    """domain=(-1, 1): the encoding of p is the unit-domain encoding of (p + 1) / 2, the same parameters."""
    torch.manual_seed(0)
    unit = enc2(name)
    wide = enc2(name, domain=(-1, 1))
    wide.load_state_dict(unit.state_dict())
    p = torch.rand(32, 2) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(wide(p), unit((p + 1) / 2))
    assert wide.config["domain"] == [-1.0, 1.0]
    assert build_encoding(wide.config).domain == (-1.0, 1.0)


def test_a_grid_over_minus_one_one_tells_the_octants_apart():
    """The reported failure: an SDF in [-1, 1]^3 on a grid clamped everything below 0 into one border."""
    enc = build_encoding({"type": "dense_grid", "res": 4, "features": 1, "domain": (-1, 1)}, 3)
    torch.nn.init.uniform_(enc.tables[0] if hasattr(enc, "tables") else next(enc.parameters()), -1, 1)
    a, b = torch.tensor([[-0.9, -0.9, -0.9]]), torch.tensor([[-0.4, -0.4, -0.4]])
    assert not torch.equal(enc(a), enc(b))


def test_clamp_and_wrap_are_what_they_say():
    enc = enc2("gaussian", features=8, outside="clamp")
    ref = enc2("gaussian", features=8)
    x = torch.tensor([[1.5, -0.25]])
    torch.testing.assert_close(enc(x), ref(torch.tensor([[1.0, 0.0]])))
    wrap = enc2("gaussian", features=8, outside="wrap")
    torch.testing.assert_close(wrap(x), ref(torch.tensor([[0.5, 0.75]])))


@pytest.mark.parametrize("bad, match", [({"domain": (1, 0)}, "lo < hi"), ({"domain": 3}, "two numbers"),
                                        ({"outside": "drop"}, "outside must be one of")])
def test_bad_domain_settings_are_one_line(bad, match):
    with pytest.raises(PosencError, match=match):
        enc2("gaussian", **bad)


@pytest.mark.parametrize("name", NAMES)
def test_nan_and_zero_d_and_integer_inputs_are_one_line_errors(name):
    enc = enc2(name)
    x = torch.rand(5, 2)
    x[3, 1] = float("nan")
    with pytest.raises(PosencError, match=r"NaN coordinates \(1 of 5 points\)"):
        enc(x)
    with pytest.raises(PosencError, match="0-d tensor"):
        enc(torch.tensor(0.5))
    with pytest.raises(PosencError, match="floating-point coordinates, got torch.int64"):
        enc(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(PosencError, match="2 components"):
        enc(torch.rand(3, 3))
    with pytest.raises(PosencError, match="torch.Tensor"):
        enc([[0.5, 0.5]])
    with pytest.raises(PosencError, match="NaN"):
        enc.bind(x)


@pytest.mark.parametrize("name", NAMES)
def test_one_dtype_rule_for_every_encoding(name):
    """Floating inputs of any precision are computed in the encoding's dtype (float32 here); an encoding
    without tensors computes in float32, or float64 when given float64."""
    enc = enc2(name)
    has_tensors = any(t.is_floating_point() for t in (*enc.parameters(), *enc.buffers()))
    x = torch.rand(6, 2)
    want = enc(x)
    assert want.dtype == torch.float32
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        got = enc(x.to(dtype))
        assert got.dtype == (torch.float64 if dtype == torch.float64 and not has_tensors else torch.float32), dtype
        if dtype == torch.float64:
            torch.testing.assert_close(got.float(), want)
    double = enc2(name).double()
    assert double(x if has_tensors else x.double()).dtype == torch.float64


def test_param_groups_find_encodings_anywhere_in_a_module():
    class Mine(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.front = build_encoding({"type": "hash_grid", "levels": 2, "log2_table": 8}, 2)
            self.head = torch.nn.Linear(self.front.out_dim, 1)

        def forward(self, x):
            return self.head(self.front(x))

    mine = Mine()
    groups = posenc.param_groups(mine, lr=1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 1e-2]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in mine.front.parameters()}
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in mine.head.parameters()}


def sape(iters: int | None = 100, **kw) -> posenc.SpatialProgression:
    enc = build_encoding({"type": "gaussian", "features": 16, "include_input": True}, 2)
    if iters is None:
        return posenc.SpatialProgression(enc, mask_grid=8, **kw)
    return posenc.SpatialProgression(enc, iters, mask_grid=8, **kw)


def test_sape_warns_when_iters_is_not_set():
    with pytest.warns(PosencWarning, match="iters not set"):
        pol = sape(None)
    assert pol.iters == 2000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sape(300)


def test_sape_warns_when_update_is_never_called():
    pol = sape()
    x = torch.rand(20, 2)
    with pytest.warns(PosencWarning, match=r"no update\(\): the mask does not move \(2 of 34 channels open\)"):
        for _ in range(10):
            pol(x)  # training mode, autograd on: each is a training forward


def test_sape_refuses_an_update_after_an_evaluation_forward_on_other_points():
    pol = sape()
    train, other = torch.rand(20, 2), torch.rand(20, 2)
    pol(train)
    pol(other)  # an evaluation forward in training mode with autograd on
    with pytest.raises(PosencError, match="cannot tell which points the loss belongs to"):
        pol.update(torch.ones(20))
    pol(train)
    with torch.no_grad():
        pol(other)  # evaluation the right way: no_grad (or .eval()) is not remembered
    pol.update(torch.ones(20))
    pol(train)
    pol(other)
    pol.update(torch.ones(20), other)  # or name the points
    assert int(pol.steps) == 2


def test_sape_class_defaults_are_the_resolved_image_defaults():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosencWarning)
        pol = posenc.SpatialProgression(build_encoding({"type": "gaussian"}, 2), 2000)
    cfg = resolve_config("image", method="sape+gaussian").progressive
    assert (pol.smooth, pol.mask_blur, pol.mask_grid) == (cfg["smooth"], cfg["mask_blur"], cfg["mask_grid"]) == (5, 5, 128)
    pol3 = posenc.SpatialProgression(build_encoding({"type": "gaussian"}, 3), 2000)
    cfg3 = resolve_config("sdf", method="sape+gaussian").progressive
    assert (pol3.smooth, pol3.mask_blur, pol3.mask_grid) == (cfg3["smooth"], cfg3["mask_blur"], cfg3["mask_grid"]) == (3, 1, 64)


@pytest.mark.parametrize("name", NAMES)
def test_a_bare_encoding_saves_and_loads_with_its_dtype(name, tmp_path):
    torch.manual_seed(0)
    enc = enc2(name).double()
    x = torch.rand(7, 2, dtype=torch.float64)
    posenc.save(enc, tmp_path / "e.safetensors")
    back = posenc.load(tmp_path / "e.safetensors")
    assert type(back) is type(enc) and back.config == enc.config and enc.config["in_dim"] == 2
    assert back(x).dtype == torch.float64
    torch.testing.assert_close(back(x), enc(x), rtol=0, atol=0)


def test_a_policy_saves_and_loads(tmp_path):
    pol = sape()
    x = torch.rand(30, 2)
    for _ in range(40):
        pol(x)
        pol.update(torch.rand(30))
    posenc.save(pol, tmp_path / "p.safetensors")
    back = posenc.load(tmp_path / "p.safetensors")
    assert isinstance(back, posenc.SpatialProgression) and back.config == pol.config
    torch.testing.assert_close(back.mask(x), pol.mask(x), rtol=0, atol=0)


def test_saving_something_else_is_one_line(tmp_path):
    with pytest.raises(PosencError, match="save takes a posenc Field, encoding or progressive policy"):
        posenc.save(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


def test_the_version_is_the_package_metadata():
    assert posenc.__version__ == importlib.metadata.version("posenc")


# -- tiny-cuda-nn configs ------------------------------------------------------------------------
def test_tcnn_frequency_is_the_same_function():
    """tcnn's Frequency encoding: sin(2^i pi x) and cos(2^i pi x) for i < n, every axis."""
    enc = posenc.from_tcnn_config({"otype": "Frequency", "n_frequencies": 5}, 2)
    x = torch.rand(64, 2, dtype=torch.float64)
    ours = enc.double()(x)
    want = torch.cat([f(2.0**i * torch.pi * x) for i in range(5) for f in (torch.sin, torch.cos)], dim=-1)
    assert ours.shape == want.shape == (64, 20)
    # the same columns, in posenc's channel order: every tcnn column is one of ours
    gap = torch.cdist(want.T.contiguous(), ours.T.contiguous()).amin(dim=1)
    assert float(gap.max()) < 1e-9


def test_tcnn_hash_grid_levels():
    cfg = posenc.tcnn_to_posenc({"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 4,
                                 "log2_hashmap_size": 15, "base_resolution": 16, "per_level_scale": 1.5})
    assert cfg == {"type": "hash_grid", "levels": 8, "features_per_level": 4, "base_res": 16,
                   "max_res": round(16 * 1.5**7), "log2_table": 15}
    enc = posenc.from_tcnn_config({"otype": "Grid", "type": "Dense", "n_levels": 3, "base_resolution": 4,
                                   "per_level_scale": 2.0}, 2)
    assert enc.type_name == "multires_grid" and enc.resolutions == [4, 8, 16] and enc.out_dim == 6
    assert posenc.from_tcnn_config({"otype": "HashGrid"}, 3).config["log2_table"] == 19  # tcnn's defaults


@pytest.mark.parametrize("bad, match", [
    ({"otype": "OneBlob", "n_bins": 16}, "no posenc counterpart"),
    ({"otype": "HashGrid", "n_level": 4}, "unknown key"),
    ({"otype": "Grid", "type": "Tiled"}, "Tiled"),
    ({"otype": "HashGrid", "interpolation": "Smoothstep"}, "Smoothstep"),
    ({"otype": "Identity", "scale": 2.0}, "scale or offset"),
    ({"n_levels": 4}, "otype")])
def test_tcnn_configs_without_a_counterpart_are_one_line(bad, match):
    with pytest.raises(PosencError, match=match):
        posenc.from_tcnn_config(bad, 3)


def test_a_paused_policy_neither_warns_nor_remembers():
    """A warm-up fit with the mask held (the silhouettes' calibration) is not a forgotten update()."""
    pol = sape()
    warm, train = torch.rand(20, 2), torch.rand(30, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pol.paused():
            for _ in range(12):
                pol(warm)
        pol(train)
        pol.update(torch.ones(30))  # the loss of the one remembered forward
    assert int(pol.steps) == 1


def test_a_cli_fit_with_a_calibration_stage_gives_no_policy_warning(tmp_path):
    from posenc.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("error", PosencWarning)
        assert main(["fit", "silhouette", "--method", "sape+gaussian:sigma=10:blocks=2", "--iters", "5", "--calib-iters", "12",
                     "--points", "64", "--target-points", "128", "--width", "16", "--depth", "1", "--features", "8",
                     "--threads", "1", "--quiet", "--out", str(tmp_path / "s")]) == 0
