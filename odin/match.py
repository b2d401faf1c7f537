"""post=match: bring generated images into the look of the user's real images, learnt from those images
alone (never their labels).

`fit(real_images)` measures what a generator cannot know about the real domain:
  channels      gray when every real image's channels agree
  size          the real images' (median) height and width
  resolution    the block size of images upscaled with nearest neighbours (an 8x8 digit shown at 32 px
                is 4x4 blocks), else the largest factor that downsampling and upsampling back loses
                nothing visible of
  background    plain (a subject on a flat ground, as scans, digits, icons) or a scene; for a plain
                ground its level and the subject's level, so the polarity (ink bright on dark, or dark
                on light) comes with them
  geometry      for a plain ground: the distributions (quantiles) of the subject's box (height as a
                fraction of the frame, aspect, centre), its slant, how much of the frame it covers and
                how soft its edges are at the effective resolution (an image smoothly upscaled from a
                few pixels has wide grey edges that no block size reveals)
  intensities   quantiles of the pixel values, per channel (a scene's tone mapping)
  noise         the flat ground's spread (plain), or Immerkaer's estimate at the effective resolution
`apply(x, seed)` then draws a generated image in that domain. A plain-ground image goes through its
subject: its strength map (0 = ground, 1 = subject, whichever is brighter), specks dropped, then each
geometry statistic moved by rank: an image whose slant (box height, aspect, centre, cover) is at the
q-th quantile of the generated images' gets the real images' q-th quantile. So what the real images
hold fixed (NIST stretches every digit's box to 20x32 and fixes its ink) becomes fixed, and what varies
in them keeps its order (a narrow 1 stays the narrowest). The generated distributions come from
`fit(real, generated)`; without generated images each statistic goes to the real median. The subject
is then reduced to the effective resolution, blurred where the real edges are softer, and drawn with the
real ground and subject levels. A scene
is resized, reduced to the effective resolution and tone-mapped. Both get the real noise, seeded.
The learnt statistics are part of `key_config`, so the store's post key changes with the real images.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from odin.errors import ConfigError
from odin.keys import config_hash

GEOMETRY = ("slant", "height", "aspect", "cy", "cx")  # measured on the subject as drawn; cover after placing
PLAIN_SHARE = 0.8  # the share of real images whose border is flat for the domain to count as a plain ground
FLAT_BORDER = 0.06  # a border whose pixels stay this close to their median is flat
QUANTILES = np.linspace(0, 1, 33)
CANVAS = 64  # the subject is reshaped on a canvas at least this large before reduction: smooth strokes


class MatchPost:
    """The post-processor of post=match (conf/post/match.yaml); see the module docstring."""

    is_identity = False

    def __init__(self, name: str = "match", apply_to_test: bool = False, max_per_class: int = 100,
                 geometry: bool = True, coverage: bool = True, noise: bool = True):
        self.name, self.apply_to_test, self.max_per_class = name, apply_to_test, max_per_class
        self.geometry, self.coverage, self.noise = geometry, coverage, noise
        self.stats: dict | None = None

    # -- the PostStage protocol (odin/post.py) ---------------------------------------------------
    def check(self, ctx=None) -> None:
        if ctx is not None and ctx.dataset.transforms_generated:
            raise ConfigError(f"post=match with dataset={ctx.dataset.name}: the dataset remakes every generated image "
                              "itself (dataset.acquire), which expects the generator's own images; use post=none "
                              "(or another post) with it")
        if self.apply_to_test:
            raise ConfigError("post.apply_to_test=true with post=match would match the real test images to "
                              "themselves: leave it false")
        if self.max_per_class < 1:
            raise ConfigError(f"post.max_per_class={self.max_per_class} must be at least 1")

    def choose(self, ctx, images=None):
        """Fit on the run's real images, their labels unused: the training split when the dataset has one,
        else a seeded pool of its test images (odin.image_sets.real_pool)."""
        from odin.image_sets import real_pool, whole_units
        from odin.post import Chosen
        from odin.store import open_image

        labels = ctx.generated_labels
        pool, split = real_pool(ctx.dataset, labels, self.max_per_class, ctx.seed)
        if not pool:
            raise ConfigError(f"post=match found no real images of {labels} to learn their look from")
        generated = []
        if images is not None:
            sample = whole_units(images, labels, self.max_per_class, ctx.seed)
            generated = [np.asarray(open_image(images.path / r["file_name"]).convert("RGB"), np.float32) / 255
                         for r in sample.rows]
        stats = self.fit(pool, generated)
        # its own settings, not ctx.config["post"]: as a post=auto candidate that node is auto's
        config = {"_target_": f"{type(self).__module__}.{type(self).__name__}", "name": self.name,
                  "apply_to_test": self.apply_to_test, "max_per_class": self.max_per_class, **self.key_config()}
        record = {"real_split": split, "real_images": len(pool), "generated_images": len(generated),
                  "learnt": describe(stats), "stats": stats}
        return Chosen(self, config, record)

    # -- fitting and keys ------------------------------------------------------------------------
    def fit(self, real_images: list[np.ndarray], generated_images: list[np.ndarray] | None = None) -> dict:
        """Learn the real domain from float images in [0, 1] (H x W or H x W x C), and, when given, the
        generated images' geometry (so each image keeps its rank); returns the statistics."""
        if not real_images:
            raise ConfigError("post=match needs at least one real image to learn from")
        self.stats = learn([np.asarray(x, dtype=np.float32) for x in real_images])
        if self.stats["plain"] and generated_images:
            self.stats["generated"] = None
            self.stats["generated"] = _rounded(self._generated_geometry(generated_images))
        return self.stats

    def _generated_geometry(self, images: list[np.ndarray]) -> dict:
        """Quantiles of the generated subjects' geometry; the cover is measured after placing, where it is mapped."""
        st = self.stats
        drawn = [s for s in (strength(luminance(np.asarray(x, np.float32))) for x in images) if s is not None]
        found = [m for m in map(measure, drawn) if m is not None]
        out = {key: quantiles([m[key] for m in found]) for key in GEOMETRY}
        shape = self._canvas_shape()
        placed = [place(s, {**st, "generated": out}, shape) if self.geometry else resize(s, shape) for s in drawn]
        out["coverage"] = quantiles([float(s.mean()) for s in placed])
        if self.coverage:
            placed = [cover(s, to_real({**st, "generated": out}, "coverage", float(s.mean()))) for s in placed]
        h, w = st["size"]
        eh, ew, k = h // st["block"], w // st["block"], shape[0] // (h // st["block"])
        out["softness"] = quantiles([softness(s.reshape(eh, k, ew, k).mean((1, 3))) for s in placed])
        return out

    def _canvas_shape(self) -> tuple[int, int]:
        h, w = self.stats["size"]
        eh, ew = h // self.stats["block"], w // self.stats["block"]
        k = max(1, math.ceil(CANVAS / min(eh, ew)))
        return eh * k, ew * k

    def key_config(self) -> dict:
        """The mode, its switches and what was learnt: the post key changes when the real images do.

        The statistics appear as their hash: the store copies this into every image's metadata row, and
        the statistics in full (a few KB) go to metrics.json once (post.match.stats)."""
        if self.stats is None:
            raise RuntimeError("MatchPost.fit(real_images) must run before its key or its images are asked for")
        return {"mode": "match", "geometry": self.geometry, "coverage": self.coverage, "noise": self.noise,
                "stats": config_hash(self.stats)}

    # -- applying ----------------------------------------------------------------------------------
    def __call__(self, image: Image.Image, seed: int) -> Image.Image:
        x = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        out = self.apply(x, seed)
        return Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), "L" if out.ndim == 2 else "RGB")

    def apply(self, x: np.ndarray, seed: int) -> np.ndarray:
        """A generated float image in [0, 1] -> the same in the real domain (its size, channels, look)."""
        if self.stats is None:
            raise RuntimeError("MatchPost.fit(real_images) must run before apply")
        st, rng = self.stats, np.random.default_rng(seed)
        x = np.asarray(x, dtype=np.float32)
        out = self._subject(luminance(x), st) if st["plain"] else self._scene(x, st)
        if self.noise and st["noise"] > 0.5 / 255:
            out = out + rng.normal(0.0, st["noise"], out.shape).astype(np.float32)
        out = np.clip(out, 0.0, 1.0)
        if st["gray"]:
            return out if out.ndim == 2 else luminance(out)
        return out if out.ndim == 3 else np.repeat(out[..., None], 3, axis=2)

    def _subject(self, lum: np.ndarray, st: dict) -> np.ndarray:
        h, w = st["size"]
        eh, ew = h // st["block"], w // st["block"]
        shape = self._canvas_shape()
        k = shape[0] // eh
        s = strength(lum)
        canvas = np.zeros(shape, np.float32)
        if s is not None:
            canvas = place(s, st, shape) if self.geometry else resize(s, shape)
            if self.coverage:
                canvas = cover(canvas, to_real(st, "coverage", float(canvas.mean())))
        small = canvas.reshape(eh, k, ew, k).mean((1, 3))  # area average: what a coarser sensor counts
        small = soften(small, to_real(st, "softness", softness(small)))
        s_out = upsample(small, (h, w), st["resample"])
        return st["ground"] + s_out * (st["subject"] - st["ground"])

    def _scene(self, x: np.ndarray, st: dict) -> np.ndarray:
        h, w = st["size"]
        if st["gray"]:
            x = luminance(x)
        elif x.ndim == 2:
            x = np.repeat(x[..., None], 3, axis=2)
        eh, ew = h // st["block"], w // st["block"]
        x = upsample(resize(x, (eh, ew)), (h, w), st["resample"])
        channels = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
        mapped = [tone_map(c, np.asarray(q, np.float32)) for c, q in zip(channels, st["quantiles"], strict=True)]
        return mapped[0] if x.ndim == 2 else np.stack(mapped, axis=2)


# ---- learning ------------------------------------------------------------------------------------
def learn(images: list[np.ndarray]) -> dict:
    gray = all(x.ndim == 2 or np.abs(x - x.mean(axis=2, keepdims=True)).max() < 2 / 255 for x in images)
    shapes = [x.shape[:2] for x in images]
    size = tuple(int(v) for v in np.median(np.array(shapes), axis=0))
    same = [luminance(x) for x in images if x.shape[:2] == size] or [resize(luminance(images[0]), size)]
    block, resample = resolution(same)
    grounds = [ground_of(luminance(x)) for x in images]
    flat = np.mean([spread <= FLAT_BORDER for _, spread in grounds])
    stats: dict = {"gray": bool(gray), "size": list(size), "block": block, "resample": resample,
                   "plain": bool(flat >= PLAIN_SHARE), "flat_border_share": round(float(flat), 4)}
    if stats["plain"]:
        levels = [(g, subject_level(luminance(x), g)) for x, (g, _) in zip(images, grounds, strict=True)]
        stats["ground"] = float(np.median([g for g, _ in levels]))
        stats["subject"] = float(np.median([s for _, s in levels]))
        stats["geometry"] = geometry_of([luminance(x) for x in images])
        eh, ew = size[0] // block, size[1] // block
        drawn = [strength(resize(x, (eh, ew))) for x in same]
        stats["geometry"]["softness"] = quantiles([softness(d) for d in drawn if d is not None])
        stats["noise"] = float(np.median([spread for _, spread in grounds]) * 1.4826)  # MAD -> sigma
    else:
        colour = [x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2) for x in images]
        per_channel = ([np.concatenate([luminance(x).ravel() for x in images])] if gray else
                       [np.concatenate([x[..., c].ravel() for x in colour]) for c in range(3)])
        stats["quantiles"] = [np.round(np.quantile(v, QUANTILES), 5).tolist() for v in per_channel]
        stats["noise"] = float(np.median([immerkaer(resize(x, (x.shape[0] // block, x.shape[1] // block)))
                                          for x in same]))
    return _rounded(stats)


def resolution(images: list[np.ndarray]) -> tuple[int, str]:
    """(block, how to upsample back): the largest b whose b x b block means, upsampled, give the images back.

    `nearest`: the images are blocks (upscaled with nearest neighbours), found exactly; `bilinear`: a smooth
    upscale, found when reducing by b and enlarging again changes pixels by under 1% on average.
    """
    h, w = images[0].shape
    sample = np.stack(images[:200])
    factors = [b for b in range(2, min(h, w) // 4 + 1) if h % b == 0 and w % b == 0]
    blocks, smooth = [], []
    for b in factors:
        means = sample.reshape(len(sample), h // b, b, w // b, b).mean((2, 4))
        if np.abs(np.repeat(np.repeat(means, b, 1), b, 2) - sample).mean() < 0.5 / 255:
            blocks.append(b)
            continue
        back = [upsample(m, (h, w), "bilinear") for m in means]
        if np.mean([np.abs(m - x).mean() for m, x in zip(back, sample, strict=True)]) < 0.01:
            smooth.append(b)
    if blocks:
        return max(blocks), "nearest"
    return (max(smooth), "bilinear") if smooth else (1, "nearest")


def ground_of(lum: np.ndarray) -> tuple[float, float]:
    """(the border's median, its median absolute deviation): the ground's level and how flat it is."""
    t = max(1, min(lum.shape) // 16)
    border = np.concatenate([lum[:t].ravel(), lum[-t:].ravel(), lum[:, :t].ravel(), lum[:, -t:].ravel()])
    g = float(np.median(border))
    return g, float(np.median(np.abs(border - g)))


def subject_level(lum: np.ndarray, ground: float) -> float:
    """The subject's level: the pixels that differ most from the ground (its 99th percentile, signed)."""
    d = lum - ground
    far = d.ravel()[np.argsort(np.abs(d.ravel()))[int(0.99 * (d.size - 1))]]
    return float(ground + far)


def strength(lum: np.ndarray) -> np.ndarray | None:
    """How much each pixel is subject: 0 on the ground, 1 at the subject's level, whichever is brighter;
    None for a blank image."""
    g, _ = ground_of(lum)
    s_level = subject_level(lum, g)
    if abs(s_level - g) < 0.1:
        return None
    return np.clip((lum - g) / (s_level - g), 0.0, 1.0).astype(np.float32)


def measure(s: np.ndarray) -> dict | None:
    """The subject's box (fractions of the frame), centre, slant (x shift per box height) and cover."""
    from skimage import measure as sk

    mask = s > 0.5
    if not mask.any():
        return None
    parts = sk.label(mask, connectivity=2)
    areas = np.bincount(parts.ravel())
    areas[0] = 0
    mask = areas[parts] >= 0.1 * areas.max()  # specks would stretch the box
    ys, xs = np.nonzero(mask)
    h, w = s.shape
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    yc, xc = ys.mean(), xs.mean()
    var_y = ((ys - yc) ** 2).mean()
    slope = ((xs - xc) * (ys - yc)).mean() / var_y if var_y > 0 else 0.0
    return {"height": (y1 - y0) / h, "aspect": ((x1 - x0) / w) / ((y1 - y0) / h), "cy": (y0 + y1) / 2 / h,
            "cx": (x0 + x1) / 2 / w, "slant": float(slope), "coverage": float(s.mean()),
            "box": (int(y0), int(y1), int(x0), int(x1)), "mask": mask}


def geometry_of(images: list[np.ndarray]) -> dict:
    found = [m for m in (measure(s) for s in map(strength, images) if s is not None) if m is not None]
    return {key: quantiles([m[key] for m in found]) for key in (*GEOMETRY, "coverage")}


def quantiles(values: list[float]) -> list[float]:
    return np.quantile(np.asarray(values or [0.0], dtype=np.float64), QUANTILES).tolist()


def to_real(st: dict, key: str, value: float) -> float:
    """`value` of a generated image moved to the real value of the same rank (the real median without
    generated statistics)."""
    real = np.asarray(st["geometry"][key])
    generated = (st.get("generated") or {}).get(key)
    if generated is None:
        return float(np.median(real))
    rank = np.interp(value, np.asarray(generated), QUANTILES)  # outside the generated range: 0 or 1
    return float(np.interp(rank, QUANTILES, real))


def softness(s: np.ndarray) -> float:
    """The share of the subject's pixels that are only partly subject (strength 0.25 to 0.75): edges
    blurred by optics or by an upscale, at the effective resolution."""
    some = s > 0.25
    return float((some & (s < 0.75)).sum() / max(1, some.sum()))


def soften(s: np.ndarray, target: float) -> np.ndarray:
    """`s` blurred (Gaussian, the least sigma found by bisection) until its edges are as soft as `target`."""
    from scipy.ndimage import gaussian_filter

    if softness(s) >= target - 0.02:
        return s
    lo, hi = 0.0, max(s.shape) / 8
    for _ in range(8):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if softness(gaussian_filter(s, mid)) < target else (lo, mid)
    return gaussian_filter(s, hi)


def immerkaer(x: np.ndarray) -> float:
    """Gaussian noise sigma by Immerkaer's method (1996): a Laplacian-difference mask that cancels edges."""
    from scipy.ndimage import convolve

    if min(x.shape) < 3:
        return 0.0
    m = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = np.abs(convolve(x.astype(np.float32), m, mode="reflect"))[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * r.mean() / 6)


# ---- applying ------------------------------------------------------------------------------------
def place(s: np.ndarray, st: dict, shape: tuple[int, int]) -> np.ndarray:
    """The subject cut from `s`, its slant, box and centre moved to the real ones of the same rank, on a
    canvas of `shape`."""
    from scipy import ndimage

    found = measure(s)
    if found is None:
        return resize(s, shape)
    s = s * ndimage.binary_dilation(found["mask"], iterations=2)  # specks go
    shift = found["slant"] - to_real(st, "slant", found["slant"])
    if abs(shift) > 1e-3:  # shear rows about the centroid: x shift per row becomes the real slant
        yc = np.nonzero(found["mask"])[0].mean()
        s = ndimage.affine_transform(s, np.array([[1.0, 0.0], [shift, 1.0]]), offset=(0.0, -shift * yc), order=1)
        found = measure(s) or found
    y0, y1, x0, x1 = found["box"]
    ch, cw = shape
    th = to_real(st, "height", found["height"]) * ch
    tw = to_real(st, "aspect", found["aspect"]) * th * cw / ch
    fit = min(1.0, ch / th, cw / tw)  # the whole subject stays in the frame
    th, tw = max(1, round(th * fit)), max(1, round(tw * fit))
    canvas = np.zeros(shape, np.float32)
    top = int(np.clip(round(to_real(st, "cy", found["cy"]) * ch - th / 2), 0, ch - th))
    left = int(np.clip(round(to_real(st, "cx", found["cx"]) * cw - tw / 2), 0, cw - tw))
    canvas[top:top + th, left:left + tw] = resize(s[y0:y1, x0:x1], (th, tw))
    return canvas


def cover(s: np.ndarray, target: float) -> np.ndarray:
    """The subject grown or thinned (a signed distance threshold) until it covers `target` of the frame."""
    from scipy import ndimage

    mask = s > 0.5
    if not mask.any() or target <= 0:
        return s
    signed = ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)
    n = int(np.clip(round(target * s.size), 1, s.size - 1))
    return (signed <= np.partition(signed.ravel(), n)[n]).astype(np.float32)


def tone_map(x: np.ndarray, real_quantiles: np.ndarray) -> np.ndarray:
    """Histogram matching: each pixel's rank in its image goes to that quantile of the real pixels."""
    flat = x.ravel()
    order = np.sort(flat)
    rank = (np.searchsorted(order, flat, "left") + np.searchsorted(order, flat, "right")) / (2.0 * flat.size)
    return np.interp(rank, QUANTILES, real_quantiles).reshape(x.shape).astype(np.float32)


def resize(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-correct resize (Pillow's antialiased bilinear on float images), per channel."""
    shape = (int(shape[0]), int(shape[1]))
    if x.shape[:2] == shape:
        return x.astype(np.float32)
    if x.ndim == 3:
        return np.stack([resize(x[..., c], shape) for c in range(x.shape[2])], axis=2)
    im = Image.fromarray(x.astype(np.float32), "F").resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.float32)


def upsample(x: np.ndarray, shape: tuple[int, int], how: str) -> np.ndarray:
    if x.shape[:2] == tuple(shape):
        return x.astype(np.float32)
    if how == "nearest":
        by = shape[0] // x.shape[0], shape[1] // x.shape[1]
        return np.repeat(np.repeat(x, by[0], 0), by[1], 1).astype(np.float32)
    return resize(x, shape)


def luminance(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        return x.astype(np.float32)
    if x.shape[2] == 1:
        return x[..., 0].astype(np.float32)
    return (x[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def describe(stats: dict) -> dict:
    """The learnt domain in a few readable fields (for metrics.json and the log)."""
    out = {"channels": 1 if stats["gray"] else 3, "size": stats["size"], "block": stats["block"],
           "ground": "plain" if stats["plain"] else "scene", "noise": stats["noise"]}
    if stats["plain"]:
        out["polarity"] = "light subject on dark" if stats["subject"] > stats["ground"] else "dark subject on light"
        out["subject"] = {k: round(float(np.median(v)), 3) for k, v in stats["geometry"].items()}
        out["generated_geometry"] = bool(stats.get("generated"))
    return out


def _rounded(value):
    """Floats rounded to 6 digits: the same real images give the same key on every machine."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value
