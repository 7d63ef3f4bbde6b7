"""Coordinate networks: ReLU/leaky-ReLU ``MLP``, ``Siren`` (Sitzmann et al. 2020) and the ``Field`` wrapper."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

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


MAX_DEPTH = 256
MAX_NETWORK_PARAMS = 1 << 28  # 1 GB of float32 weights (4 GB with gradients and Adam's moments)


def check_network_size(in_dim: int, out_dim: int, width: int, depth: int) -> None:
    """Refuse a network too large to train here before any weight is allocated."""
    if depth > MAX_DEPTH:
        raise PosencError(f"network depth must be at most {MAX_DEPTH}, got {depth}")
    params = (in_dim + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * out_dim if depth else (in_dim + 1) * out_dim
    if params > MAX_NETWORK_PARAMS:
        raise PosencError(f"a network of width {width} and depth {depth} on {in_dim} inputs has {params:,} weights, above the "
                          f"{MAX_NETWORK_PARAMS:,} posenc trains; lower width, depth or the encoding's size")


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
        check_network_size(in_dim, out_dim, width, depth)
        dims = [in_dim] + [width] * depth + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(0.01, inplace=True)
        self.output = output
        self.in_dim, self.out_dim = in_dim, out_dim
        self.config = {"type": "mlp", "in_dim": in_dim, "out_dim": out_dim, "width": width, "depth": depth,
                       "activation": activation, "output": output}

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
        check_network_size(in_dim, out_dim, width, depth)
        if omega_0 <= 0:
            raise PosencError(f"omega_0 (the setting network.omega0, --omega0) must be positive, got {omega_0}")
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
        self.config = {"type": "siren", "in_dim": in_dim, "out_dim": out_dim, "width": width, "depth": depth,
                       "omega_0": omega_0, "output": output, "center_input": center_input}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.center_input:
            x = 2.0 * x - 1.0
        for layer in self.layers:
            x = layer(x)
        x = self.head(x)
        return output_activation(x, self.output)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


NETWORKS: dict[str, type[nn.Module]] = {"mlp": MLP, "siren": Siren}


def build_network(config: dict[str, Any]) -> nn.Module:
    """``{"type": "mlp", "in_dim": 512, "out_dim": 3, "width": 256, ...}`` -> the network."""
    from .validation import coerce, signature_hints

    config = dict(config)
    name = config.pop("type", "mlp")
    if name not in NETWORKS:
        raise PosencError(f"unknown network {name!r}; valid: {', '.join(NETWORKS)}")
    hints = signature_hints(NETWORKS[name].__init__)
    unknown = sorted(set(config) - set(hints))
    if unknown:
        raise PosencError(f"network {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(hints)}")
    return NETWORKS[name](**{k: coerce(k, v, hints[k][0], "network: ") for k, v in config.items()})


class Field(nn.Module):
    """A coordinate field ``network(encoding(x))``: ``(..., in_dim) -> (..., out_dim)``.

    ``encoding`` is an encoding, or a progressive policy wrapping one (:mod:`posenc.progressive`), or
    any module with ``in_dim`` and ``out_dim``. ``field.bind(x)`` is the fast path on fixed points
    (a training set): it returns a function of no arguments that evaluates the field at ``x`` with
    everything that does not depend on parameters computed once; ``field.bind_chunks(x, size)`` binds
    it pass by pass. The CLI's trainer, ``posenc bench perf`` and a user's loop all train through
    them, by way of :func:`posenc.train.bound_step`.
    """

    def __init__(self, encoding: nn.Module, network: nn.Module) -> None:
        super().__init__()
        if getattr(network, "in_dim", encoding.out_dim) != encoding.out_dim:
            raise PosencError(f"the network takes {network.in_dim} inputs but the encoding gives {encoding.out_dim}")
        self.encoding = encoding
        self.network = network

    @property
    def in_dim(self) -> int:
        return self.encoding.in_dim

    @property
    def out_dim(self) -> int:
        return self.network.out_dim

    @property
    def policy(self) -> nn.Module | None:
        """The progressive policy (the encoding itself when it is one), else None."""
        from .progressive import Progression

        return self.encoding if isinstance(self.encoding, Progression) else None

    @property
    def base_encoding(self) -> nn.Module:
        """The encoding under the policy (or the encoding, without one)."""
        policy = self.policy
        return policy.encoding if policy is not None else self.encoding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.encoding(x))

    def bind(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Fast path on the fixed points ``x`` ``(..., in_dim)``: ``() -> (..., out_dim)``."""
        encode = self.encoding.bind(x) if hasattr(self.encoding, "bind") else (lambda: self.encoding(x))
        return lambda: self.network(encode())

    def bind_chunks(self, x: torch.Tensor, size: int) -> list[tuple[slice, Callable[[], torch.Tensor]]]:
        """:meth:`bind` pass by pass: consecutive slices of ``size`` of the flat points ``x`` ``(N, in_dim)``,
        ``[(rows, () -> (rows, out_dim))]`` (what :func:`posenc.bound_step` accumulates gradients over)."""
        flat = x.reshape(-1, self.in_dim)
        if hasattr(self.encoding, "bind_chunks"):
            parts = self.encoding.bind_chunks(flat, size)
        else:
            size = max(int(size), 1)
            parts = [(sl, lambda part=flat[sl]: self.encoding(part))
                     for sl in (slice(a, min(a + size, flat.shape[0])) for a in range(0, flat.shape[0], size))]
        return [(sl, lambda encode=encode: self.network(encode())) for sl, encode in parts]

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Evaluate in chunks of ``chunk`` points so huge renders fit in memory: ``(N, d) -> (N, out)``.
        Default: 16,384 on a CPU (each activation stays below glibc's mmap threshold, as in
        :func:`posenc.train.bound_step`), 65,536 on a GPU."""
        from .config import CPU_STEP_CHUNK

        device = next(self.parameters(), torch.empty(0)).device
        chunk = chunk or (CPU_STEP_CHUNK if device.type == "cpu" else 65536)
        outs = [self(x[i : i + chunk].to(device)).cpu() for i in range(0, x.shape[0], chunk)]
        return torch.cat(outs) if outs else torch.empty(0, self.out_dim)

    def bytes_per_sample(self) -> int:
        """An estimate of the memory one training sample costs in a step (forward and backward):
        ``2 x (encoding width + the network's layer widths)`` floats. Measured on this CPU, a gaussian
        3x256 fit holds ~7.5 KB per pixel; this says 10.3 KB, so budgets built on it err on the safe side."""
        widths = [m.out_features for m in self.network.modules() if isinstance(m, nn.Linear)]
        return 4 * 2 * (int(self.encoding.out_dim) + sum(widths))

    def parameter_counts(self) -> dict[str, int]:
        enc, net = count_parameters(self.encoding), count_parameters(self.network)
        return {"encoding": enc, "network": net, "total": enc + net}

    @property
    def config(self) -> dict[str, Any]:
        """Everything that rebuilds the field: ``posenc.build_field(field.config)``."""
        policy = self.policy
        base = self.base_encoding
        for part, module in (("encoding", base), ("network", self.network)):
            if not hasattr(module, "config"):
                raise PosencError(f"the field's {part} ({type(module).__name__}) has no .config, so it cannot be saved by config")
        return {"in_dim": self.in_dim, "encoding": base.config, "progressive": policy.config if policy is not None else {"type": "none"},
                "network": self.network.config}


def build_field(config: dict[str, Any]) -> Field:
    """A :class:`Field` from ``{"in_dim", "encoding", "progressive", "network"}`` (``Field.config``)."""
    from .encodings import build_encoding
    from .progressive import build_policy

    for key in ("in_dim", "encoding", "network"):
        if key not in config:
            raise PosencError(f"a field config needs {key!r}")
    encoding = build_policy(config.get("progressive"), build_encoding(config["encoding"], config["in_dim"]))
    return Field(encoding, build_network(config["network"]))


def param_groups(module: nn.Module, lr: float) -> list[dict[str, Any]]:
    """Adam parameter groups for any module: the parameters of every posenc encoding found anywhere
    inside it at that encoding's own learning rate (LPE and grids: 1e-2, the papers' setting; one group
    per rate), everything else at ``lr``. Parameters shared between places are listed once."""
    from .encodings import Encoding

    by_rate: dict[float, list[nn.Parameter]] = {}
    seen: set[int] = set()
    for m in module.modules():
        rate = getattr(m, "lr", None) if isinstance(m, Encoding) else None
        if rate is None:
            continue
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                by_rate.setdefault(float(rate), []).append(p)
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in seen]
    groups = [{"params": rest, "lr": lr}]
    groups += [{"params": params, "lr": rate} for rate, params in by_rate.items()]
    return groups
