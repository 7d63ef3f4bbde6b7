"""A training step run pass by pass (``posenc.bound_step`` with ``chunk``) is the one-pass step: same
loss, per-sample losses, parameter gradients and policy update, for every registered encoding (bare,
under the global policy and under SAPE's spatial one), generated from the registry. A step no larger
than one pass runs exactly the one-pass code (bit for bit), and the trainer records how many passes it took.
"""

from __future__ import annotations

import pytest
import torch

from posenc import Field, FitConfig, MLP, TrainConfig, build_policy
from posenc.encodings import build_encoding, encoding_names
from posenc.progressive import SpatialProgression
from posenc.train import bound_step, make_step, step_passes

POLICIES = [None, {"type": "global"}, {"type": "spatial", "mask_grid": 4}]


def cases():
    for name in encoding_names():
        for policy in POLICIES:
            if policy is not None and not build_encoding({"type": name}, 2).bands:
                continue  # nothing to open progressively (grids): the policies refuse it
            yield pytest.param(name, policy, id=f"{name}-{policy['type'] if policy else 'bare'}")


def field_of(name: str, policy: dict | None, seed: int = 0) -> Field:
    torch.manual_seed(seed)
    enc = build_encoding({"type": name}, 2).double()
    with torch.no_grad():  # learned parameters away from their (often zero) start, so gradients are not trivial
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    if policy is not None:
        enc = build_policy(dict(policy), enc, iters=20).double()
    return Field(enc, MLP(enc.out_dim, 3, width=16, depth=2, output="sigmoid")).double()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).square().mean(-1)


def run(field: Field, x: torch.Tensor, y: torch.Tensor, chunk: int, steps: int = 3):
    """A few steps of plain SGD (so a wrong gradient shows in the next step too)."""
    step = bound_step(field, x, y, mse, chunk)
    out = []
    for _ in range(steps):
        field.zero_grad(set_to_none=True)
        loss, per = step()
        grads = {k: p.grad.clone() for k, p in field.named_parameters() if p.grad is not None}
        with torch.no_grad():
            for p in field.parameters():
                if p.grad is not None:
                    p.sub_(0.5 * p.grad)
        if field.policy is not None:
            field.policy.update(per)
        out.append((loss, per, grads))
    return out


@pytest.mark.parametrize("name,policy", list(cases()))
def test_passes_give_the_one_pass_step(name, policy):
    x = torch.rand(53, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.rand(53, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    one, parts = field_of(name, policy), field_of(name, policy)
    a, b = run(one, x, y, chunk=0), run(parts, x, y, chunk=10)  # 6 passes, the last of 3 points
    for (la, pa, ga), (lb, pb, gb) in zip(a, b):
        torch.testing.assert_close(lb, la, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(pb, pa, rtol=1e-10, atol=1e-12)
        assert ga.keys() == gb.keys() and ga
        for k in ga:
            torch.testing.assert_close(gb[k], ga[k], rtol=1e-9, atol=1e-12, msg=k)
    if isinstance(one.policy, SpatialProgression):  # the cell feedback saw every point, once
        torch.testing.assert_close(parts.policy.loss_sum, one.policy.loss_sum, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(parts.policy.level, one.policy.level)


def test_a_step_within_one_pass_is_the_one_pass_code_bit_for_bit():
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(1))
    y = torch.rand(40, 3, generator=torch.Generator().manual_seed(2))
    a, b = field_of("gaussian", {"type": "spatial", "mask_grid": 4}), field_of("gaussian", {"type": "spatial", "mask_grid": 4})
    for (la, pa, ga), (lb, pb, gb) in zip(run(a.float(), x, y, chunk=0), run(b.float(), x, y, chunk=40)):
        assert torch.equal(la, lb) and torch.equal(pa, pb) and all(torch.equal(ga[k], gb[k]) for k in ga)


def test_mini_batches_in_passes_match_one_pass(monkeypatch):
    """A mini-batch larger than a pass (a large image) is split too; the policy then takes the batch's points."""
    from posenc.tasks import make_task
    from posenc.config import ImageConfig

    task = make_task("image", ImageConfig(res=16, protocol="fit"))
    x, y = task.train_data()
    x, y = x.double(), y.double()
    results = []
    for chunk in (0, 25):
        field = field_of("gaussian", {"type": "spatial", "mask_grid": 4})
        gen = torch.Generator().manual_seed(3)
        step = make_step(field, task, x, y, gen, batch=100, chunk=chunk)
        field.zero_grad(set_to_none=True)
        loss, per, points = step()
        field.policy.update(per) if points is None else field.policy.update(per, points)
        results.append((loss, per, {k: p.grad.clone() for k, p in field.named_parameters()}, field.policy.loss_sum.clone(), points))
    (la, pa, ga, sa, none), (lb, pb, gb, sb, pts) = results
    assert none is None and pts is not None and pts.shape == (100, 2)
    torch.testing.assert_close(lb, la)
    torch.testing.assert_close(pb, pa)
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], msg=k)
    torch.testing.assert_close(sb, sa)


def test_which_steps_run_in_passes():
    from posenc.config import ImageConfig, ShapeConfig
    from posenc.tasks import make_task

    image = make_task("image", ImageConfig(res=16))
    assert step_passes(image, 65536, 16384) == 4 and step_passes(image, 65537, 16384) == 5
    assert step_passes(image, 16384, 16384) == 1 and step_passes(image, 65536, 0) == 1
    sdf = make_task("sdf", ShapeConfig(eikonal=0.1))  # its loss needs input gradients: one pass
    assert step_passes(sdf, 65536, 16384) == 1


def test_the_trainer_records_its_passes_and_resolves_the_default(tmp_path):
    from posenc.config import ImageConfig, resolve_config
    from posenc.train import Trainer

    assert resolve_config(FitConfig(train=TrainConfig(device="cpu"))).train.step_chunk == 16384
    assert resolve_config(FitConfig(train=TrainConfig(device="cuda"))).train.step_chunk == 0
    cfg = FitConfig(task="image", data=ImageConfig(res=32, protocol="fit"), train=TrainConfig(iters=2, step_chunk=300, threads=1))
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    assert trainer.batching["chunk"] == 300 and trainer.batching["passes"] == 4  # 1024 pixels


def test_a_fit_in_passes_ends_where_the_one_pass_fit_does(tmp_path):
    """End to end (SAPE on a 32 px photo, full batch, 30 steps): the same figures to rounding."""
    from posenc import apply_method, fit
    from posenc.config import ImageConfig

    metrics = []
    for chunk in (0, 300):
        cfg = apply_method(FitConfig(task="image", data=ImageConfig(res=32, protocol="fit"),
                                     train=TrainConfig(iters=30, step_chunk=chunk, threads=1)), "sape+gaussian:features=16")
        metrics.append(fit(cfg, tmp_path / f"c{chunk}", progress=False))
    one, parts = metrics
    assert parts["batching"]["passes"] == 4 and one["batching"]["passes"] == 1
    assert abs(parts["psnr"] - one["psnr"]) < 1e-3, (parts["psnr"], one["psnr"])


def test_predict_evaluates_in_cpu_sized_chunks_with_the_same_values(monkeypatch):
    import posenc.config

    field = field_of("gaussian", None).float()
    x = torch.rand(5000, 2, generator=torch.Generator().manual_seed(4))
    seen = []
    forward = Field.forward
    monkeypatch.setattr(posenc.config, "CPU_STEP_CHUNK", 1024)
    monkeypatch.setattr(Field, "forward", lambda self, p: seen.append(p.shape[0]) or forward(self, p))
    out = field.predict(x)
    assert seen == [1024] * 4 + [904]
    torch.testing.assert_close(out, forward(field, x).detach())
