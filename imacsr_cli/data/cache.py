"""A folder of decoded samples (``data.cache``): each image/label pair decoded once, then mapped.

Decoding a 2048×1024 PNG pair costs about 35 ms on one core, most of a Cityscapes sample's time and
more than the whole budget of a core that must feed a GPU (BENCHMARKS.md, issue 13). Training reads
every image once per epoch, so a run of a hundred epochs decodes each file a hundred times. With
``data.cache`` set, the first read of a pair writes its decoded pixels (uint8 H×W×3) and training
ids (uint8 H×W) as two ``.npy`` files; later reads map them (``np.load(mmap_mode="r")``), so a
sample costs the pages its crop touches instead of a decode.

- **Same values.** An entry holds exactly what decoding gives (the pixels of ``decode_rgb`` and the
  ids of the label codec), so a run reads the same samples with or without a cache: the key is not
  part of the run id.
- **Never stale.** An entry's name is a hash of both files' resolved paths, sizes and modification
  times and of the label codec (raw values → ids), so an edited file or another class set is another
  entry. Old entries are never read again; deleting the folder is always safe.
- **Never half-written.** Each file is written to a temporary name, fsynced and renamed into place
  (``rundir.write_atomic``), the label last; a reader takes an entry only when both files are there, and one that fails to load (a
  truncated copy, another version's format) is decoded again and rewritten. Two processes filling
  the same entry write the same bytes.
- Size: what the pixels are uncompressed, 4 bytes a pixel (Cityscapes' 2975 training pairs: 25 GB).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

from imacsr_cli.errors import DataError
from imacsr_cli.lazy import lazy_import
from imacsr_cli.rundir.files import write_atomic

np = lazy_import("numpy")

# Bumped when an entry's format changes: entries of another format are other names, never misread.
FORMAT = "1"


class DecodedCache:
    """Decoded (pixels, ids) of image/label pairs under ``folder``, filled on first read."""

    def __init__(self, folder: Path, codec_id: str):
        self.folder = Path(folder).expanduser().resolve()
        self.codec_id = codec_id
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / f".probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise DataError(f"data.cache {self.folder}: cannot write there ({exc.strerror or exc}); "
                            "choose a writable folder, or set data.cache = \"\" to decode every read") from None

    def _key(self, image: Path, label: Path) -> str:
        parts = [FORMAT, self.codec_id]
        for path in (image, label):
            st = os.stat(path)
            parts += [str(Path(path).resolve()), str(st.st_size), str(st.st_mtime_ns)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def read(self, image: Path, label: Path,
             decode: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """The pair's (uint8 (H, W, 3) pixels, uint8 (H, W) ids): mapped from the folder, or
        ``decode()``d and written there first. A missing source file raises what decoding raises."""
        try:
            key = self._key(image, label)
        except OSError:
            return decode()  # a missing file: decoding names it
        base = self.folder / key[:2] / key
        pixels_path, ids_path = base.with_suffix(".pixels.npy"), base.with_suffix(".ids.npy")
        if ids_path.exists():  # written last: both are complete
            try:
                pixels, ids = np.load(pixels_path, mmap_mode="r"), np.load(ids_path, mmap_mode="r")
                if pixels.dtype == np.uint8 and ids.dtype == np.uint8 and pixels.shape == (*ids.shape, 3):
                    return pixels, ids
            except (OSError, ValueError):
                pass  # unreadable: decoded and written again below
        pixels, ids = decode()
        self._write(pixels_path, pixels)
        self._write(ids_path, ids)
        return pixels, ids

    def _write(self, path: Path, array: np.ndarray) -> None:
        # The run directory's writer: fsynced before the rename, so after a power cut an entry is
        # whole or absent, never a valid header over missing pixels (which would load without error).
        try:
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, lambda fh: np.save(fh, np.ascontiguousarray(array), allow_pickle=False))
        except OSError as exc:
            raise DataError(f"data.cache {self.folder}: cannot write {path.name} ({exc.strerror or exc}); "
                            "free space there, or set data.cache = \"\" to decode every read") from None
