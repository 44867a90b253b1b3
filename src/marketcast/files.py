"""Files we write and read: atomic writes, JSON, CSV and safetensors; no pickle anywhere.

Every write goes through a temporary file renamed into place, so a reader never sees half
a file. The run-folder layout built from these lives in :mod:`marketcast.runs`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from marketcast.errors import ArtifactError

if TYPE_CHECKING:
    import numpy as np
    import torch

# Versions recorded with every run: what its numbers may depend on.
PACKAGES = ("marketcast", "torch", "numpy", "pandas", "scikit-learn", "scipy", "statsmodels",
            "arch", "matplotlib", "safetensors", "exchange-calendars")


def write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file, synced to disk, then renamed (and the rename synced):
    readers never see half a file, not even after a power cut. The file follows the umask."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        follow_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def follow_umask(path: Path) -> None:
    """Give a file made by ``tempfile`` (always 0600) the mode an ordinary file would get,
    so colleagues sharing a runs folder can read it when the umask lets them."""
    os.chmod(path, 0o666 & ~_umask())


def sync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def sync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable (POSIX; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the data itself is synced
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


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


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write tensors as safetensors (atomically); return the file's sha256."""
    from safetensors.torch import save as to_safetensors  # imports torch: only here

    data = to_safetensors({k: v.contiguous() for k, v in tensors.items()},
                          metadata={"format": "marketcast"})
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_verified(path: Path, sha256: str | None = None) -> bytes:
    """The bytes of ``path``, read once and checked against ``sha256`` when given: the bytes
    a caller parses are the bytes that were hashed. A symbolic link is refused."""
    path = Path(path)
    if path.is_symlink():
        raise ArtifactError(f"{path} is a symbolic link; a run folder holds its own files: "
                            "use an untouched copy")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError(f"{path} does not match its recorded sha256: it was changed or "
                            "truncated; use an untouched copy")
    return data


def load_tensors(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (never pickle), checked against ``sha256`` when given."""
    from safetensors.torch import load as from_safetensors

    return _load_safetensors(path, sha256, from_safetensors)


def load_arrays(path: Path, sha256: str | None = None) -> dict[str, np.ndarray]:
    """:func:`load_tensors` as numpy arrays: reading weights this way does not import torch."""
    from safetensors.numpy import load as from_safetensors

    return _load_safetensors(path, sha256, from_safetensors)


def _load_safetensors(path: Path, sha256: str | None, parse) -> dict:
    data = read_verified(path, sha256)
    from safetensors import SafetensorError

    try:
        return parse(data)
    except (SafetensorError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a valid safetensors file ({exc})") from None


def read_json(path: Path, sha256: str | None = None):
    """The JSON of ``path`` (checked against ``sha256`` when given)."""
    data = read_verified(path, sha256)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"cannot read {path}: {str(exc)[:80]}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_name(label: str) -> str:
    """A run name from the time and the data: ``20250131-142501-prices``."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(label).name.split(".")[0]).strip("-")
    return f"{stamp}-{slug[:60] or 'run'}"


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
