"""3-D shapes (PROTOCOLS.md "sdf and occupancy"): fit a signed distance (L1, LPE) or an occupancy (BCE,
occupancy networks / SAPE) from a triangle mesh, evaluate IoU, Chamfer-L1 and Hausdorff.

Geometry lives in [-1, 1]^3 (the mesh's bounding box centred at 0, longest side spanning [-0.9, 0.9]);
the field sees ``x = (p + 1) / 2`` in [0, 1]^3 like every other task, so frequencies keep their meaning.
Inside/outside comes from the generalised winding number (libigl), so meshes with holes (the Stanford
bunny) get a sensible sign. Samples are drawn once and cached as ``.npz`` (no pickle) under the run's
parent folder, keyed by a hash of the mesh file and the sampling settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ShapeConfig
from ..errors import PosencError
from ..io import load_mesh, save_image, save_mesh
from ..metrics import chamfer_hausdorff, iou, normal_error
from ..viz import heatmap, labelled_strip, render_surface
from .base import Task

SAMPLING_VERSION = 1


def normalise_mesh(verts: np.ndarray) -> np.ndarray:
    """Centre the bounding box at 0 and scale its longest side to span [-0.9, 0.9]."""
    lo, hi = verts.min(0), verts.max(0)
    return (verts - (lo + hi) / 2) * (1.8 / max(float((hi - lo).max()), 1e-12))


def builtin_mesh() -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    m = trimesh.creation.torus(major_radius=0.6, minor_radius=0.22, major_sections=96, minor_sections=48)
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64)


def sample_surface(verts: np.ndarray, faces: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-uniform surface points and their face normals."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    pts, face_idx = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts), np.asarray(mesh.face_normals[face_idx])


def winding_inside(verts: np.ndarray, faces: np.ndarray, pts: np.ndarray, chunk: int = 200000) -> np.ndarray:
    """Inside test by generalised winding number (> 0.5), robust to holes."""
    import igl

    out = [igl.winding_number(verts, faces, np.ascontiguousarray(pts[i : i + chunk])) > 0.5 for i in range(0, len(pts), chunk)]
    return np.concatenate(out) if out else np.zeros(0, bool)


def signed_distance(verts: np.ndarray, faces: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance to the surface, negative inside (winding-number sign)."""
    import igl

    d2, _, _ = igl.point_mesh_squared_distance(np.ascontiguousarray(pts), verts, faces)
    return np.where(winding_inside(verts, faces, pts), -1.0, 1.0) * np.sqrt(d2)


def three_way_samples(verts: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator, seed: int) -> np.ndarray:
    """PROTOCOLS.md: 1/3 uniform in [-1, 1]^3, 1/3 surface + N(0, 0.1^2), 1/3 surface + N(0, 0.01^2)."""
    k = n // 3
    surf, _ = sample_surface(verts, faces, 2 * k, seed)
    uniform = rng.uniform(-1, 1, (n - 2 * k, 3))
    wide = surf[:k] + rng.normal(0, 0.1, (k, 3))
    narrow = surf[k:] + rng.normal(0, 0.01, (k, 3))
    return np.clip(np.concatenate([uniform, wide, narrow]), -1.0, 1.0)


@torch.no_grad()
def field_volume(field: torch.nn.Module, res: int, chunk: int | None = None, progress: bool = False) -> np.ndarray:
    """The field on a (res + 1)^3 lattice over [-1, 1]^3, a slab at a time, each in ``field.predict``'s
    chunks (``chunk``; default its own): ``(res+1, res+1, res+1)``."""
    from tqdm import tqdm

    axis = torch.linspace(0.0, 1.0, res + 1)
    # one slab at a time into one preallocated volume: memory is the volume plus one slab's work at any
    # resolution (a list of slabs stacked at the end would interleave with the chunks' temporaries and
    # fragment the heap: 2.9 GB peak instead of 0.7 at 256^3)
    out = np.empty((res + 1, res + 1, res + 1), dtype=np.float32)
    yy, zz = torch.meshgrid(axis, axis, indexing="ij")
    slab = torch.stack([torch.zeros_like(yy), yy, zz], -1).reshape(-1, 3)
    for i in tqdm(range(res + 1), desc=f"marching cubes grid {res + 1}^3", unit="slab", disable=not progress, leave=False):
        slab[:, 0] = float(axis[i])
        out[i] = field.predict(slab, chunk=chunk)[:, 0].reshape(res + 1, res + 1).numpy()
    return out


def extract_mesh(field: torch.nn.Module, res: int, level: float = 0.0, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes (scikit-image) of the field's ``level`` set; vertices in [-1, 1]^3. Empty if no crossing."""
    from skimage.measure import marching_cubes

    vol = field_volume(field, res, progress=progress)
    if not (vol.min() < level < vol.max()):
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces, _, _ = marching_cubes(vol, level=level, spacing=(2.0 / res,) * 3)
    return verts - 1.0, faces.astype(np.int64)


CHUNK = 200000


def chunked(fn: Any, points: np.ndarray, bar: Any, chunk: int = CHUNK) -> np.ndarray:
    """``fn`` applied to ``points`` a chunk at a time, advancing the progress ``bar``."""
    out = []
    for i in range(0, len(points), chunk):
        out.append(fn(np.ascontiguousarray(points[i : i + chunk])))
        bar.update(min(chunk, len(points) - i))
    return np.concatenate(out) if out else np.zeros(0)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_sample_cache(folder: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a sample cache, memory-mapped, if every file matches its recorded SHA-256;
    None when the cache is missing or damaged (then it is removed, to be rebuilt)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        hashes = json.loads(manifest.read_text())
        arrays = {}
        for name, digest in hashes.items():
            path = folder / f"{name}.npy"
            if _sha256(path) != digest:
                raise ValueError(f"{path} does not match its hash")
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        return arrays
    except (OSError, ValueError, json.JSONDecodeError):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        return None


def write_sample_cache(folder: Path, data: dict[str, np.ndarray]) -> None:
    """Write the arrays under a unique temporary name, then rename the folder into place (atomic);
    if another run got there first, its cache is kept."""
    import os
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 folders; a shared cache has the usual permissions
    try:
        hashes = {}
        for name, array in data.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            hashes[name] = _sha256(tmp / f"{name}.npy")
        (tmp / "manifest.json").write_text(json.dumps(hashes, indent=1, sort_keys=True))
        try:
            os.rename(tmp, folder)
        except OSError:  # a concurrent writer finished first (or a damaged copy is in the way)
            if read_sample_cache(folder) is None:
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ShapeTask(Task):
    """Samples, loss and evaluation for one mesh (``kind`` ``sdf`` or ``occupancy``). Knows nothing about encodings."""

    # PROTOCOLS.md: near-surface samples (surface + N(0, 0.1^2)) reach a little past [-1, 1]^3, so past the
    # encodings' [0, 1]^3; they are encoded as they are (grids: their border cells), as the protocol has run
    encoding_outside = "ignore"

    in_dim = 3
    out_dim = 1

    def __init__(self, cfg: ShapeConfig, kind: str) -> None:
        if kind not in ("sdf", "occupancy"):
            raise PosencError(f"unknown shape task {kind!r}")
        for key, top in (("samples", 10**8), ("batch", 10**7), ("eval_points", 10**8), ("mc_res", 1024), ("chamfer_points", 10**7)):
            if not 8 <= getattr(cfg, key) <= top:
                raise PosencError(f"{key} must be between 8 and {top:,}, got {getattr(cfg, key)}")
        if not (cfg.eikonal >= 0 and cfg.eikonal == cfg.eikonal):
            raise PosencError(f"eikonal must be a weight >= 0, got {cfg.eikonal}")
        if cfg.eikonal and kind != "sdf":
            raise PosencError("eikonal is a term of the signed-distance loss: use it with `posenc fit sdf`")
        self.cfg, self.kind = cfg, kind
        self.needs_input_grad = kind == "sdf" and cfg.eikonal > 0
        self.name = Path(cfg.path).stem if cfg.path else "torus"
        verts, faces = load_mesh(cfg.path) if cfg.path else builtin_mesh()
        self.verts, self.faces = normalise_mesh(verts), faces
        self.batch_size = cfg.batch
        self.cache_dir: Path | None = None
        self._cache: dict[str, np.ndarray] | None = None
        self.level = 0.0  # sdf zero set; occupancy logit 0 = probability 1/2
        # mid-plane slice (z = 0) for pictures of spatial policies: 256 x 256 points in [0, 1]^3
        axis = (torch.arange(256, dtype=torch.float32) + 0.5) / 256
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        self.coords = torch.stack([xx, 1 - yy, torch.full_like(xx, 0.5)], -1).reshape(-1, 3)
        self.res = 256

    def set_cache_dir(self, path: Path) -> None:
        self.cache_dir = path

    # -- data -----------------------------------------------------------------------------------
    def _key(self) -> str:
        h = hashlib.sha1()
        h.update(Path(self.cfg.path).read_bytes() if self.cfg.path else b"builtin-torus")
        settings = {k: getattr(self.cfg, k) for k in ("samples", "eval_points", "chamfer_points", "sample_seed")}
        h.update(json.dumps({"v": SAMPLING_VERSION, **settings}, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def data(self) -> dict[str, np.ndarray]:
        """Training and evaluation samples with labels, computed once per mesh and settings.

        They are cached as ``.npy`` files (memory-mapped when read; no pickle) in a folder named by
        the mesh's content hash and the sampling settings, shared by every run beside it. The folder
        is written under a unique temporary name and renamed into place, so concurrent runs never
        see half a cache; each file's SHA-256 is checked on reading, and a corrupt cache is rebuilt.
        """
        if self._cache is not None:
            return self._cache
        folder = self.cache_dir / f"{self.name}-{self._key()}" if self.cache_dir else None
        if folder is not None:
            cached = read_sample_cache(folder)
            if cached is not None:
                self._cache = cached
                return cached
        data = self._sample()
        if folder is not None:
            write_sample_cache(folder, data)
            data = read_sample_cache(folder) or data
        self._cache = data
        return data

    def _sample(self) -> dict[str, np.ndarray]:
        """PROTOCOLS.md three-way training samples and the evaluation points, labelled in chunks."""
        rng = np.random.default_rng(self.cfg.sample_seed)
        seed = self.cfg.sample_seed
        train = three_way_samples(self.verts, self.faces, self.cfg.samples, rng, seed)
        near_surf, _ = sample_surface(self.verts, self.faces, self.cfg.eval_points, seed + 1)
        eval_uniform = rng.uniform(-1, 1, (self.cfg.eval_points, 3))
        eval_near = np.clip(near_surf + rng.normal(0, 0.01, near_surf.shape), -1, 1)
        surface, normals = sample_surface(self.verts, self.faces, self.cfg.chamfer_points, seed + 2)
        bar = self._bar(len(train) + 2 * self.cfg.eval_points, f"{self.name}: labelling samples")
        train_sdf = chunked(lambda p: signed_distance(self.verts, self.faces, p), train, bar)
        uniform_inside = chunked(lambda p: winding_inside(self.verts, self.faces, p), eval_uniform, bar)
        near_inside = chunked(lambda p: winding_inside(self.verts, self.faces, p), eval_near, bar)
        bar.close()
        return {
            "train": train.astype(np.float32),
            "train_sdf": train_sdf.astype(np.float32),
            "eval_uniform": eval_uniform.astype(np.float32),
            "eval_uniform_inside": uniform_inside,
            "eval_near": eval_near.astype(np.float32),
            "eval_near_inside": near_inside,
            "surface": surface.astype(np.float32),
            "surface_normals": normals.astype(np.float32),
        }

    def _bar(self, total: int, desc: str) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="pt", unit_scale=True, disable=not self.progress, leave=False)

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training points in [0, 1]^3 ``(N, 3)`` and targets ``(N, 1)``: signed distance or inside (0/1)."""
        d = self.data()
        x = torch.from_numpy((np.asarray(d["train"]) + 1.0) / 2.0)
        sdf = torch.from_numpy(np.array(d["train_sdf"]))[:, None]
        return x, (sdf if self.kind == "sdf" else (sdf < 0).float())

    def loss_per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """sdf: L1 on signed distance; occupancy: binary cross-entropy on logits. ``(N, 1) -> (N,)``."""
        if self.kind == "sdf":
            return (pred - target).abs()[:, 0]
        return F.binary_cross_entropy_with_logits(pred, target, reduction="none")[:, 0]

    def loss(self, pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The data term, plus for sdf with ``eikonal`` = w > 0 the eikonal term of IGR / SIREN,
        ``w (|grad_p f| - 1)^2`` per point (the gradient in mesh units p = 2x - 1, where a true
        distance has unit slope). The per-point sum is the progressive policy's feedback."""
        per_sample = self.loss_per_sample(pred, target)
        if self.needs_input_grad:
            grad_x = torch.autograd.grad(pred.sum(), x, create_graph=True)[0]
            per_sample = per_sample + self.cfg.eikonal * (0.5 * grad_x.norm(dim=-1) - 1.0).square()
        return per_sample.mean(), per_sample

    def progress_metrics(self, loss: float) -> dict[str, float]:
        name = ("train_l1+eikonal" if self.needs_input_grad else "train_l1") if self.kind == "sdf" else "train_bce"
        return {name: loss}

    def surface_normals(self, field: torch.nn.Module, points: np.ndarray, chunk: int = 32768) -> np.ndarray:
        """The field's unit normals at mesh-space points ``(N, 3)``: the gradient of the SDF (the
        negated gradient of an occupancy logit, which grows inwards), normalised."""
        device = next(field.parameters(), torch.empty(0)).device
        out = []
        for i in range(0, len(points), chunk):
            x = torch.from_numpy((points[i : i + chunk] + 1.0) / 2.0).to(device).requires_grad_(True)
            with torch.enable_grad():
                g = torch.autograd.grad(field(x).sum(), x)[0]
            g = g if self.kind == "sdf" else -g
            out.append(torch.nn.functional.normalize(g, dim=-1).detach().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 3))

    # -- evaluation -----------------------------------------------------------------------------
    def predict(self, field: torch.nn.Module) -> dict[str, np.ndarray]:
        d = self.data()

        bar = self._bar(2 * self.cfg.eval_points, f"{self.name}: evaluating IoU points")
        uniform, near = self._inside(field, d["eval_uniform"], bar), self._inside(field, d["eval_near"], bar)
        bar.close()
        verts, faces = extract_mesh(field, self.cfg.mc_res, self.level, progress=self.progress)
        if self.kind == "occupancy" and len(faces):
            faces = faces[:, ::-1]  # occupancy grows inwards: flip so normals point out
        normals = self.surface_normals(field, d["surface"])
        return {"uniform": uniform, "near": near, "verts": verts, "faces": faces,
                "normals": normals, "field": field}

    def progress_evaluation_keys(self) -> tuple[str, ...]:
        return ("iou_near", "iou_uniform")

    def progress_evaluation(self, field: torch.nn.Module) -> dict[str, float]:
        """IoU on the evaluation points only (no marching cubes, no normals)."""
        d = self.data()
        bar = self._bar(2 * self.cfg.eval_points, f"{self.name}: evaluating IoU points")
        out = {f"iou_{k}": iou(self._inside(field, d[f"eval_{k}"], bar), d[f"eval_{k}_inside"]) for k in ("uniform", "near")}
        bar.close()
        return out

    def _inside(self, field: torch.nn.Module, points: np.ndarray, bar: Any) -> np.ndarray:
        values = chunked(lambda p: field.predict(torch.from_numpy((p + 1.0) / 2.0))[:, 0].numpy(), points, bar, 65536)
        return values < self.level if self.kind == "sdf" else values > self.level

    def evaluate(self, pred: dict[str, np.ndarray]) -> dict[str, Any]:
        d = self.data()
        out: dict[str, Any] = {
            "iou_uniform": iou(pred["uniform"], d["eval_uniform_inside"]),
            "iou_near": iou(pred["near"], d["eval_near_inside"]),
            "psnr": None, "psnr_heldout": None, "ssim": None,
        }
        out["iou"] = 0.5 * (out["iou_uniform"] + out["iou_near"])
        out.update(normal_error(pred["normals"], d["surface_normals"]))
        if len(pred["faces"]):
            recon, _ = sample_surface(pred["verts"], pred["faces"], self.cfg.chamfer_points, self.cfg.sample_seed + 3)
            out["chamfer_l1"], out["hausdorff"] = chamfer_hausdorff(recon, d["surface"])
        else:
            out["chamfer_l1"] = out["hausdorff"] = None
        out["mc_res"] = self.cfg.mc_res
        return out

    def write_outputs(self, pred: dict[str, np.ndarray], out_dir: Path, metrics: dict[str, Any]) -> None:
        """``mesh.ply``; ``target.png`` and ``surface.png`` (ground truth and reconstruction, rendered
        alike; benchmark montages reuse them) and ``preview.png`` (both side by side, labelled)."""
        truth = render_surface(*sample_surface(self.verts, self.faces, 300000, 0))
        save_image(out_dir / "target.png", truth)
        tiles, labels = [truth], [f"ground truth ({self.name})"]
        if len(pred["faces"]):
            save_mesh(out_dir / "mesh.ply", pred["verts"], pred["faces"])
            surface = render_surface(*sample_surface(pred["verts"], pred["faces"], 300000, 0))
            save_image(out_dir / "surface.png", surface)
            tiles.append(surface)
            labels.append(f"{self.kind}: IoU {metrics['iou']:.3f}, Chamfer-L1 {metrics['chamfer_l1']:.4f}")
        else:
            labels[0] += " (reconstruction is empty)"
            save_image(out_dir / "surface.png", np.full_like(truth, 255))
        save_image(out_dir / "preview.png", labelled_strip(tiles, labels))
        self.write_normal_pictures(pred["field"], out_dir, metrics)

    def write_normal_pictures(self, field: torch.nn.Module, out_dir: Path, metrics: dict[str, Any]) -> None:
        """``normals.png``: ground-truth normals, the field's normals (its gradient) at the same surface
        points as normal maps, and the angle between them (0-45 degrees); ``normals_pred.png`` alone."""
        points, truth = sample_surface(self.verts, self.faces, 300000, 5)  # dense enough to close the picture
        normals = self.surface_normals(field, points.astype(np.float32))
        angle = np.degrees(np.arccos(np.clip(np.abs((normals * truth).sum(-1)), 0, 1)))
        gt_img = render_surface(points, truth, color_normals=truth)
        pred_img = render_surface(points, truth, color_normals=normals)
        err_img = render_surface(points, truth, colors=heatmap(angle[None], 45.0)[0])
        save_image(out_dir / "normals_pred.png", pred_img)
        save_image(out_dir / "normals_truth.png", gt_img)
        label = f"field normals: mean error {metrics['normal_angle_deg']:.2f} deg"
        save_image(out_dir / "normals.png", labelled_strip([gt_img, pred_img, err_img],
                                                           ["ground-truth normals", label, "angle error (0-45 deg)"]))

    def write_frequency_map(self, values: np.ndarray, vmax: float, out_dir: Path) -> None:
        """``heatmap.png``: highest unmasked frequency on the z = 0 cross-section (like SAPE Fig. 10)."""
        from ..viz import colorbar_figure

        fig = colorbar_figure(values.reshape(256, 256), vmax, "max unmasked frequency (cycles / unit)", "mask on the z = 0 slice")
        save_image(out_dir / "heatmap.png", fig)
