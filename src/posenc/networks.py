"""Coordinate networks: ReLU/leaky-ReLU ``MLP``, ``Siren`` (Sitzmann et al. 2020) and the ``Field`` wrapper."""

from __future__ import annotations

import math

import torch
from torch import nn

from .encodings import Encoding
from .errors import PosencError

ACTIVATIONS = ("relu", "leaky_relu")
OUTPUTS = ("none", "sigmoid", "wide_sigmoid")
WIDE_SIGMOID_MARGIN = 0.1


def output_activation(x: torch.Tensor, output: str) -> torch.Tensor:
    """The network head: ``none`` (linear), ``sigmoid``, or ``wide_sigmoid``.

    ``wide_sigmoid`` is ``(1 + 2 e) sigmoid(z) - e`` with ``e = 0.1``: it spans ``(-e, 1 + e)``, so the
    ends of a [0, 1] colour range (black text on white) are reached at a finite logit where the
    gradient is still alive, while values stay softly bounded as with a plain sigmoid.
    """
    if output == "sigmoid":
        return torch.sigmoid(x)
    if output == "wide_sigmoid":
        return torch.sigmoid(x) * (1.0 + 2.0 * WIDE_SIGMOID_MARGIN) - WIDE_SIGMOID_MARGIN
    return x


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise PosencError(f"unknown output activation {output!r}; valid: {', '.join(OUTPUTS)}")


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units: ``(..., in_dim) -> (..., out_dim)``.

    Hidden activation ReLU or leaky-ReLU (slope 0.01); output ``none`` (linear), ``sigmoid`` or ``wide_sigmoid``
    (see ``output_activation``).
    Layers use PyTorch's default (Kaiming-uniform) initialisation, as the Fourier-feature papers do.
    """

    def __init__(self, in_dim: int, out_dim: int, width: int = 256, depth: int = 3, activation: str = "relu", output: str = "none") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise PosencError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        _check_output(output)
        if width <= 0 or depth < 0:
            raise PosencError(f"network width must be positive and depth non-negative, got width={width} depth={depth}")
        dims = [in_dim] + [width] * depth + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(0.01, inplace=True)
        self.output = output
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        x = self.layers[-1](x)
        return output_activation(x, self.output)


class SineLayer(nn.Module):
    """``sin(omega_0 (W x + b))`` with the initialisation of Sitzmann et al. (2020), Sec. 3.2.

    First layer: ``W ~ U(-1/n, 1/n)``; hidden layers: ``W ~ U(-sqrt(6/n)/omega_0, sqrt(6/n)/omega_0)``
    with ``n`` the fan-in, so pre-activations stay ~ standard-normal through depth.
    """

    def __init__(self, in_dim: int, out_dim: int, omega_0: float, first: bool) -> None:
        super().__init__()
        self.omega_0 = omega_0
        self.linear = nn.Linear(in_dim, out_dim)
        bound = 1.0 / in_dim if first else math.sqrt(6.0 / in_dim) / omega_0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega_0 * self.linear(x))


class Siren(nn.Module):
    """SIREN: ``depth`` sine layers of ``width`` units and a linear head, ``(..., in_dim) -> (..., out_dim)``.

    With ``center_input`` raw coordinates in [0, 1]^d are mapped to [-1, 1]^d first, the domain
    omega_0 = 30 was chosen for. The linear head uses the hidden-layer initialisation bound, as in the
    reference implementation.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        width: int = 256,
        depth: int = 3,
        omega_0: float = 30.0,
        output: str = "none",
        center_input: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1 or width <= 0:
            raise PosencError(f"a SIREN needs depth >= 1 and width > 0, got depth={depth} width={width}")
        if omega_0 <= 0:
            raise PosencError(f"omega0 must be positive, got {omega_0}")
        _check_output(output)
        dims = [in_dim] + [width] * depth
        self.layers = nn.ModuleList(SineLayer(a, b, omega_0, i == 0) for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])))
        self.head = nn.Linear(width, out_dim)
        bound = math.sqrt(6.0 / width) / omega_0
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound)
        self.output = output
        self.center_input = center_input
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.center_input:
            x = 2.0 * x - 1.0
        for layer in self.layers:
            x = layer(x)
        x = self.head(x)
        return output_activation(x, self.output)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class Field(nn.Module):
    """A coordinate field: ``network(mask(x) * encoding(x))``, ``(..., in_dim) -> (..., out_dim)``.

    ``policy`` is a band-mask policy (:mod:`posenc.progressive`; None = all bands open).
    ``forward_encoded`` takes pre-computed (already masked) features, so a fixed training grid is
    encoded once.
    """

    def __init__(self, encoding: Encoding, network: nn.Module, policy: nn.Module | None = None) -> None:
        super().__init__()
        self.encoding = encoding
        self.network = network
        self.policy = policy

    @property
    def in_dim(self) -> int:
        return self.encoding.in_dim

    @property
    def out_dim(self) -> int:
        return self.network.out_dim

    def forward_encoded(self, features: torch.Tensor) -> torch.Tensor:
        return self.network(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoding(x)
        if self.policy is not None and self.policy.active:
            flat = x.reshape(-1, x.shape[-1])
            mask = self.policy.mask(flat)
            features = features * (mask if mask.dim() == 1 else mask.reshape(*x.shape[:-1], -1))
        return self.forward_encoded(features)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """Evaluate in chunks of ``chunk`` points so huge renders fit in memory: ``(N, d) -> (N, out)``."""
        device = next(self.parameters()).device
        outs = [self(x[i : i + chunk].to(device)).cpu() for i in range(0, x.shape[0], chunk)]
        return torch.cat(outs) if outs else torch.empty(0, self.out_dim)

    def parameter_counts(self) -> dict[str, int]:
        enc, net = count_parameters(self.encoding), count_parameters(self.network)
        return {"encoding": enc, "network": net, "total": enc + net}
