"""Networks: shapes, output activation, SIREN initialisation statistics, parameter counts."""

from __future__ import annotations

import math

import pytest
import torch

from posenc.config import FitConfig
from posenc.methods import apply_method, build_field
from posenc.networks import MLP, Siren


def test_mlp_shapes_and_sigmoid():
    torch.manual_seed(0)
    net = MLP(10, 3, width=32, depth=3, output="sigmoid")
    y = net(torch.randn(7, 10) * 10)
    assert y.shape == (7, 3) and torch.all((y > 0) & (y < 1))
    assert len(net.layers) == 4


def test_wide_sigmoid_head_formula_and_range():
    from posenc.networks import WIDE_SIGMOID_MARGIN, output_activation

    z = torch.linspace(-30, 30, 101)
    e = WIDE_SIGMOID_MARGIN
    assert torch.allclose(output_activation(z, "wide_sigmoid"), (1 + 2 * e) * torch.sigmoid(z) - e)
    # the ends of [0, 1] are reached at finite logits where the slope is still far from zero
    for target in (0.0, 1.0):
        p = (target + e) / (1 + 2 * e)
        zt = torch.logit(torch.tensor(p)).requires_grad_()
        y = output_activation(zt, "wide_sigmoid")
        y.backward()
        assert abs(float(y.detach()) - target) < 1e-6 and float(zt.grad) > 0.05
    net = MLP(4, 3, width=16, depth=2, output="wide_sigmoid")
    with torch.no_grad():
        y = net(torch.randn(50, 4) * 100)
    assert torch.all((y >= -e - 1e-6) & (y <= 1 + e + 1e-6)) and float(y.max() - y.min()) > 1.0
    cfg = FitConfig.for_task("image")
    cfg.network.output = "wide_sigmoid"
    assert build_field(cfg, 2, 3).network.output == "wide_sigmoid"


def test_mlp_rejects_bad_settings():
    from posenc.errors import PosencError

    with pytest.raises(PosencError):
        MLP(2, 3, activation="tanh")
    with pytest.raises(PosencError):
        MLP(2, 3, width=0)


def test_siren_initialisation_bounds():
    torch.manual_seed(0)
    net = Siren(2, 3, width=256, depth=3, omega_0=30.0)
    first = net.layers[0].linear.weight
    assert float(first.detach().abs().max()) <= 1.0 / 2 + 1e-7
    for layer in net.layers[1:]:
        bound = math.sqrt(6.0 / 256) / 30.0
        w = layer.linear.weight.detach()
        assert float(w.detach().abs().max()) <= bound + 1e-7
        # uniform on [-b, b] has std b / sqrt(3)
        assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_siren_activation_statistics():
    """Sitzmann et al. Sec. 3.2: with this init, hidden activations follow the arcsine law on [-1, 1]
    (variance 1/2) at every depth, instead of collapsing or saturating."""
    torch.manual_seed(0)
    net = Siren(2, 1, width=512, depth=5, omega_0=30.0)
    x = torch.rand(4096, 2)
    h = 2 * x - 1
    with torch.no_grad():
        h = net.layers[0](h)
        for layer in net.layers[1:]:
            h = layer(h)
            assert float(h.var()) == pytest.approx(0.5, abs=0.06)


def test_field_parameter_counts():
    cfg = apply_method(FitConfig(), "gaussian:features=16:width=32:depth=2")
    field = build_field(cfg, 2, 3)
    expected = (32 * 32 + 32) + (32 * 32 + 32) + (32 * 3 + 3)
    assert field.parameter_counts() == {"encoding": 0, "network": expected, "total": expected}


def test_siren_method_preset():
    cfg = apply_method(FitConfig(), "siren")
    assert cfg.network.type == "siren" and cfg.encoding == {"type": "none"} and cfg.train.lr == 1e-4
    field = build_field(cfg, 2, 3)
    assert field(torch.rand(5, 2)).shape == (5, 3)
