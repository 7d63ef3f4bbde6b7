"""Input and parameter gradients of every registered encoding and of the policy masks, generated from
the registry: a new encoding is covered without editing this file.

First and second order (``gradcheck`` / ``gradgradcheck`` in float64) with respect to the input
coordinates and the learned parameters, on the general path (``forward``) and the bound path
(``bind``), in 1-D to 3-D (and 4-D where the encoding takes it); ``torch.compile`` traces each one
and the SAPE mask as one graph (no breaks) and matches eager.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

from posenc.encodings import build_encoding, encoding_class, encoding_names
from posenc.progressive import GlobalProgression, SpatialProgression

DIMS = [1, 2, 3, 4]


def cases():
    for name in encoding_names():
        cls = encoding_class(name)
        for d in DIMS:
            if cls.max_dim is None or d <= cls.max_dim:
                yield pytest.param(name, d, id=f"{name}-{d}d")


def small_config(name: str, d: int) -> dict:
    """The default settings; from 3-D on, the declared size knob at the smallest value that builds
    (a default 128-cell dense grid is 8.6M floats in 3-D and 1.1G in 4-D)."""
    cls = encoding_class(name)
    if d < 3 or cls.size_knob is None:
        return {"type": name}
    lo, hi = cls.size_range
    value = lo
    while True:
        try:
            build_encoding({"type": name, cls.size_knob: value}, d)
            return {"type": name, cls.size_knob: value}
        except Exception:  # below the setting's minimum (e.g. max_res < base_res): grow
            value *= 2
            assert value <= hi, f"{name}: no size of {cls.size_knob} builds in {d}-D"


def make(name: str, d: int, seed: int = 0) -> torch.nn.Module:
    """The encoding (see :func:`small_config`) in float64, learned parameters randomised (so that
    their gradients, and the input gradient through them, are not trivially constant)."""
    torch.manual_seed(seed)
    enc = build_encoding(small_config(name, d), d).double()
    with torch.no_grad():
        for p in enc.parameters():
            p.copy_(torch.randn_like(p))
    return enc


def points(n: int, d: int, seed: int = 1) -> torch.Tensor:
    # interior points (cell faces and lattice seams are measure-zero kinks of piecewise encodings)
    return (0.05 + 0.9 * torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))


@pytest.mark.parametrize("name,d", list(cases()))
def test_input_gradients_first_and_second_order(name, d):
    enc = make(name, d)
    x = points(3, d).requires_grad_(True)
    assert gradcheck(enc, (x,), fast_mode=True)
    assert gradgradcheck(enc, (x,), fast_mode=True)
    # leading dimensions are kept: (2, 3, d) -> (2, 3, out_dim), same gradient as flat
    xb = points(6, d, seed=2).reshape(2, 3, d).requires_grad_(True)
    g = torch.autograd.grad(enc(xb).sum(), xb)[0]
    xf = xb.detach().reshape(6, d).requires_grad_(True)
    torch.testing.assert_close(g.reshape(6, d), torch.autograd.grad(enc(xf).sum(), xf)[0])


@pytest.mark.parametrize("name,d", [c for c in cases() if c.values[1] <= 3])
def test_parameter_and_mixed_gradients_general_and_bound_path(name, d):
    enc = make(name, d)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in enc.named_parameters()}
    if not params:
        pytest.skip(f"{name} has no learned parameters")
    names = list(params)
    x = points(4, d)

    def general(xi, *ps):
        return functional_call(enc, dict(zip(names, ps)), (xi,))

    xi = x.clone().requires_grad_(True)
    assert gradcheck(general, (xi, *params.values()), fast_mode=True)
    assert gradgradcheck(general, (xi, *params.values()), fast_mode=True)  # d/dtheta of d/dx: eikonal terms

    class Bound(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = enc
            self.fn = enc.bind(x)

        def forward(self) -> torch.Tensor:
            return self.fn()

    bound = Bound()

    def bound_fn(*ps):
        return functional_call(bound, {f"enc.{k}": p for k, p in zip(names, ps)}, ())

    torch.testing.assert_close(bound(), enc(x))
    assert gradcheck(bound_fn, tuple(params.values()), fast_mode=True)
    assert gradgradcheck(bound_fn, tuple(params.values()), fast_mode=True)


@pytest.mark.parametrize("name,d", [c for c in cases() if c.values[1] == 2])
def test_bound_path_gives_input_gradients_to_points_that_ask_for_them(name, d):
    enc = make(name, d)
    x = points(5, d).requires_grad_(True)
    assert gradcheck(lambda xi: enc.bind(xi)(), (x,), fast_mode=True)


def test_lpe_input_gradient_matches_finite_differences_in_3d():
    """The issue's case: LPE normals were 13% off in 3-D because the interpolation weights got no gradient."""
    enc = make("lpe", 3)
    x = points(64, 3).requires_grad_(True)
    f = lambda p: enc(p).sum(-1)  # noqa: E731
    g = torch.autograd.grad(f(x).sum(), x)[0]
    h = 1e-6
    fd = torch.stack([(f(x.detach() + h * e) - f(x.detach() - h * e)) / (2 * h) for e in torch.eye(3, dtype=torch.float64)], -1)
    torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-6)
    assert float(g.norm(dim=-1).min()) > 0


@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("policy", ["global", "spatial"])
def test_policy_masks_are_differentiable_in_the_coordinates(policy, d):
    torch.manual_seed(0)
    enc = build_encoding({"type": "gaussian", "features": 6, "sigma": 3.0, "include_input": True}, d).double()
    if policy == "spatial":
        pol = SpatialProgression(enc, iters=100, mask_grid=4, mask_blur=3 if d < 4 else 1).double()
        pol.level.copy_(torch.rand(pol.level.shape, dtype=torch.float64) * 6)
    else:
        pol = GlobalProgression(enc, iters=100).double()
        pol.level.fill_(2.5)
    x = points(3, d).requires_grad_(True)
    assert gradcheck(pol, (x,), fast_mode=True)
    assert gradgradcheck(pol, (x,), fast_mode=True)
    if policy == "spatial":  # the mask itself moves with x (eq. 6 is an interpolation)
        g = torch.autograd.grad(pol.mask(x).sum(), x)[0]
        assert float(g.abs().sum()) > 0


def _compile_check(module: torch.nn.Module, x: torch.Tensor, backend: str) -> None:
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend=backend)  # fullgraph: a graph break is an error
    xe, xc = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    eager, out = module(xe), compiled(xc)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    ge = torch.autograd.grad(eager.square().sum(), [xe, *module.parameters()], allow_unused=True)
    gc = torch.autograd.grad(out.square().sum(), [xc, *module.parameters()], allow_unused=True)
    for a, b in zip(ge, gc):
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def _compile_cases():
    torch.manual_seed(0)
    for name in encoding_names():
        yield pytest.param(name, id=name)
    yield pytest.param("sape", id="sape+gaussian")


def _module(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "sape":
        enc = build_encoding({"type": "gaussian", "features": 8, "include_input": True}, 2)
        pol = SpatialProgression(enc, iters=100, mask_grid=8, mask_blur=3)
        pol.level.copy_(torch.rand(64) * 8)
        pol.version += 1
        return pol
    return build_encoding({"type": name}, 2)


@pytest.mark.parametrize("name", list(_compile_cases()))
def test_torch_compile_traces_one_graph_and_matches_eager(name):
    _compile_check(_module(name).double(), points(32, 2), backend="aot_eager")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_compile_cases()))
def test_torch_compile_inductor_matches_eager(name):
    _compile_check(_module(name).double(), points(32, 2), backend="inductor")


@pytest.mark.parametrize("name,d", [c for c in cases() if c.values[1] == 2])
def test_include_input_prepends_the_coordinates_on_every_path(name, d):
    """``include_input``: the raw coordinates come first, then the encoding, on the general path and on
    the bound path, for scattered points and for a pixel grid (LPE's separable path)."""
    from posenc.tasks.image import pixel_coordinates

    if "include_input" not in inspect.signature(encoding_class(name).__init__).parameters:
        pytest.skip(f"{name} is the identity already")
    plain = make(name, d)
    torch.manual_seed(0)
    enc = build_encoding(dict(small_config(name, d), include_input=True), d).double()
    enc.load_state_dict(plain.state_dict())
    assert enc.out_dim == plain.out_dim + d
    for x in (points(5, d), pixel_coordinates(6, 4).double()):
        out = enc(x)
        assert out.shape == (x.shape[0], enc.out_dim)
        torch.testing.assert_close(out[:, :d], x)
        torch.testing.assert_close(out[:, d:], plain(x))
        torch.testing.assert_close(enc.bind(x)(), out)
