"""Synthetic street scenes: the embedded default dataset (no download, any size, any count).

Each image is drawn procedurally in CamVid's 11 classes: sky, buildings (with windows), a road in
perspective with lane marks, sidewalks, fences, trees, poles with signs, cars, pedestrians and
cyclists. Layout, colours, lighting, shadows and noise are random, and colour ranges overlap across
classes (a grey car on a grey road, white lane marks that are road, green fences near green trees),
so a model has to use shape and context, not colour alone.

Determinism: scene ``index`` of split ``split`` is drawn from ``numpy.random.default_rng((SCENE_SEED,
split_id, index))``, the same for every training seed (a dataset, like a real one). The training
flip uses (training seed, epoch, index), so a resumed run sees the same augmentations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imacsr_cli.lazy import lazy_import

np = lazy_import("numpy")  # loaded when an image is read, not when the dataset registers

from imacsr_cli.data.registry import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, DatasetEntry, DatasetInfo, register
from imacsr_cli.spec.runspec import DataSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

CLASSES = (
    "sky", "building", "pole", "road", "sidewalk", "tree",
    "sign", "fence", "car", "pedestrian", "cyclist",
)  # fmt: skip
SKY, BUILDING, POLE, ROAD, SIDEWALK, TREE, SIGN, FENCE, CAR, PEDESTRIAN, CYCLIST = range(11)
SCENE_SEED = 20250501
_SPLIT_ID = {"train": 0, "val": 1}


class _Canvas:
    """An image and its label map drawn together, far to near (later shapes occlude earlier ones)."""

    def __init__(self, h: int, w: int, rng: np.random.Generator):
        self.h, self.w, self.rng = h, w, rng
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.full((h, w), SKY, np.uint8)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def paint(self, mask: np.ndarray, cls: int, colour: np.ndarray, texture: float = 0.04) -> None:
        noise = self.rng.normal(0.0, texture, size=(int(mask.sum()), 3)).astype(np.float32)
        self.img[mask] = np.clip(colour + noise, 0, 1)
        self.lab[mask] = cls

    def rect(self, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
        return (self.yy >= y0) & (self.yy < y1) & (self.xx >= x0) & (self.xx < x1)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        return ((self.yy - cy) / max(ry, 0.5)) ** 2 + ((self.xx - cx) / max(rx, 0.5)) ** 2 <= 1.0

    def colour(self, base: tuple[float, float, float], spread: float) -> np.ndarray:
        return np.clip(np.array(base, np.float32) + self.rng.uniform(-spread, spread, 3), 0, 1)


def render(index: int, split: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Scene ``index`` of ``split`` as (image float32 H×W×3 in [0, 1], label uint8 H×W)."""
    rng = np.random.default_rng((SCENE_SEED, _SPLIT_ID[split], index))
    c = _Canvas(height, width, rng)
    h, w = height, width
    horizon = rng.uniform(0.35, 0.55) * h
    vx = rng.uniform(0.35, 0.65) * w  # vanishing point

    # Sky: a vertical gradient between two random tints (blue, grey overcast or dusk).
    top, bottom = c.colour((0.35, 0.55, 0.85), 0.25), c.colour((0.75, 0.8, 0.9), 0.2)
    t = (c.yy / max(horizon, 1.0))[..., None]
    c.img[:] = np.clip(top * (1 - t) + bottom * t, 0, 1)

    # Buildings along the horizon, with rows of windows of a darker or lighter tone.
    x = -rng.uniform(0, 0.1) * w
    while x < w:
        bw = rng.uniform(0.08, 0.3) * w
        top_y = horizon - rng.uniform(0.1, 0.45) * h
        mask = c.rect(top_y, horizon + 0.05 * h, x, x + bw)
        wall = c.colour((0.55, 0.5, 0.45), 0.3)
        c.paint(mask, BUILDING, wall)
        win = c.colour(tuple(wall * rng.uniform(0.4, 1.4)), 0.05)
        step_y, step_x = rng.uniform(0.04, 0.08) * h, rng.uniform(0.03, 0.06) * w
        windows = mask & ((c.yy - top_y) % step_y < step_y * 0.5) & ((c.xx - x) % step_x < step_x * 0.5)
        c.paint(windows, BUILDING, win, 0.02)
        x += bw + rng.uniform(0, 0.05) * w

    # Trees behind the sidewalk: a trunk and a few overlapping crowns.
    for _ in range(rng.integers(0, 4)):
        tx, base = rng.uniform(0, w), horizon + rng.uniform(0.0, 0.08) * h
        size = rng.uniform(0.06, 0.16) * h
        c.paint(c.rect(base - 1.5 * size, base, tx - 0.08 * size, tx + 0.08 * size), TREE, c.colour((0.35, 0.25, 0.15), 0.1))
        green = c.colour((0.25, 0.5, 0.2), 0.15)
        for _ in range(3):
            cy, cx = base - 1.5 * size + rng.normal(0, 0.3 * size), tx + rng.normal(0, 0.4 * size)
            c.paint(c.ellipse(cy, cx, size * rng.uniform(0.5, 0.9), size * rng.uniform(0.5, 0.9)), TREE, green, 0.08)

    # Ground: sidewalk everywhere below the horizon, then the road as a trapezoid to the vanishing point.
    below = c.yy >= horizon
    c.paint(below, SIDEWALK, c.colour((0.6, 0.58, 0.55), 0.15))
    depth = np.clip((c.yy - horizon) / max(h - horizon, 1.0), 0, 1)  # 0 at the horizon, 1 at the bottom
    half = (0.02 + rng.uniform(0.35, 0.6) * depth) * w
    road = below & (np.abs(c.xx - vx - (rng.uniform(-0.1, 0.1) * w) * depth) < half)
    asphalt = c.colour((0.35, 0.35, 0.37), 0.1)
    c.paint(road, ROAD, asphalt)
    # Lane marks: white dashes in the middle of the road; they are road, not a class of their own.
    dash = (np.sin(np.log1p(20 * depth) * rng.uniform(6, 10)) > 0.2) & (np.abs(c.xx - vx) < 0.012 * w * (1 + 4 * depth))
    c.paint(road & dash & (depth > 0.05), ROAD, c.colour((0.92, 0.92, 0.88), 0.05), 0.03)

    # A fence along one side of the road.
    if rng.random() < 0.6:
        side = rng.choice([-1, 1])
        fy0, fy1 = horizon + 0.02 * h, horizon + rng.uniform(0.08, 0.16) * h
        region = c.rect(fy0, fy1, 0, w) & ~road & (np.sign(c.xx - vx) == side)
        slats = region & (((c.xx / max(0.012 * w, 1.0)).astype(int) % 2 == 0) | (np.abs(c.yy - (fy0 + fy1) / 2) < 0.01 * h))
        c.paint(slats, FENCE, c.colour((0.45, 0.4, 0.3), 0.25))

    # Poles, some carrying a sign.
    for _ in range(rng.integers(1, 4)):
        px, base = rng.uniform(0, w), horizon + rng.uniform(0.05, 0.3) * h
        ph, pw = rng.uniform(0.25, 0.5) * h, max(1.0, 0.008 * w)
        c.paint(c.rect(base - ph, base, px - pw, px + pw), POLE, c.colour((0.4, 0.4, 0.42), 0.15))
        if rng.random() < 0.6:
            s = rng.uniform(0.025, 0.05) * h
            shape = c.ellipse(base - ph, px, s, s) if rng.random() < 0.5 else c.rect(base - ph - s, base - ph + s, px - s, px + s)
            c.paint(shape, SIGN, c.colour(tuple(rng.choice([(0.8, 0.1, 0.1), (0.1, 0.3, 0.8), (0.9, 0.8, 0.1)])), 0.1))

    # Road users, far to near so near ones occlude far ones.
    actors = sorted(rng.uniform(0.08, 1.0, size=rng.integers(2, 8)))
    for d in actors:
        y = horizon + d * (h - horizon)
        scale = 0.04 + 0.5 * d  # apparent size grows towards the camera
        kind = rng.choice([CAR, CAR, PEDESTRIAN, CYCLIST])
        if kind == CAR:
            cx = vx + rng.uniform(-0.8, 0.8) * (0.02 + 0.5 * d) * w
            cw, ch = scale * 0.45 * w, scale * 0.35 * h
            body = c.colour(tuple(rng.uniform(0, 1, 3)), 0.05)
            c.paint(c.rect(y - ch, y - 0.25 * ch, cx - cw / 2, cx + cw / 2), CAR, body)
            c.paint(c.rect(y - 1.5 * ch, y - ch, cx - 0.3 * cw, cx + 0.3 * cw), CAR, body * 0.6 + 0.1)
            for wx in (cx - 0.3 * cw, cx + 0.3 * cw):
                c.paint(c.ellipse(y - 0.25 * ch, wx, 0.25 * ch, 0.12 * cw), CAR, c.colour((0.08, 0.08, 0.08), 0.03))
        else:
            side = rng.choice([-1, 1])
            cx = vx + side * (0.02 + rng.uniform(0.35, 0.7) * d) * w
            ph, pw = scale * 0.8 * h, scale * 0.08 * w
            clothes = c.colour(tuple(rng.uniform(0, 1, 3)), 0.05)
            c.paint(c.ellipse(y - 0.45 * ph, cx, 0.45 * ph, pw), kind, clothes)
            c.paint(c.ellipse(y - 1.0 * ph, cx, 0.1 * ph, 0.8 * pw), kind, c.colour((0.8, 0.65, 0.5), 0.15))
            if kind == CYCLIST:
                for wx in (cx - 1.5 * pw, cx + 1.5 * pw):
                    ring = c.ellipse(y - 0.15 * ph, wx, 0.18 * ph, 1.2 * pw) & ~c.ellipse(y - 0.15 * ph, wx, 0.12 * ph, 0.8 * pw)
                    c.paint(ring, CYCLIST, c.colour((0.15, 0.15, 0.15), 0.05))

    # Lighting: a global exposure and colour cast, a soft shadow band, then sensor noise.
    img = c.img * rng.uniform(0.6, 1.3) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    if rng.random() < 0.5:
        x0 = rng.uniform(0, w)
        img[(c.xx > x0) & (c.xx < x0 + rng.uniform(0.1, 0.4) * w) & below] *= 0.6
    img = img + rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32), c.lab


class SyntheticStreets:
    """``num`` scenes of one split at (height, width); training samples may be flipped. A plain
    map-style dataset (a DataLoader needs only __len__ and __getitem__): importing this module, as
    discovery does, imports no torch."""

    def __init__(self, split: str, num: int, size: tuple[int, int], hflip: bool):
        import torch

        self.split, self.num, self.size = split, num, size
        self.hflip = hflip and split == "train"
        self.seed, self.epoch = 0, 0
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        img, lab = render(index, self.split, *self.size)
        image = (torch.from_numpy(img).permute(2, 0, 1) - self._mean) / self._std
        label = torch.from_numpy(lab.astype(np.int64))
        if self.hflip and np.random.default_rng((self.seed, self.epoch, index)).random() < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return image.contiguous(), label.contiguous()


def _build(spec: DataSpec, split: str, root: object) -> SyntheticStreets:
    num = spec.num_train if split == "train" else spec.num_val
    size = spec.train_size if split == "train" else spec.eval_size
    return SyntheticStreets(split, num, tuple(size), spec.hflip)


register(
    DatasetEntry(
        name="synthetic",
        info=lambda spec: DatasetInfo("synthetic", CLASSES, IGNORE_INDEX),
        build=_build,
        defaults={
            "split": "default",
            "classes": "camvid11",
            "train_size": (128, 256),
            "eval_size": (128, 256),
            "scale_range": (1.0, 1.0),  # scenes are rendered at the training size
            "num_train": 64,
            "num_val": 16,
        },
        splits=("default",),
        class_sets=("camvid11",),
        needs_root=False,
        description="procedural street scenes in CamVid's 11 classes (built in, no download)",
    )
)
