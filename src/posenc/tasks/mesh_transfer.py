"""SAPE's 3-D mesh transfer (Hertz et al. 2021, Sec. 5.1, Fig. 5, Table 2): move the vertices of a
source mesh onto a target shape, keeping the source's tessellation.

1. **Initialisation** (the paper: "an initial affine transformation [from] marked correspondence
   points, followed by a biharmonic deformation [Jacobson et al. 2011]"): the least-squares affine map
   of the source landmarks onto the target landmarks, then libigl's k-harmonic deformation (k = 2)
   with the landmarks as handles, so every landmark lands exactly on its target.
2. **The field** maps a source vertex (normalised to [0, 1]^3) to a **displacement** added to its
   initialised position. The network's output layer starts at zero, so training starts from the
   initialisation exactly.
3. **Loss** = symmetric Chamfer (squared distances) between ``points`` area-weighted samples of the
   moved surface (differentiable in the vertices: random faces by area, random barycentric weights)
   and as many points of the target surface, plus ``conformal`` x the discrete conformal energy of
   the map from the source, ``sum_f A_f (|J_f|_F^2 / 2 - det J_f) / sum_f A_f`` (Levy et al.'s LSCM
   energy; 0 exactly for a similarity, growing under shear). Samples are drawn from the trainer's
   checkpointed generator, so a resumed run is exact.
4. **SAPE feedback** is per vertex: the distance of each moved vertex to the nearest target point
   (in the target's normalisation, longest side 1.8), fed to eq. 7 on a 3-D mask grid over the source;
   epsilon 1e-2 (the paper's for geometry): a region keeps opening bands while its vertices are more
   than about 0.5% of the shape's size away from the target.

Metrics (PROTOCOLS.md mesh-transfer): Chamfer-L1 and Hausdorff between 100k area-weighted samples of
the result and of the target (both in the target's normalisation: bounding box centred, longest side
1.8); the Dirichlet energy of the piecewise-linear map, ``sum_f A_f |J_f|_F^2 / 2`` divided by the
result's area ``sum_f A_f det J_f``, which is 1 for any conformal map (a similarity included) and
larger otherwise; the share of folded triangles (an edge whose two faces agreed in the source and
turn back to back in the result) and of degenerate ones; and, when the target is the source's
tessellation (same faces), the mean vertex error against the known correspondence.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import MeshTransferConfig
from ..errors import PosencError
from ..io import load_mesh, save_image, save_mesh
from ..metrics import chamfer_hausdorff
from ..viz import heatmap, labelled_strip, render_surface
from .base import Task
from .shapes import normalise_mesh, sample_surface

MIN_LANDMARKS = 4
DISTANCE_CMAP = "YlOrRd"  # distance to the target, 0 (pale) to 0.05 (dark red) in the target's normalisation
MAX_SCALE_RATIO = 1000.0  # meshes whose sizes differ more than this were almost surely made in different units


# -- initialisation -----------------------------------------------------------------------------------
def fit_affine(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares affine map ``x -> x @ A.T + t`` taking points ``src`` to ``dst`` (both ``(K, 3)``,
    K >= 4 and not coplanar)."""
    if len(src) < MIN_LANDMARKS:
        raise PosencError(f"an affine map needs at least {MIN_LANDMARKS} landmarks, got {len(src)}")
    centred = src - src.mean(0)
    sv = np.linalg.svd(centred, compute_uv=False)
    if sv[-1] <= 1e-6 * max(sv[0], 1e-12):
        raise PosencError("the source landmarks are coplanar (or collinear): they do not fix an affine map")
    homog = np.concatenate([src, np.ones((len(src), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(homog, dst, rcond=None)
    return sol[:3].T, sol[3]


def biharmonic_deform(verts: np.ndarray, faces: np.ndarray, handles: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``verts`` deformed so that vertex ``handles[i]`` sits at ``positions[i]``: the displacement is
    the biharmonic function with those boundary values (libigl ``harmonic``, k = 2)."""
    import igl

    disp = igl.harmonic(np.ascontiguousarray(verts, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64),
                        np.ascontiguousarray(handles, dtype=np.int64),
                        np.ascontiguousarray(positions - verts[handles], dtype=np.float64), 2)
    return verts + disp


def auto_landmarks(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Landmark pairs without hand-picked points: align the principal axes of both vertex sets (the
    proper rotation among the sign choices whose mapped source lies closest to the target, with each
    axis scaled to the target's spread), then pair the source's extremal vertex along each axis (6)
    with the target vertex nearest to where the alignment puts it: -> ``(6, 2)`` index pairs."""
    from scipy.spatial import cKDTree

    def axes(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = v.mean(0)
        vals, vecs = np.linalg.eigh(np.cov((v - c).T))
        return c, np.sqrt(np.maximum(vals, 1e-18)), vecs

    cs, ss, es = axes(src)
    ct, st, et = axes(tgt)
    tree = cKDTree(tgt)
    probe = src[np.linspace(0, len(src) - 1, min(len(src), 2000)).astype(int)]
    best = None
    for signs in ([1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]):
        m = et @ np.diag(np.array(signs) * st / ss) @ es.T
        if np.linalg.det(et) * np.linalg.det(es) < 0:
            m = et @ np.diag(np.array(signs) * [1, 1, -1] * st / ss) @ es.T
        mapped = (probe - cs) @ m.T + ct
        score = tree.query(mapped)[0].mean()
        if best is None or score < best[0]:
            best = (score, m)
    m = best[1]
    proj = (src - cs) @ es
    extremal = np.unique(np.concatenate([proj.argmin(0), proj.argmax(0)]))
    mapped = (src[extremal] - cs) @ m.T + ct
    return np.stack([extremal, tree.query(mapped)[1]], axis=1).astype(np.int64)


def read_landmarks(path: str | Path, n_src: int, n_tgt: int) -> np.ndarray:
    """A CSV of ``source_vertex,target_vertex`` index pairs (0-based; a header line is allowed): -> ``(K, 2)``."""
    path = Path(path)
    if not path.is_file():
        raise PosencError(f"landmark file not found: {path}")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.reader(fh)):
                cells = [c.strip() for c in row if c.strip()]
                if not cells or cells[0].startswith("#"):
                    continue
                if len(cells) != 2:
                    raise PosencError(f"{path}:{i + 1}: a landmark line is 'source_vertex,target_vertex', got {row}")
                try:
                    rows.append((int(cells[0]), int(cells[1])))
                except ValueError:
                    if rows or i > 0:
                        raise PosencError(f"{path}:{i + 1}: landmark indices must be integers, got {row}") from None
    except UnicodeDecodeError:
        raise PosencError(f"{path} is not a text CSV of landmark pairs") from None
    pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
    if len(pairs) < MIN_LANDMARKS:
        raise PosencError(f"{path}: {len(pairs)} landmark pair(s); at least {MIN_LANDMARKS} (not coplanar) are needed")
    bad_s, bad_t = (pairs[:, 0] < 0) | (pairs[:, 0] >= n_src), (pairs[:, 1] < 0) | (pairs[:, 1] >= n_tgt)
    if bad_s.any() or bad_t.any():
        swapped = not (((pairs[:, 1] < 0) | (pairs[:, 1] >= n_src)).any() or ((pairs[:, 0] < 0) | (pairs[:, 0] >= n_tgt)).any())
        hint = "; the columns look swapped (source first, then target)" if swapped else ""
        which = f"source index {pairs[bad_s, 0][0]} (source has {n_src} vertices)" if bad_s.any() else \
            f"target index {pairs[bad_t, 1][0]} (target has {n_tgt} vertices)"
        raise PosencError(f"{path}: {which} is out of range{hint}")
    if len(np.unique(pairs[:, 0])) != len(pairs):
        raise PosencError(f"{path}: a source vertex is given twice; each landmark needs its own vertex")
    return pairs


def weld(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge vertices at the same position (UV or normal seams duplicate them): the welded vertices,
    faces, and each original vertex's index among the welded ones ``(V,)``."""
    welded, first, inverse = np.unique(verts, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep the file's vertex order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return welded[order], rank[inverse.reshape(-1)][faces], rank[inverse.reshape(-1)]


def pieces(verts: np.ndarray, faces: np.ndarray) -> int:
    import trimesh

    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    return len(trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(faces)), min_len=1))


def check_source(verts: np.ndarray, faces: np.ndarray, name: str) -> None:
    """A source must be one edge-manifold piece: its tessellation is what is transferred."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    edges = np.sort(mesh.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    if (counts > 2).any():
        raise PosencError(f"the source {name} is not manifold: {int((counts > 2).sum())} edge(s) have more than two "
                          "triangles; repair it (e.g. MeshLab) before transferring its tessellation")
    parts = pieces(verts, faces)
    if parts > 1:
        raise PosencError(f"the source {name} has {parts} separate pieces; mesh transfer moves one connected "
                          "surface (split it, or weld its vertices)")


# -- differentiable pieces ------------------------------------------------------------------------
def source_frames(verts: np.ndarray, faces: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per source triangle the inverse of its edge matrix in a local orthonormal frame ``(F, 2, 2)``
    and its area ``(F,)``: the Jacobian of a map is then ``[d1 d2] @ S_inv`` (3 x 2)."""
    v = verts[faces]
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    n = np.cross(e1, e2)
    area = 0.5 * np.linalg.norm(n, axis=1)
    u = e1 / np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-30)
    w = np.cross(n, u)
    w /= np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-30)
    s = np.zeros((len(faces), 2, 2))
    s[:, 0, 0], s[:, 0, 1] = (e1 * u).sum(1), (e2 * u).sum(1)
    s[:, 1, 1] = (e2 * w).sum(1)
    ok = area > 1e-14 * max(area.max(), 1e-30)
    s_inv = np.zeros_like(s)
    s_inv[ok] = np.linalg.inv(s[ok])
    return torch.from_numpy(s_inv), torch.from_numpy(np.where(ok, area, 0.0))


def jacobian_terms(moved: torch.Tensor, faces: torch.Tensor, s_inv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``|J_f|_F^2`` and ``det J_f`` (``sqrt det(J^T J)``, the area ratio) of the map on every triangle."""
    v = moved[faces]
    d = torch.stack([v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]], dim=-1)  # (F, 3, 2)
    j = d @ s_inv.to(d.dtype)
    g = j.transpose(1, 2) @ j
    frob = g[:, 0, 0] + g[:, 1, 1]
    det = (g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0]).clamp_min(0.0)
    return frob, torch.sqrt(det + 1e-20)


def conformal_energy(moved: torch.Tensor, faces: torch.Tensor, s_inv: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """``sum_f A_f (|J_f|^2 / 2 - det J_f) / sum_f A_f``: ``(s1 - s2)^2 / 2`` per triangle, 0 for a similarity."""
    frob, det = jacobian_terms(moved, faces, s_inv)
    a = area.to(frob.dtype)
    return ((0.5 * frob - det) * a).sum() / a.sum()


def dirichlet_energy(moved: np.ndarray, faces: np.ndarray, s_inv: torch.Tensor, area: torch.Tensor) -> float:
    """The map's Dirichlet energy over the result's area: 1 for a conformal map, more otherwise."""
    with torch.no_grad():
        frob, det = jacobian_terms(torch.from_numpy(moved).double(), torch.from_numpy(faces), s_inv)
        a = area.double()
        return float((0.5 * frob * a).sum() / (det * a).sum().clamp_min(1e-30))


def sample_moved_surface(verts: torch.Tensor, faces: torch.Tensor, n: int, gen: torch.Generator | None) -> torch.Tensor:
    """``n`` points on the mesh, faces drawn by area, uniform inside each: differentiable in ``verts``."""
    v = verts[faces]
    with torch.no_grad():
        area = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]).norm(dim=-1)
        face = torch.multinomial(area.double().cpu() + 1e-30, n, replacement=True, generator=gen).to(verts.device)
        r = torch.rand(n, 2, generator=gen, dtype=torch.float64).to(verts.device, verts.dtype)
    s = r[:, :1].sqrt()
    w = torch.cat([1 - s, s * (1 - r[:, 1:]), s * r[:, 1:]], dim=1)
    return (v[face] * w[..., None]).sum(1)


def folded_share(src: np.ndarray, moved: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    """Shares of triangles that fold (an edge whose faces' normals agreed in the source, dot > 0, and
    oppose in the result, dot < 0) and that degenerate (area below 1e-8 of the mean)."""
    import trimesh

    def normals(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
        a = np.linalg.norm(n, axis=1)
        return n / np.maximum(a[:, None], 1e-30), a

    adj = trimesh.Trimesh(vertices=src, faces=faces, process=False).face_adjacency
    ns, _ = normals(src)
    nm, am = normals(moved)
    before = (ns[adj[:, 0]] * ns[adj[:, 1]]).sum(1)
    after = (nm[adj[:, 0]] * nm[adj[:, 1]]).sum(1)
    folded = np.zeros(len(faces), dtype=bool)
    bad = adj[(before > 0) & (after < 0)]
    folded[bad.reshape(-1)] = True
    degenerate = am < 1e-8 * max(am.mean(), 1e-30)
    return float(folded.mean()), float(degenerate.mean())


# -- the built-in pair and procedural targets ----------------------------------------------------------
def ripple(verts: np.ndarray, amplitude: float = 0.03, frequency: float = 12.0, bend: float = 0.25) -> np.ndarray:
    """A smooth deformation with fine ripples (a known correspondence): stretch, bend, then ripple
    along the radial direction."""
    v = verts * np.array([1.15, 0.9, 1.0])
    v = v + bend * np.stack([np.zeros(len(v)), v[:, 0] ** 2, np.zeros(len(v))], axis=1)
    r = np.linalg.norm(v, axis=1, keepdims=True)
    return v + amplitude * np.sin(frequency * v[:, :1]) * np.sin(frequency * v[:, 1:2]) * v / np.maximum(r, 1e-9)


def builtin_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An icosphere (2,562 vertices) and a rippled, bent copy of it (same tessellation)."""
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=4, radius=0.8)
    v = np.asarray(s.vertices, dtype=np.float64)
    return v, np.asarray(s.faces, dtype=np.int64), ripple(v)


# -- the task -----------------------------------------------------------------------------------------
class MeshTransferTask(Task):
    """Source vertices in, displacements out; losses, initialisation and evaluation of mesh transfer."""

    in_dim = 3
    out_dim = 3
    coords = None

    def __init__(self, cfg: MeshTransferConfig) -> None:
        self.cfg = cfg
        for key in ("points", "target_points", "eval_points"):
            value = getattr(cfg, key)
            if not 16 <= value <= 10_000_000:
                raise PosencError(f"{key} must be between 16 and 10,000,000, got {value}")
        if not (cfg.conformal >= 0 and np.isfinite(cfg.conformal)):
            raise PosencError(f"conformal must be a finite weight >= 0, got {cfg.conformal}")
        if bool(cfg.path) != bool(cfg.target):
            raise PosencError("mesh transfer needs a source and a target mesh (or neither, for the built-in pair)")
        if cfg.path:
            src_v, src_f = load_mesh(cfg.path)
            tgt_v, tgt_f = load_mesh(cfg.target)
            self.name = f"{Path(cfg.path).stem}-to-{Path(cfg.target).stem}"
        else:
            src_v, src_f, tgt_v = builtin_pair()
            tgt_f = src_f
            self.name = "sphere-to-rippled"
        self.welded_from = None
        if cfg.path and pieces(src_v, src_f) > 1:
            # seams duplicate vertices (spot.obj: 13 pieces); welded by position it may be one surface
            w_v, w_f, self.vertex_map = weld(src_v, src_f)
            if len(w_v) < len(src_v) and pieces(w_v, w_f) == 1:
                self.welded_from = len(src_v)
                src_v, src_f = w_v, w_f
        check_source(src_v, src_f, cfg.path or "(built-in sphere)")
        ratio = np.ptp(src_v, axis=0).max() / max(np.ptp(tgt_v, axis=0).max(), 1e-30)
        if not 1 / MAX_SCALE_RATIO <= ratio <= MAX_SCALE_RATIO:
            raise PosencError(f"the source is {ratio:.3g}x the size of the target: the meshes look like different units "
                              "(e.g. mm and m); rescale one of them")
        if cfg.landmarks == "auto" and not cfg.path:  # the built-in pair: 8 of its known correspondences
            idx = np.linspace(0, len(src_v) - 1, 8).astype(np.int64)
            pairs = np.stack([idx, idx], axis=1)
        elif cfg.landmarks == "auto":
            pairs = auto_landmarks(normalise_mesh(src_v), normalise_mesh(tgt_v))
        else:
            pairs = read_landmarks(cfg.landmarks, self.welded_from or len(src_v), len(tgt_v))
            if self.welded_from:  # the file's source vertex indices, onto the welded vertices
                pairs = np.stack([self.vertex_map[pairs[:, 0]], pairs[:, 1]], axis=1)
                if len(np.unique(pairs[:, 0])) != len(pairs):
                    raise PosencError(f"{cfg.landmarks}: two landmarks sit on one welded vertex of {cfg.path}")
        self.correspondence = len(src_v) == len(tgt_v) and np.array_equal(src_f, tgt_f)
        self.src = normalise_mesh(src_v)
        self.faces = src_f
        self.tgt, self.tgt_faces = normalise_mesh(tgt_v), tgt_f
        self.pairs = pairs
        a, t = fit_affine(self.src[pairs[:, 0]], self.tgt[pairs[:, 1]])
        self.affine = self.src @ a.T + t
        self.init = biharmonic_deform(self.affine, self.faces, pairs[:, 0], self.tgt[pairs[:, 1]])
        self.s_inv, self.area = source_frames(self.src, self.faces)
        self.faces_t = torch.from_numpy(self.faces)
        self.target_pool = torch.from_numpy(sample_surface(self.tgt, self.tgt_faces, cfg.target_points, cfg.sample_seed)[0]).float()
        from scipy.spatial import cKDTree

        self.target_tree = cKDTree(self.target_pool.numpy())
        self.x = torch.from_numpy((self.src + 1.0) / 2.0).float()
        self.coords = self.x  # where policy and encoding maps are drawn: the source vertices
        self.batch_size = 0
        self._frequency: tuple[np.ndarray, float] | None = None

    # -- training ------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        out = {"vertices": int(len(self.src)), "faces": int(len(self.faces)), "landmarks": int(len(self.pairs))}
        if self.welded_from:
            out["welded_from_vertices"] = int(self.welded_from)
        return out

    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised source vertices ``(V, 3)`` and their initialised positions ``(V, 3)``."""
        return self.x, torch.from_numpy(self.init).float()

    def prepare_field(self, field: torch.nn.Module) -> None:
        """Zero the output layer: the displacement starts at 0, the mesh at its initialisation."""
        last = [m for m in field.network.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.zero_()
            if last.bias is not None:
                last.bias.zero_()

    def loss(self, pred: torch.Tensor, target: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moved = target + pred
        gen = self.generator
        pts = sample_moved_surface(moved, self.faces_t.to(moved.device), self.cfg.points, gen)
        _, nn_t = self.target_tree.query(pts.detach().cpu().numpy(), workers=1)
        pool = self.target_pool.to(moved.device)
        forward = (pts - pool[torch.from_numpy(nn_t).to(moved.device)]).square().sum(-1).mean()
        idx = torch.randint(len(pool), (self.cfg.points,), generator=gen).to(moved.device)
        from scipy.spatial import cKDTree

        _, nn_m = cKDTree(pts.detach().cpu().numpy()).query(pool[idx].cpu().numpy(), workers=1)
        backward = (pool[idx] - pts[torch.from_numpy(nn_m).to(moved.device)]).square().sum(-1).mean()
        loss = forward + backward
        if self.cfg.conformal:
            loss = loss + self.cfg.conformal * conformal_energy(moved, self.faces_t.to(moved.device), self.s_inv.to(moved.device),
                                                                self.area.to(moved.device))
        with torch.no_grad():  # SAPE's feedback: each vertex's distance to the target
            d, _ = self.target_tree.query(moved.detach().cpu().numpy(), workers=1)
            per_vertex = torch.from_numpy(d).to(moved.device, moved.dtype)
        return loss, per_vertex

    def loss_per_sample(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise PosencError("mesh transfer's loss is per mesh (Chamfer + conformal), not per sample")

    def progress_metrics(self, loss: float) -> dict[str, float]:
        return {"train_chamfer+conformal": loss}

    # -- evaluation ----------------------------------------------------------------------------------
    def predict(self, field: torch.nn.Module) -> np.ndarray:
        with torch.no_grad():
            return self.init + field.predict(self.x).double().numpy()

    def evaluate(self, pred: np.ndarray) -> dict[str, Any]:
        n = self.cfg.eval_points
        mine = sample_surface(pred, self.faces, n, self.cfg.sample_seed + 1)[0]
        theirs = sample_surface(self.tgt, self.tgt_faces, n, self.cfg.sample_seed + 2)[0]
        chamfer, hausdorff = chamfer_hausdorff(mine, theirs)
        folded, degenerate = folded_share(self.src, pred, self.faces)
        out: dict[str, Any] = {"chamfer_l1": chamfer, "hausdorff": hausdorff,
                               "dirichlet": dirichlet_energy(pred, self.faces, self.s_inv, self.area),
                               "folded": folded, "degenerate": degenerate,
                               "psnr": None, "psnr_heldout": None, "ssim": None}
        out["vertex_error"] = float(np.linalg.norm(pred - self.tgt, axis=1).mean()) if self.correspondence else None
        init_ch, init_h = chamfer_hausdorff(sample_surface(self.init, self.faces, n, self.cfg.sample_seed + 1)[0], theirs)
        out["init_chamfer_l1"], out["init_hausdorff"] = init_ch, init_h
        return out

    def progress_evaluation_keys(self) -> tuple[str, ...]:
        return ("chamfer_l1", "hausdorff")

    def write_outputs(self, pred: np.ndarray, out_dir: Path, metrics: dict[str, Any]) -> None:
        """``mesh.ply`` (the source's faces at the moved vertices) and ``preview.png``: source, target,
        initialisation and result, the last two coloured by distance to the target (pale 0 to dark red 0.05)."""
        from scipy.spatial import cKDTree

        save_mesh(out_dir / "mesh.ply", pred, self.faces)
        tree = cKDTree(sample_surface(self.tgt, self.tgt_faces, 200000, 7)[0])

        def picture(verts: np.ndarray, faces: np.ndarray, coloured: bool) -> np.ndarray:
            pts, nrm = sample_surface(verts, faces, 200000, 3)
            colors = heatmap(tree.query(pts, workers=1)[0][None], 0.05, DISTANCE_CMAP)[0] if coloured else None
            return render_surface(pts, nrm, size=280, colors=colors, shaded=True)

        tiles = [picture(self.src, self.faces, False), picture(self.tgt, self.tgt_faces, False),
                 picture(self.init, self.faces, True), picture(pred, self.faces, True)]
        save_image(out_dir / "target.png", tiles[1])
        save_image(out_dir / "surface.png", tiles[3])
        labels = ["source", "target", f"initialisation: Chamfer-L1 {metrics['init_chamfer_l1']:.4f}",
                  f"result: Chamfer-L1 {metrics['chamfer_l1']:.4f}, Dirichlet {metrics['dirichlet']:.2f}"]
        save_image(out_dir / "preview.png", labelled_strip(tiles, labels))
        if self._frequency is not None:  # SAPE: which regions needed high frequencies
            values, vmax = self._frequency
            maps = [self._vertex_picture(self.src, values, vmax), self._vertex_picture(pred, values, vmax)]
            save_image(out_dir / "heatmap.png", labelled_strip(maps, [f"max unmasked frequency on the source (0-{vmax:.0f})",
                                                                      "... and on the result"]))

    def write_frequency_map(self, values: np.ndarray, vmax: float, out_dir: Path) -> None:
        """SAPE's per-vertex frequency map, drawn on the source and the result by ``write_outputs``."""
        self._frequency = (np.asarray(values, dtype=np.float64).reshape(-1), vmax)

    def _vertex_picture(self, verts: np.ndarray, values: np.ndarray, vmax: float) -> np.ndarray:
        import trimesh

        mesh = trimesh.Trimesh(vertices=verts, faces=self.faces, process=False)
        pts, face = trimesh.sample.sample_surface(mesh, 200000, seed=3)
        colors = heatmap(values[self.faces[face]].mean(1)[None], max(vmax, 1e-12))[0]
        return render_surface(np.asarray(pts), mesh.face_normals[face], size=280, colors=colors, shaded=True)

    def write_frames(self, frames: list[tuple[int, Any, Any]], vmax: float, out_dir: Path) -> None:
        """``frames.gif`` (and ``frame_<iteration>.png``): the moving mesh, coloured by distance to the target."""
        from scipy.spatial import cKDTree

        from ..viz import save_frame_sequence

        tree = cKDTree(sample_surface(self.tgt, self.tgt_faces, 100000, 7)[0])
        pictures = []
        for it, verts, _ in frames:
            pts, nrm = sample_surface(verts, self.faces, 150000, 3)
            colors = heatmap(tree.query(pts, workers=1)[0][None], 0.05, DISTANCE_CMAP)[0]
            pictures.append((it, labelled_strip([render_surface(pts, nrm, size=280, colors=colors, shaded=True)],
                                                [f"iteration {it}"])))
        save_frame_sequence(out_dir, pictures)
