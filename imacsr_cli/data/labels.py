"""Reading image and label files, and mapping raw label values to training ids.

A dataset's label file holds *raw* values (Cityscapes label ids, CamVid colours, SYNTHIA ids in the
red channel). A ``LabelCodec`` reads one file into raw values and maps them to training ids
0..K-1, with IGNORE_INDEX for void and for any value the table does not know ("out of range":
``imacsr data check`` counts those, training silently ignores them).

Every read failure is a one-line DataError naming the file and the encoding that was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from imacsr_cli.data.registry import IGNORE_INDEX
from imacsr_cli.errors import DataError
from imacsr_cli.lazy import lazy_import

# Loaded when an image is read, not when the datasets register (the plan reads PNG headers only).
np = lazy_import("numpy")
Image = lazy_import("PIL.Image")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


def open_image(path: Path, what: str = "image") -> Image.Image:
    """PIL's lazy open (reads the header only); unreadable files become a DataError."""
    try:
        img = Image.open(path)
        img.size  # noqa: B018 - forces the header parse
        return img
    except FileNotFoundError:
        raise DataError(f"{what} {path}: file not found") from None
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{what} {path}: cannot read as an image ({_short(exc)})") from None


def read_rgb(path: Path) -> Image.Image:
    """An image file as 8-bit RGB (RGBA, palette and grayscale inputs are converted)."""
    img = open_image(path)
    try:
        return img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path}: cannot decode ({_short(exc)})") from None


def decode_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3): the pixels of ``read_rgb``, decoded faster.

    8-bit RGB(A) PNGs (every dataset's images) go through libpng (torchvision.io), about twice as
    fast as Pillow's decoder and without Pillow's RGBX copy; anything else, and any file libpng
    refuses, takes the ``read_rgb`` path, so errors read as they always did."""
    pixels = _decode_png8(path, channels=(3, 4))
    if pixels is not None:
        return np.ascontiguousarray(pixels[:3].permute(1, 2, 0).numpy())  # RGBA → RGB drops alpha, as PIL does
    return np.asarray(read_rgb(path), dtype=np.uint8)


def _decode_png8(path: Path, channels: tuple[int, ...]):
    """An 8-bit PNG as uint8 (C, H, W) via libpng when it has one of ``channels``; else None."""
    import warnings

    import torch
    from torchvision.io import ImageReadMode, decode_png, read_file

    try:
        with open(path, "rb") as fh:
            head = fh.read(33)
        if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[24] != 8:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
            pixels = decode_png(read_file(str(path)), ImageReadMode.UNCHANGED)
    except (OSError, RuntimeError, ValueError):
        return None
    return pixels if pixels.dtype == torch.uint8 and pixels.shape[0] in channels else None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header."""
    with open_image(path) as img:
        return img.size


def png_header(path: Path, what: str = "label") -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR, without decoding pixels."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(33)
    except OSError as exc:
        raise DataError(f"{what} {path}: cannot read ({_short(exc)})") from None
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(f"{what} {path}: not a PNG file")
    width = int.from_bytes(head[16:20], "big")
    height = int.from_bytes(head[20:24], "big")
    return width, height, head[24], head[25]


def describe_png(bit_depth: int, colour_type: int) -> str:
    return f"{bit_depth}-bit {_PNG_COLOUR_TYPES.get(colour_type, f'colour type {colour_type}')}"


def read_gray_ids(path: Path) -> np.ndarray:
    """An 8-bit grayscale label of ids (Cityscapes labelIds, CamVid SegNet annots) as uint8 (H, W)."""
    pixels = _decode_png8(path, channels=(1,))
    if pixels is not None:
        return pixels[0].numpy()
    img = open_image(path, "label")
    if img.mode != "L":
        raise DataError(f"label {path}: expected an 8-bit grayscale PNG of label ids (mode L), got mode {img.mode}")
    try:
        return np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"label {path}: cannot decode ({_short(exc)})") from None


def read_red_channel(path: Path) -> np.ndarray:
    """The red channel of an 8- or 16-bit RGB(A) PNG, unchanged, as int32 (H, W).

    Pillow reduces 16-bit RGB PNGs to their high byte (id 21 reads as 0), so 16-bit files are
    decoded with torchvision's libpng binding, which keeps all 16 bits.
    """
    _, _, depth, colour = png_header(path)
    if colour not in (2, 6) or depth not in (8, 16):
        raise DataError(
            f"label {path}: expected an 8- or 16-bit RGB(A) PNG with the class id in the red channel, "
            f"got {describe_png(depth, colour)}"
        )
    if depth == 8:
        pixels = _decode_png8(path, channels=(3, 4))
        if pixels is not None:
            return pixels[0].numpy().astype(np.int32)
        img = open_image(path, "label")
        try:
            return np.asarray(img, dtype=np.uint8)[..., 0].astype(np.int32)
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"label {path}: cannot decode ({_short(exc)})") from None
    return _decode_png16(path)[0]


def _decode_png16(path: Path) -> np.ndarray:
    """A 16-bit PNG as int32 (C, H, W)."""
    import warnings

    import torch
    from torchvision.io import ImageReadMode, decode_png, read_file

    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work.
            warnings.simplefilter("ignore", DeprecationWarning)
            pixels = decode_png(read_file(str(path)), ImageReadMode.UNCHANGED)
    except RuntimeError as exc:
        raise DataError(f"label {path}: cannot decode PNG ({_short(exc)})") from None
    return pixels.to(torch.int32).numpy()


def read_rgb_array(path: Path) -> np.ndarray:
    """A colour-coded label as uint8 (H, W, 3); grayscale labels are refused (wrong layout)."""
    pixels = _decode_png8(path, channels=(3, 4))
    if pixels is not None:
        return np.ascontiguousarray(pixels[:3].permute(1, 2, 0).numpy())
    img = open_image(path, "label")
    if img.mode not in ("RGB", "RGBA", "P"):
        raise DataError(f"label {path}: expected an RGB PNG of class colours, got mode {img.mode}")
    try:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"label {path}: cannot decode ({_short(exc)})") from None


class LabelCodec:
    """Raw label values → training ids through a lookup table indexed by the raw value.

    ``lut[v]`` is the training id of raw value v (or IGNORE_INDEX); values >= len(lut) are out of
    range and map to IGNORE_INDEX.
    """

    def __init__(self, read_raw: Callable[[Path], np.ndarray], lut: np.ndarray):
        self.read_raw = read_raw
        self.lut = np.asarray(lut, dtype=np.uint8)
        # For uint8 raw values: one lookup of all 256 values (the same ids, one pass instead of four).
        self._lut256 = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        self._lut256[: min(len(self.lut), 256)] = self.lut[:256]

    def to_train(self, raw: np.ndarray) -> np.ndarray:
        if raw.dtype == np.uint8:
            return self._lut256[raw]
        inside = raw < len(self.lut)
        ids = self.lut[np.where(inside, raw, 0)]
        return np.where(inside, ids, IGNORE_INDEX).astype(np.uint8)

    def decode(self, path: Path) -> np.ndarray:
        """A label file as uint8 (H, W) training ids."""
        return self.to_train(self.read_raw(path))

    def fingerprint(self) -> str:
        """What decides the ids a file decodes to: the reader and the table (data.cache's keys)."""
        return _fingerprint(self.read_raw, self.lut.tobytes())

    def out_of_range(self, raw: np.ndarray) -> dict[str, int]:
        """Raw values the table does not know → pixel counts."""
        values, counts = np.unique(raw[raw >= len(self.lut)], return_counts=True)
        return {str(int(v)): int(c) for v, c in zip(values, counts)}


class ColourCodec(LabelCodec):
    """Colour-coded labels: each (R, G, B) in the palette is one raw class; other colours are out of range."""

    def __init__(self, read_rgb: Callable[[Path], np.ndarray], palette: dict[tuple[int, int, int], int]):
        self.read_raw = read_rgb
        keys = np.array([_pack(np.array(c)) for c in palette], dtype=np.int64)
        order = np.argsort(keys)
        self._keys = keys[order]
        self._ids = np.array(list(palette.values()), dtype=np.uint8)[order]

    def fingerprint(self) -> str:
        return _fingerprint(self.read_raw, self._keys.tobytes() + self._ids.tobytes())

    def _lookup(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        packed = _pack(raw)
        pos = np.searchsorted(self._keys, packed).clip(max=len(self._keys) - 1)
        return pos, self._keys[pos] == packed

    def to_train(self, raw: np.ndarray) -> np.ndarray:
        pos, known = self._lookup(raw)
        return np.where(known, self._ids[pos], IGNORE_INDEX).astype(np.uint8)

    def out_of_range(self, raw: np.ndarray) -> dict[str, int]:
        _, known = self._lookup(raw)
        colours, counts = np.unique(raw[~known].reshape(-1, 3), axis=0, return_counts=True)
        return {"({}, {}, {})".format(*map(int, c)): int(n) for c, n in zip(colours, counts)}


def _fingerprint(read_raw: Callable[[Path], np.ndarray], table: bytes) -> str:
    import hashlib

    return f"{read_raw.__module__}.{read_raw.__qualname__}:{hashlib.sha256(table).hexdigest()}"


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
