"""Checkpoints of a run's stages: content hashes, atomic stage folders, verified reuse.

Every stage writes its outputs into a temporary folder beside ``OUT/stages/<stage>``; the
runner then hashes each output file (BLAKE2b of the content), writes the sidecar
``stage.json`` (the stage's *key*, the hash of every output, timings) into the same folder and
renames the folder into place (:func:`bigeval.io.writers.atomic_dir`). A process killed at
any moment therefore leaves either the previous complete stage folder or none, never a mix.

A stage's key is the hash of its name and code version, its parameters, the content hashes
of the input files it reads and the output hashes of the stages it reads. A later run reuses
a stage only when the key is the same **and** every output still has the hash recorded in
``stage.json``; a truncated or otherwise changed output is reported and the stage recomputed.

Hashing inputs of many gigabytes on every run costs time, so input hashes are cached in
``OUT/stages/input-hashes.json`` under the file's size, modification and change times and
inode (the change time cannot be set back by a user, so any write invalidates the entry);
outputs are always hashed in full.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bigeval.io.writers import atomic_dir, atomic_path

__all__ = ["hash_file", "hash_path", "hash_json", "InputHasher", "StageStore", "SIDECAR"]

SIDECAR = "stage.json"
_BLOCK = 4 << 20


def hash_file(path: str | os.PathLike) -> str:
    """BLAKE2b-256 of a file's content, hex.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> hash_file(p)[:16]
    'bddd813c63423972'
    """
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as fh:
        while chunk := fh.read(_BLOCK):
            h.update(chunk)
    return h.hexdigest()


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def hash_path(path: str | os.PathLike, *, file_hash=hash_file) -> str:
    """Hash of a file, or of a folder (a Zarr store): its files' relative paths and contents."""
    path = Path(path)
    if path.is_dir():
        files = _files_under(path)
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            hashes = list(pool.map(file_hash, files))  # hashlib releases the GIL
        h = hashlib.blake2b(digest_size=32)
        for f, fh in zip(files, hashes):
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + fh.encode() + b"\n")
        return "dir:" + h.hexdigest()
    return file_hash(path)


def hash_json(obj) -> str:
    """Hash of a JSON-able object in canonical form (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=32).hexdigest()


def _valid_cache(obj) -> dict:
    """The entries of a hash cache that have its shape, ``path: [[size, mtime, ctime,
    inode], digest]``; anything else (a damaged or foreign file) is not trusted: those files
    are hashed again."""
    if not isinstance(obj, dict):
        return {}
    return {k: v for k, v in obj.items()
            if isinstance(k, str) and isinstance(v, list) and len(v) == 2
            and isinstance(v[0], list) and len(v[0]) == 4
            and all(isinstance(x, int) and not isinstance(x, bool) for x in v[0])
            and isinstance(v[1], str)}


class InputHasher:
    """Content hashes of input files, cached by (size, mtime, ctime, inode) per file."""

    def __init__(self, cache_file: Path | None, *, trust_cache: bool = True):
        self.cache_file = cache_file
        self.trust = trust_cache
        self._lock = threading.Lock()
        self.cache: dict = {}
        if cache_file is not None and cache_file.exists() and trust_cache:
            with contextlib.suppress(OSError, ValueError):
                self.cache = _valid_cache(json.loads(cache_file.read_text()))
        self.seen: dict[str, str] = {}

    def _file(self, path: Path) -> str:
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        key = str(path.resolve())
        with self._lock:
            hit = self.cache.get(key)
        if self.trust and hit is not None and hit[0] == stamp:
            return hit[1]
        digest = hash_file(path)
        with self._lock:
            self.cache[key] = [stamp, digest]
        return digest

    def __call__(self, path: str | os.PathLike) -> str:
        path = Path(path)
        key = str(path)
        if key not in self.seen:
            self.seen[key] = hash_path(path, file_hash=self._file)
        return self.seen[key]

    def save(self) -> None:
        if self.cache_file is None:
            return
        with atomic_path(self.cache_file) as tmp:
            tmp.write_text(json.dumps(self.cache, sort_keys=True))


class StageStore:
    """The stage folders under ``OUT/stages``: find valid checkpoints, commit new ones."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, stage: str) -> Path:
        return self.root / stage

    def clean_debris(self, published=()) -> list[Path]:
        """Remove what a killed run left: temporary stage folders and files here
        (``.<stage>.*.tmp``, ``.old``) and the temporary files of the ``published`` names
        (``.<name>.*.tmp``) in the output folder."""
        removed = []
        candidates = list(self.root.glob(".*"))
        for name in published:
            candidates += list(self.root.parent.glob(f".{name}.*.tmp"))
        for p in candidates:
            if not (p.name.endswith(".tmp") or p.name.endswith(".old")):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
        return removed

    def sidecar(self, stage: str) -> dict | None:
        p = self.folder(stage) / SIDECAR
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return None

    def check(self, stage: str, key: str) -> tuple[bool, str]:
        """Whether the checkpoint of ``stage`` can be reused for ``key``, and why (not).

        Every output listed in the sidecar is hashed again: a missing, truncated or changed
        file makes the checkpoint invalid.
        """
        folder = self.folder(stage)
        if not folder.exists():
            return False, "no checkpoint"
        meta = self.sidecar(stage)
        if meta is None:
            return False, "checkpoint without a readable stage.json"
        if meta.get("key") != key:
            return False, "inputs or parameters changed"
        for rel, digest in meta.get("outputs", {}).items():
            p = folder / rel
            if not p.exists():
                return False, f"checkpoint file {rel} is missing"
            if hash_path(p) != digest:
                return False, f"checkpoint file {rel} is corrupted (hash mismatch)"
        return True, "unchanged"

    def outputs_hash(self, stage: str, files=None) -> str:
        """One hash of the outputs of a committed stage (all, or the names in ``files``):
        what the keys of the stages reading them depend on."""
        outputs = (self.sidecar(stage) or {}).get("outputs", {})
        if files is not None:
            outputs = {f: outputs.get(f) for f in files}
        return hash_json(outputs)

    @contextlib.contextmanager
    def writing(self, stage: str):
        """Yield a temporary folder for the stage's outputs; :meth:`commit` puts it in place.

        If the block raises (or the process dies), the previous checkpoint is untouched.
        """
        with atomic_dir(self.folder(stage)) as tmp:
            yield Path(tmp)

    @staticmethod
    def seal(tmp: Path, meta: dict) -> dict:
        """Hash every file in ``tmp`` and write the sidecar (the last file written)."""
        outputs = {}
        for p in sorted(tmp.iterdir()):
            if p.name == SIDECAR:
                continue
            outputs[p.name] = hash_path(p)
        meta = {**meta, "outputs": outputs}
        with atomic_path(tmp / SIDECAR) as t:
            t.write_text(json.dumps(meta, indent=1, sort_keys=True))
        return meta
