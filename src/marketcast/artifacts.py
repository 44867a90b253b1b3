"""Run folders and model files: atomic writes, a sha256 manifest, no pickle anywhere.

A run folder is assembled under a hidden staging name and renamed into place only when
complete; ``manifest.json`` (the sha256 of every other file) is written last. Loading checks
the manifest, so a truncated, tampered or half-written run is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from marketcast.errors import ArtifactError

if TYPE_CHECKING:
    import torch

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
FORMAT_VERSION = 1
# Versions recorded with every run: what its numbers may depend on.
PACKAGES = ("marketcast", "torch", "numpy", "pandas", "scikit-learn", "scipy", "statsmodels",
            "arch", "matplotlib", "safetensors", "exchange-calendars")


def write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def write_csv(path: Path, frame: pd.DataFrame, float_format: str = "%.10g") -> None:
    """CSV with ISO dates; ``%.17g`` keeps float64 values exact for files read back."""
    write_text(path, frame.to_csv(index=False, date_format="%Y-%m-%d", float_format=float_format))


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with NaN as null (JSON has no NaN)."""
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
         for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def package_versions(names=PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` ("unknown" when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def environment() -> dict:
    """Where and when a run was made: saved in ``metrics.json`` for the report."""
    return {
        "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": package_versions(),
    }


def save_model(folder: Path, tensors: dict, meta: dict) -> None:
    """``model.safetensors`` (weights) and ``model.json`` (everything else)."""
    write_tensors(folder / WEIGHTS, tensors)
    write_json(folder / MODEL_META, {"format_version": FORMAT_VERSION, **meta})


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write tensors as safetensors (atomically); return the file's sha256."""
    from safetensors.torch import save as to_safetensors  # imports torch: only here

    data = to_safetensors({k: v.contiguous() for k, v in tensors.items()},
                          metadata={"format": "marketcast"})
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load_tensors(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (never pickle), checked against ``sha256`` when given."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError(f"{path} does not match its recorded sha256: it was changed or "
                            "truncated; use an untouched copy")
    from safetensors import SafetensorError
    from safetensors.torch import load as from_safetensors

    try:
        return from_safetensors(data)
    except (SafetensorError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a valid safetensors file ({exc})") from None


def load_model_files(folder: Path) -> tuple[dict, dict]:
    """Verified weights and metadata of a run folder; raises :class:`ArtifactError`."""
    folder = check_run(folder)
    tensors = load_tensors(folder / WEIGHTS)
    meta = read_json(folder / MODEL_META)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{folder / MODEL_META} has an unknown format; retrain the model")
    return tensors, meta


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None


class RunFolder:
    """A run folder being written: files go to a hidden staging folder until :meth:`finish`."""

    def __init__(self, runs_dir: str | Path, name: str | None, label: str = "run"):
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.name = name or default_name(label)
        if (self.runs_dir / self.name).exists() and name is not None:
            raise ArtifactError(
                f"run folder {self.runs_dir / self.name} already exists; pick another --name"
            )
        self.path = Path(tempfile.mkdtemp(dir=self.runs_dir, prefix=f".{self.name}."))

    def finish(self) -> Path:
        """Write the manifest and move the folder into place under a name no one else has."""
        files = sorted(p for p in self.path.iterdir() if p.is_file() and p.name != MANIFEST)
        write_json(self.path / MANIFEST, {
            "format_version": FORMAT_VERSION,
            "files": {p.name: _sha256(p) for p in files},
        })
        for attempt in range(100):
            final = self.runs_dir / (self.name if attempt == 0 else f"{self.name}-{attempt}")
            try:
                # rename onto an existing non-empty folder fails: two runs never share one.
                os.rename(self.path, final)
                return final
            except OSError:
                if not final.exists():
                    raise
        raise ArtifactError(f"cannot find a free run folder name for {self.name}")

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def check_run(folder: str | Path) -> Path:
    """Check that ``folder`` is a complete, untampered run holding a model; return it."""
    folder = Path(folder)
    files = verify_folder(folder)
    if WEIGHTS not in files or MODEL_META not in files:
        raise ArtifactError(f"{folder} holds no model; run `marketcast train` or `run` first")
    return folder


def verify_folder(folder: str | Path, replacing: str | None = None) -> dict[str, str]:
    """Check every file the manifest of ``folder`` lists; return ``{name: sha256}``.

    ``replacing`` names a file about to be rewritten: it may be stale or missing.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ArtifactError(f"run folder {folder} not found; pass a folder under runs/")
    if not folder.is_dir():
        raise ArtifactError(
            f"{folder} is a file, not a run folder; pass the folder `marketcast run` wrote"
        )
    if not (folder / MANIFEST).is_file():
        raise ArtifactError(
            f"{folder} has no {MANIFEST}: the run is incomplete or not a marketcast run; "
            "run `marketcast run` again"
        )
    manifest = read_json(folder / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise ArtifactError(f"{folder / MANIFEST} is malformed; run `marketcast run` again")
    for name, digest in files.items():
        path = folder / name
        if Path(name).name != name or name == MANIFEST:
            raise ArtifactError(f"{folder / MANIFEST} lists {name!r}; use an untouched run folder")
        if name == replacing:
            continue
        if not path.is_file():
            raise ArtifactError(f"{folder} is missing {name}; run `marketcast run` again")
        if _sha256(path) != digest:
            raise ArtifactError(
                f"{path} does not match its sha256 in {MANIFEST}: it was changed or truncated; "
                "use an untouched run folder"
            )
    return files


def add_to_run(folder: str | Path, name: str, text: str) -> Path:
    """Add or replace the file ``name`` of a finished run folder and update its manifest.

    Every other file is verified first. The file is renamed into place before the manifest,
    so a crash in between leaves a file the manifest does not list yet (a new file) or a
    stale ``name`` that the next call replaces; the files the manifest vouches for never change.
    """
    folder = Path(folder)
    files = verify_folder(folder, replacing=name)
    path = folder / name
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if files.get(name) == digest and path.is_file() and _sha256(path) == digest:
        return path  # unchanged: leave the folder untouched
    write_text(path, text)
    write_json(folder / MANIFEST, {
        "format_version": FORMAT_VERSION,
        "files": dict(sorted({**files, name: digest}.items())),
    })
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_name(label: str) -> str:
    """A run name from the time and the data: ``20250131-142501-prices``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(label).name.split(".")[0]).strip("-")
    return f"{stamp}-{slug or 'run'}"


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
