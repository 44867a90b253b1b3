"""Run folders and model files: atomic writes, a sha256 manifest, no pickle anywhere.

A run folder is assembled under a hidden staging name and renamed into place only when
complete; ``manifest.json`` (the sha256 of every other file) is written last. Loading checks
the manifest, so a truncated, tampered or half-written run is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import filelock

from marketcast.config import check_run_name
from marketcast.errors import ArtifactError, shown
from marketcast.files import (
    default_name,
    load_arrays,
    read_json,
    sha256_file,
    sync_file,
    sync_folder,
    write_json,
    write_tensors,
    write_text,
)
from marketcast.runs.layout import MANIFEST, MODEL_META, REPORT, WEIGHTS, Kind, guess_kind
from marketcast.runs.schema import check_finite_weights, validate_model_spec

FORMAT_VERSION = 1
# A staging folder: the hidden ``.NAME.TOKEN`` of a run folder being written (TOKEN: 8 hex
# digits now, 8 characters of tempfile's alphabet before).
STAGING = re.compile(r"\.(?!checkpoints$).+\.[a-z0-9_]{8}")


def save_model(folder: Path, tensors: dict, meta: dict) -> None:
    """``model.safetensors`` (weights) and ``model.json`` (everything else)."""
    write_tensors(folder / WEIGHTS, tensors)
    write_json(folder / MODEL_META, {"format_version": FORMAT_VERSION, **meta})


def load_model_files(folder: Path) -> tuple[dict, dict]:
    """Verified weights (numpy arrays) and metadata of a run folder; raises
    :class:`ArtifactError`."""
    folder = Path(folder)
    files = verify_folder(folder)
    if WEIGHTS not in files or MODEL_META not in files:
        raise ArtifactError(f"{folder} holds no model; run `marketcast train` or `run` first")
    # Read once, checked against the manifest, parsed from the same bytes.
    tensors = load_arrays(folder / WEIGHTS, files[WEIGHTS])
    meta = read_json(folder / MODEL_META, files[MODEL_META])
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{folder / MODEL_META} has an unknown format; retrain the model")
    validate_model_spec(meta, {k: tuple(v.shape) for k, v in tensors.items()},
                        str(folder / MODEL_META))
    check_finite_weights(tensors, str(folder / WEIGHTS))
    return tensors, meta


class RunFolder:
    """A run folder being written: files go to a hidden staging folder until :meth:`finish`.

    The staging folder ``.NAME.TOKEN`` is owned through the lock ``.NAME.TOKEN.lock`` beside
    it, taken before the folder exists and held until it is published or removed; a staging
    folder whose lock is free was left by a killed process, and the next run folder written
    in the same runs folder removes it.
    """

    def __init__(self, runs_dir: str | Path, name: str | None, label: str = "run",
                 kind: Kind = Kind.RUN):
        self.kind = Kind(kind)
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.name = check_run_name(name) if name is not None else default_name(label)
        if (self.runs_dir / self.name).exists() and name is not None:
            raise ArtifactError(
                f"run folder {self.runs_dir / self.name} already exists; pick another --name"
            )
        remove_stale_staging(self.runs_dir)
        while True:
            path = self.runs_dir / f".{self.name}.{secrets.token_hex(4)}"
            self.lock = filelock.FileLock(_lock_of(path), timeout=0)
            self.lock.acquire()
            try:
                path.mkdir()  # follows the umask
            except FileExistsError:
                self._unlock()
                continue
            except BaseException:
                self._unlock()
                raise
            self.path = path
            break

    def finish(self) -> Path:
        """Write the manifest and move the folder into place under a name no one else has."""
        files = sorted(p for p in self.path.iterdir() if p.is_file() and p.name != MANIFEST)
        write_json(self.path / MANIFEST, {
            "format_version": FORMAT_VERSION,
            "kind": str(self.kind),
            "files": {p.name: sha256_file(p) for p in files},
        })
        for path in files:
            sync_file(path)  # on disk before the rename makes them a finished run
        sync_folder(self.path)
        for attempt in range(100):
            final = self.runs_dir / (self.name if attempt == 0 else f"{self.name}-{attempt}")
            try:
                # rename onto an existing non-empty folder fails: two runs never share one.
                os.rename(self.path, final)
            except OSError:
                if not final.exists():
                    raise
                continue
            sync_folder(self.runs_dir)
            self._unlock()
            return final
        raise ArtifactError(f"cannot find a free run folder name for {self.name}")

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._unlock()

    def _unlock(self) -> None:
        self.lock.release()
        with contextlib.suppress(OSError):
            Path(self.lock.lock_file).unlink()


def remove_stale_staging(runs_dir: Path) -> list[Path]:
    """Remove the staging folders of ``runs_dir`` whose writer is dead (its lock is free);
    return them. A live writer's folder is never touched."""
    removed = []
    for path in runs_dir.glob(".*"):
        if not (path.is_dir() and not path.is_symlink() and STAGING.fullmatch(path.name)):
            continue
        lock = filelock.FileLock(_lock_of(path), timeout=0)
        try:
            lock.acquire()
        except (filelock.Timeout, OSError):
            continue  # its writer is alive (or the lock cannot be taken): leave it
        try:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        finally:
            lock.release()
            with contextlib.suppress(OSError):
                Path(lock.lock_file).unlink()
    return removed


def _lock_of(staging: Path) -> Path:
    return staging.with_name(f"{staging.name}.lock")


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
        if (not isinstance(name, str) or Path(name).name != name or name in (MANIFEST, "..", ".")
                or not isinstance(digest, str)):
            raise ArtifactError(f"{folder / MANIFEST} lists {shown(name)}; use an untouched "
                                "run folder")
        if name == replacing:
            continue
        if path.is_symlink():
            raise ArtifactError(f"{path} is a symbolic link; a run folder holds its own "
                                "files: use an untouched run folder")
        if not path.is_file():
            raise ArtifactError(f"{folder} is missing {name}; run `marketcast run` again")
        if sha256_file(path) != digest and name == REPORT:
            raise ArtifactError(
                f"{path} does not match its sha256 in {MANIFEST} (a report being rewritten "
                f"was interrupted, or it was edited); rewrite it with `marketcast report "
                f"{folder}`")
        if sha256_file(path) != digest:
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
    if files.get(name) == digest and path.is_file() and sha256_file(path) == digest:
        return path  # unchanged: leave the folder untouched
    write_text(path, text)
    write_json(folder / MANIFEST, {
        "format_version": FORMAT_VERSION,
        "kind": str(kind_of(folder)),
        "files": dict(sorted({**files, name: digest}.items())),
    })
    return path


def kind_of(folder: str | Path) -> Kind:
    """The kind recorded in the manifest of a verified folder (guessed for older folders)."""
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST)
    recorded = manifest.get("kind") if isinstance(manifest, dict) else None
    if recorded is not None:
        try:
            return Kind(recorded)
        except ValueError:
            raise ArtifactError(
                f"{folder / MANIFEST} records an unknown kind {str(recorded)[:40]!r}; use a "
                "folder written by marketcast"
            ) from None
    metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
    names = set(manifest.get("files", {})) if isinstance(manifest, dict) else set()
    return guess_kind(names, metrics if isinstance(metrics, dict) else {})


@contextlib.contextmanager
def staged(runs_dir: str | Path, name: str | None, *, label: str,
           kind: Kind) -> Iterator[RunFolder]:
    """Write a run folder: files go into ``folder.path`` (hidden); on success the manifest
    is written and the folder renamed into place (``folder.final``), on any failure it is
    removed, so no half-written folder ever looks finished."""
    folder = RunFolder(runs_dir, name, label=label, kind=kind)
    try:
        yield folder
        folder.final = folder.finish()
    except BaseException:
        folder.discard()
        raise


