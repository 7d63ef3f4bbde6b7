"""Loading inputs and writing outputs atomically (images, JSON, safetensors). No pickle anywhere."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from .errors import PosencError

if TYPE_CHECKING:
    from PIL import Image


def _atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    _atomic(path, lambda p: p.write_text(text))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (a crash loses at most the line being written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping a torn last line left by an interrupted writer."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def check_output_file(path: str | Path, suffixes: tuple[str, ...], what: str = "--out") -> Path:
    """Refuse an output path that is a folder, lies under a file, is not writable or has an extension
    the writer cannot produce, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise PosencError(f"{what} {path} is a folder; give a file name ending in {' or '.join(suffixes)}")
    if path.suffix.lower() not in suffixes:
        raise PosencError(f"{what} {path}: unsupported file extension {path.suffix or '(none)'!r}; use {' or '.join(suffixes)}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PosencError(f"{what} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PosencError(f"{what} {path}: {parent} is not writable")
            break
    return path


def save_image(path: str | Path, array: np.ndarray) -> None:
    """Save a float image in [0, 1] (H, W[, C]) or a uint8 image as PNG, atomically."""
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    _atomic(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))


def save_gif(path: str | Path, frames: list[np.ndarray], duration_ms: int = 120) -> None:
    from PIL import Image

    ims = [Image.fromarray((np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8) if f.dtype != np.uint8 else f) for f in frames]
    if not ims:
        raise PosencError("no frames to write")
    _atomic(path, lambda p: ims[0].save(p, format="GIF", save_all=True, append_images=ims[1:], duration=duration_ms, loop=0))


def _pil_to_rgb_float(img: "Image.Image") -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) float32 in [0, 1]; alpha composited on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.repeat((np.clip(arr, 0, peak) / peak).astype(np.float32)[..., None], 3, axis=2)
    if mode == "F":
        arr = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


# Pillow refuses pictures above this many pixels outright (a decompression bomb, or a size no fit here
# could hold): 2^28 = 268M pixels, 22x a 12 MP photo
MAX_IMAGE_PIXELS = 1 << 28
CROPS = ("none", "square")


def load_image(path: str | Path, res: int | str | None = None, crop: str = "none") -> np.ndarray:
    """Load an image as RGB floats in [0, 1], ``(H, W, 3)``, after the PROTOCOLS.md steps.

    Grayscale becomes 3 equal channels; alpha is composited on white; with ``crop="square"`` the
    image is centre-cropped to a square (the papers' protocol); then it is resized with Pillow's
    LANCZOS filter so that its longest side is ``res`` pixels, keeping the aspect ratio (on 8-bit
    data directly, on float data per channel for 16-bit inputs). ``res`` None or ``"native"`` keeps
    the file's size.
    """
    return prepare_image(open_image(path), res, crop)


def open_image(path: str | Path, what: str = "image") -> "Image.Image":
    """A picture file, read whole, with every way it can be unreadable a one-line :class:`PosencError`
    (missing, a folder, empty, not an image, above MAX_IMAGE_PIXELS or a decompression bomb, corrupt)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise PosencError(f"{what} not found: {path}")
    if path.is_dir():
        raise PosencError(f"expected an image file, got a folder: {path}")
    if path.stat().st_size == 0:
        raise PosencError(f"image file is empty (0 bytes): {path}")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise PosencError(f"{path} is {width}x{height} ({width * height / 1e6:.0f} MP); posenc reads images of "
                                  f"at most {MAX_IMAGE_PIXELS / 1e6:.0f} MP")
            im.load()
            img = im.copy()
    except UnidentifiedImageError:
        raise PosencError(f"not an image file Pillow can read: {path}") from None
    except Image.DecompressionBombError as exc:
        raise PosencError(f"{path} is too large to read safely: {exc}".splitlines()[0]) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PosencError(f"cannot read image {path} (corrupt or truncated?): {exc}") from None
    if img.width == 0 or img.height == 0:
        raise PosencError(f"image has zero size: {path}")
    return img


def fitted_size(width: int, height: int, res: int | str | None) -> tuple[int, int]:
    """``(width, height)`` after resizing the longest side to ``res`` (aspect kept; None / "native": as is)."""
    if res is None or res == "native":
        return width, height
    if isinstance(res, bool) or not isinstance(res, int) or res < 2:
        raise PosencError(f"res must be 'native' or a longest side of at least 2 pixels, got {res!r}")
    scale = res / max(width, height)
    size = max(1, round(width * scale)), max(1, round(height * scale))
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise PosencError(f"res {res} would make a {size[0]}x{size[1]} image ({size[0] * size[1] / 1e6:.0f} MP), above the "
                          f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP posenc fits; lower --res")
    return size


def prepare_image(img: "Image.Image", res: int | str | None, crop: str = "none") -> np.ndarray:
    """Optionally centre-crop to a square, then LANCZOS-resize to longest side ``res`` (PROTOCOLS.md):
    -> (H, W, 3) float32 in [0, 1]."""
    from PIL import Image

    if crop not in CROPS:
        raise PosencError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    if crop == "square":
        side = min(img.width, img.height)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
    size = fitted_size(img.width, img.height, res)
    if size == img.size:
        return _pil_to_rgb_float(img)
    if img.mode in ("RGB", "L") or (img.mode == "P" and "transparency" not in img.info):
        return np.asarray(img.convert("RGB").resize(size, Image.LANCZOS), dtype=np.float32) / 255.0
    rgb = _pil_to_rgb_float(img)
    chans = [np.asarray(Image.fromarray(rgb[..., c], mode="F").resize(size, Image.LANCZOS)) for c in range(3)]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic(path, lambda p: save_file(tensors, str(p), metadata=metadata))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise PosencError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            return {k: fh.get_tensor(k) for k in fh.keys()}, meta
    except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's input
        raise PosencError(f"cannot read model file {path}: {exc}".splitlines()[0]) from None


MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl")


def load_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh as float64 vertices ``(V, 3)`` and int64 faces ``(F, 3)`` (trimesh; scenes merged)."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise PosencError(f"mesh not found: {path}")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise PosencError(f"mesh must be one of {', '.join(MESH_SUFFIXES)}, got {path.name}")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # noqa: BLE001 - whatever the parser says, the file is the problem
        raise PosencError(f"cannot read mesh {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    verts = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    if faces.ndim != 2 or faces.shape[0] == 0 or faces.shape[1] != 3 or verts.shape[0] < 3:
        raise PosencError(f"{path} has no triangles (empty or not a triangle mesh)")
    if not np.isfinite(verts).all():
        raise PosencError(f"{path} has non-finite vertex coordinates")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise PosencError(f"{path} has faces that refer to missing vertices")
    extent = verts.max(0) - verts.min(0)
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    scale = float(extent.max())
    if scale <= 0 or area <= 1e-12 * scale**2 or extent.min() <= 1e-9 * scale:
        raise PosencError(f"{path} is degenerate: its triangles have no area or it is flat (extent {np.round(extent, 6).tolist()}); "
                          "a shape needs a surface that encloses a volume")
    return verts, faces


def save_mesh(path: str | Path, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write a mesh atomically (format from the suffix: .ply, .obj, .off, .stl)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    suffix = Path(path).suffix.lower().lstrip(".") or "ply"
    _atomic(path, lambda p: mesh.export(p, file_type=suffix))


# -- fields: weights and the config that rebuilds them, in one safetensors file ----------------------
FIELD_FORMAT = "posenc-field-1"


def module_config(module: torch.nn.Module) -> dict[str, Any]:
    """What rebuilds a savable module: ``{"field": ...}`` for a :class:`~posenc.Field`, ``{"encoding": ...}``
    for an encoding, ``{"encoding": ..., "progressive": ...}`` for a progressive policy over one."""
    from .encodings import Encoding
    from .progressive import Progression

    if isinstance(module, Encoding):
        return {"encoding": module.config}
    if isinstance(module, Progression):
        if not isinstance(module.encoding, Encoding):
            raise PosencError(f"save: the policy wraps a {type(module.encoding).__name__}, not a posenc encoding, "
                              "so it cannot be rebuilt from a config")
        return {"encoding": module.encoding.config, "progressive": module.config}
    if hasattr(module, "base_encoding") and hasattr(module, "config"):
        return {"field": module.config}
    raise PosencError(f"save takes a posenc Field, encoding or progressive policy, got {type(module).__name__}")


def module_dtype(module: torch.nn.Module) -> str:
    """The dtype of the module's first floating tensor ("float32" when it has none)."""
    for t in (*module.parameters(), *module.buffers()):
        if t.is_floating_point():
            return str(t.dtype).removeprefix("torch.")
    return "float32"


def save(field: torch.nn.Module, path: str | Path, run_config: dict[str, Any] | None = None,
         extra: dict[str, torch.Tensor] | None = None, task_info: dict[str, Any] | None = None) -> None:
    """Write a field's (or a bare encoding's, or a policy's) weights and buffers with the config that
    rebuilds it and its dtype, atomically; :func:`load` gives back the same kind of module.

    The metadata is one sorted JSON string, so the same field gives the same bytes. ``run_config``
    (a run's ``FitConfig`` dict) and ``extra`` tensors (optimiser state in checkpoints) ride along.
    """
    meta = {"format": FIELD_FORMAT, **module_config(field), "dtype": module_dtype(field)}
    if run_config is not None:
        meta["run"] = run_config
    if task_info:
        meta["task"] = task_info
    tensors = {f"field.{k}": v for k, v in field.state_dict().items()}
    tensors.update(extra or {})
    save_tensors(path, tensors, {"posenc": json.dumps(meta, sort_keys=True)})


def read_model(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the posenc metadata of a file written by :func:`save`."""
    tensors, meta = load_tensors(path)
    try:
        info = json.loads(meta.get("posenc", "null"))
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, dict) or info.get("format") != FIELD_FORMAT or not (
            isinstance(info.get("field"), dict) or isinstance(info.get("encoding"), dict)):
        raise PosencError(f"{path} is not a posenc model (no posenc field config in its metadata)")
    return tensors, info


def load_state(field: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load the ``field.*`` tensors into ``field``; a missing, extra or misshapen tensor is a PosencError."""
    state = {k[len("field."):]: v for k, v in tensors.items() if k.startswith("field.")}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise PosencError(f"model file {path} has non-finite values in {bad[0]}: it cannot render or evaluate")
    try:
        field.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise PosencError(f"model file {path} does not match its config: {lines[1] if len(lines) > 1 else lines[0]}") from None


def load(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """Rebuild what :func:`save` wrote (a field, a run folder's ``model.safetensors``, a bare encoding or a
    policy over one) in the dtype it was saved in: no run config needed."""
    return load_with_metadata(path, device)[0]


def load_with_metadata(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """:func:`load`, and the file's posenc metadata (``run``: the run config, ``task``: what the task recorded)."""
    from .encodings import build_encoding
    from .networks import build_field
    from .progressive import build_policy
    from .runtime import resolve_device

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    tensors, info = read_model(path)
    if "field" in info:
        module = build_field(info["field"])
    else:
        module = build_policy(info.get("progressive"), build_encoding(info["encoding"]))
    dtype = getattr(torch, str(info.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise PosencError(f"model file {path} names an unknown dtype {info.get('dtype')!r}")
    module = module.to(dtype)
    load_state(module, tensors, path)
    return module.to(resolve_device(device)).eval(), info
