"""Offline CPU "text-to-image": draws the label's character and reads style words in the prompt.

It exists so the whole pipeline runs without a GPU or weights, and it makes the prompt matter
the way it does for a diffusion model: style words ("handwritten", "bold", "italic", "open
four", "tilted", "blurry"...) pick the fonts or hand-drawn forms and set the ranges of stroke
width, slant, rotation, size and blur; the per-image seed draws the variation inside them.
A prompt that names no source (no typeface, handwriting or lettering word, like the paper's naive
"a photo of one seven digit") gets what a diffusion model gives a plain prompt: the seed draws the
look from the whole repertoire (any font, stroke font or hand-drawn form, stroke width, slant, size,
now and then light ink on a dark ground), so the variety comes from the seeds, not the words.

Three kinds of source:
  fonts      the TrueType fonts that ship with matplotlib (DejaVu, STIX, Computer Modern)
  hershey    vector stroke fonts, single-stroke and multi-stroke (the `hershey-fonts` package),
             drawn as polylines of varying width
  hand       a small set of hand-drawn digit skeletons with the forms that fonts lack (a 1 with
             a long flag, an open 4, a crossed 7, a 9 with a straight stem...), jittered per image

Each image is a pure function of (character, prompt, seed): the batch it arrives in changes
nothing.
"""

from __future__ import annotations

import functools
import os
import re
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from odin.characters import DIGIT_NAMES as DIGIT_NAMES  # re-exported: scripts read it from here
from odin.characters import label_to_char
from odin.errors import ConfigError
from odin.generate import GeneratedImage

# ---- style words ----------------------------------------------------------------------
# Style tag <- the prompt words and phrases that ask for it ("|"-separated). Phrases are
# matched before single words ("long flag" is not also "flag"); hyphens count as spaces
# ("single-stroke", "sans-serif", "close-up").
STYLE_WORDS = {
    "bold": "bold|thick|heavy|marker|felt",
    "thin": "thin|light|fine|hairline",
    "italic": "italic|slanted|oblique|slant|leaning",
    "back": "backslanted|backhand",
    "serif": "serif",
    "sans": "sans",
    "mono": "mono|monospace|monospaced|typewriter|typewritten",
    "font": "font|typeface|printed|typed|typeset",
    "narrow": "condensed|narrow|tall",
    "wide": "wide|extended|broad",
    "small": "small|tiny|distant",
    "large": "large|big|close up|closeup",
    "tilted": "tilted|rotated|askew|crooked",
    "slight": "slightly|a bit|a little",
    "blurry": "blurry|blurred|out of focus|unfocused",
    "hand": "handwritten|handwriting|hand written|written|pen|ballpoint|pencil|scribbled|scrawled",
    "script": "cursive|script|calligraphy",
    "single": "single stroke|plotter|engraved|stroke font",
    "neat": "neat|neatly|careful|carefully|tidy",
    "messy": "messy|hasty|hastily|sloppy|rushed|quickly",
    "centered": "centered|centred",
    "offcenter": "off center|off centre",
    "faint": "faint|grey|gray",
    "noisy": "noisy|grainy",
}
# Handwritten forms (see FORMS) <- the words that ask for them. Any of them implies handwriting.
FORM_WORDS = {
    "longflag": "long flag",
    "flag": "flag|flagged",
    "base": "base|foot",
    "open": "open|open top|open four",
    "closed": "closed|closed top",
    "crossed": "crossbar|crossed|cross",
    "straight": "straight|straight stem",
    "curved": "curved|curved stem|hooked",
    "loop": "loop|looped|loops|curly|small loop",
    "flat": "flat|flat top|angular",
    "round": "round|rounded",
}
_PHRASES = sorted(
    [(w, "style", tag) for tag, words in STYLE_WORDS.items() for w in words.split("|")]
    + [(w, "form", tag) for tag, words in FORM_WORDS.items() for w in words.split("|")],
    key=lambda t: -len(t[0]),
)


def read_style(prompt: str) -> tuple[set[str], set[str]]:
    """(style tags, form tags) named by the prompt's words."""
    text = " " + " ".join(re.findall(r"[a-z0-9]+", prompt.lower())) + " "
    found = {"style": set(), "form": set()}
    for phrase, kind, tag in _PHRASES:
        if f" {phrase} " in text:
            text = text.replace(f" {phrase} ", " | ")
            found[kind].add(tag)
    if "sans" in found["style"]:
        found["style"].discard("serif")  # "sans-serif"
    return found["style"], found["form"]


# ---- sources --------------------------------------------------------------------------
# TrueType fonts shipped with matplotlib -> the typeface tags they satisfy.
FONTS = {
    name: set(tags.split())
    for name, tags in {
        "DejaVuSans": "sans", "DejaVuSans-Bold": "sans bold", "DejaVuSans-Oblique": "sans italic",
        "DejaVuSans-BoldOblique": "sans bold italic", "DejaVuSerif": "serif", "DejaVuSerif-Bold": "serif bold",
        "DejaVuSerif-Italic": "serif italic", "DejaVuSerif-BoldItalic": "serif bold italic",
        "DejaVuSansMono": "mono sans", "DejaVuSansMono-Bold": "mono sans bold",
        "DejaVuSansMono-Oblique": "mono sans italic", "STIXGeneral": "serif", "STIXGeneralBol": "serif bold",
        "STIXGeneralItalic": "serif italic", "STIXGeneralBolIta": "serif bold italic", "cmr10": "serif",
        "cmb10": "serif bold", "cmti10": "serif italic", "cmss10": "sans", "cmtt10": "mono serif",
    }.items()
}  # fmt: skip
# Hershey vector fonts: the single-stroke ones, and the multi-stroke ones (drawn with parallel
# strokes, so they read as printed type).
HERSHEY = {
    name: set(tags.split())
    for name, tags in {
        "futural": "sans single", "rowmans": "sans single", "scripts": "script single italic",
        "cursive": "script single", "futuram": "sans bold", "rowmand": "sans bold", "rowmant": "serif bold",
        "timesr": "serif", "timesi": "serif italic", "timesrb": "serif bold", "timesib": "serif bold italic",
        "scriptc": "script italic",
    }.items()
}  # fmt: skip


def _ell(cx, cy, rx, ry, a0, a1, n=12):
    """Control points on an elliptic arc, angles in degrees counter-clockwise from 3 o'clock."""
    a = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * np.cos(t), cy - ry * np.sin(t)) for t in a]


CORNER = 1  # a third coordinate marks a sharp corner; between corners the pen moves in a smooth curve
# Hand-drawn digit skeletons in a unit box (x right, y down): form name -> (tags, strokes).
# These are the forms people write and fonts lack; the tags are what the prompt can ask for.
# fmt: off
FORMS = {
    "0": {
        "oval": ({"round", "closed"}, [_ell(0.5, 0.5, 0.5, 0.5, 95, 460, 14)]),
        "overlap": ({"loop", "closed"}, [_ell(0.5, 0.5, 0.48, 0.5, 60, 470, 15)]),
        "open": ({"open"}, [_ell(0.5, 0.5, 0.5, 0.5, 110, 420, 12)]),
    },
    "1": {
        "stick": ({"straight"}, [[(0.5, 0.0), (0.5, 1.0)]]),
        "flag": ({"flag"}, [[(0.25, 0.22), (0.55, 0.0, CORNER), (0.55, 1.0)]]),
        "longflag": ({"longflag"}, [[(0.0, 0.45), (0.62, 0.0, CORNER), (0.62, 1.0)]]),
        "base": ({"base", "flag"}, [[(0.25, 0.22), (0.55, 0.0, CORNER), (0.55, 1.0)], [(0.15, 1.0), (0.95, 1.0)]]),
    },
    "2": {
        "plain": ({"round"}, [[(0.08, 0.28), (0.3, 0.03), (0.7, 0.03), (0.92, 0.28), (0.75, 0.55),
                               (0.05, 1.0, CORNER), (0.98, 1.0)]]),
        "loop": ({"loop"}, [[(0.08, 0.28), (0.3, 0.03), (0.7, 0.03), (0.92, 0.28), (0.75, 0.55), (0.3, 0.85),
                             (0.08, 0.98), (0.05, 0.86), (0.2, 0.8), (0.35, 0.94), (0.6, 1.0), (0.98, 0.96)]]),
        "angular": ({"flat", "straight"}, [[(0.05, 0.22), (0.4, 0.0), (0.82, 0.08), (0.9, 0.3),
                                           (0.05, 1.0, CORNER), (0.98, 1.0)]]),
    },
    "3": {
        "round": ({"round", "curved"}, [[(0.1, 0.15), (0.45, 0.0), (0.85, 0.12), (0.85, 0.35), (0.4, 0.48, CORNER),
                                         (0.85, 0.6), (0.95, 0.82), (0.6, 1.0), (0.25, 1.0), (0.03, 0.85)]]),
        "flat": ({"flat", "straight"}, [[(0.08, 0.0), (0.9, 0.0, CORNER), (0.4, 0.42, CORNER), (0.8, 0.52),
                                         (0.95, 0.78), (0.6, 1.0), (0.25, 1.0), (0.03, 0.85)]]),
        "loop": ({"loop"}, [[(0.1, 0.15), (0.45, 0.0), (0.85, 0.12), (0.8, 0.38), (0.45, 0.48), (0.35, 0.44),
                             (0.45, 0.42), (0.85, 0.6), (0.95, 0.82), (0.6, 1.0), (0.25, 1.0), (0.03, 0.85)]]),
    },
    "4": {
        "closed": ({"closed"}, [[(0.7, 1.0), (0.7, 0.0, CORNER), (0.0, 0.7, CORNER), (1.0, 0.7)]]),
        "open": ({"open", "straight"}, [[(0.12, 0.0), (0.05, 0.65, CORNER), (0.98, 0.65)],
                                        [(0.72, 0.05), (0.72, 1.0)]]),
        "open_slanted": ({"open"}, [[(0.42, 0.0), (0.0, 0.65, CORNER), (0.98, 0.62)], [(0.75, 0.15), (0.7, 1.0)]]),
    },
    "5": {
        "flag": ({"flag", "flat"}, [[(0.2, 0.04), (0.15, 0.45, CORNER), (0.5, 0.38), (0.85, 0.52), (0.9, 0.78),
                                     (0.6, 0.98), (0.25, 1.0), (0.02, 0.85)], [(0.25, 0.0), (0.95, -0.02)]]),
        "joined": ({"straight", "closed"}, [[(0.95, 0.0), (0.22, 0.02, CORNER), (0.15, 0.45, CORNER), (0.5, 0.38),
                                             (0.85, 0.52), (0.9, 0.78), (0.6, 0.98), (0.25, 1.0), (0.02, 0.85)]]),
        "round": ({"round", "curved"}, [[(0.92, 0.0), (0.35, 0.02), (0.2, 0.15), (0.18, 0.45, CORNER), (0.6, 0.4),
                                         (0.92, 0.65), (0.75, 0.95), (0.35, 1.0), (0.05, 0.88)]]),
    },
    "6": {
        "round": ({"round", "curved", "loop"}, [[(0.8, 0.02), (0.45, 0.1), (0.15, 0.45), (0.08, 0.75), (0.3, 1.0),
                                                 (0.7, 0.98), (0.92, 0.75), (0.7, 0.5), (0.35, 0.52),
                                                 (0.12, 0.72)]]),
        "straight": ({"straight"}, [[(0.75, 0.0), (0.35, 0.3), (0.12, 0.65), (0.2, 0.95), (0.55, 1.0),
                                     (0.88, 0.82), (0.8, 0.55), (0.45, 0.5), (0.15, 0.68)]]),
        "small_loop": ({"loop"}, [[(0.85, 0.05), (0.4, 0.15), (0.12, 0.55), (0.15, 0.9), (0.45, 1.0),
                                   (0.78, 0.9), (0.75, 0.68), (0.45, 0.65), (0.15, 0.8)]]),
        "open_loop": ({"open"}, [[(0.8, 0.02), (0.45, 0.1), (0.15, 0.45), (0.08, 0.75), (0.3, 1.0), (0.7, 0.98),
                                  (0.92, 0.75), (0.75, 0.55), (0.5, 0.52)]]),
    },
    "7": {
        "plain": ({"straight"}, [[(0.02, 0.02), (0.97, 0.0, CORNER), (0.35, 1.0)]]),
        "crossed": ({"crossed"}, [[(0.02, 0.02), (0.97, 0.0, CORNER), (0.35, 1.0)], [(0.22, 0.52), (0.85, 0.5)]]),
        "curved": ({"curved", "round"}, [[(0.02, 0.02), (0.97, 0.0, CORNER), (0.7, 0.35), (0.5, 0.7), (0.45, 1.0)]]),
        "crossed_curved": ({"crossed", "curved"}, [[(0.02, 0.02), (0.97, 0.0, CORNER), (0.7, 0.35), (0.5, 0.7),
                                                    (0.45, 1.0)], [(0.3, 0.5), (0.9, 0.47)]]),
        "hook": ({"flag"}, [[(0.02, 0.2), (0.05, 0.0, CORNER), (0.97, 0.02, CORNER), (0.4, 1.0)]]),
    },
    "8": {
        "stacked": ({"round", "closed"}, [_ell(0.5, 0.25, 0.34, 0.25, 270, 640, 12),
                                          _ell(0.5, 0.73, 0.46, 0.27, 90, 460, 12)]),
        "figure": ({"loop", "curved"}, [[(0.75, 0.12), (0.5, 0.0), (0.22, 0.12), (0.25, 0.35), (0.5, 0.48),
                                         (0.85, 0.65), (0.85, 0.9), (0.5, 1.0), (0.15, 0.9), (0.15, 0.65),
                                         (0.5, 0.48), (0.75, 0.35), (0.78, 0.15), (0.65, 0.03)]]),
    },
    "9": {
        "straight": ({"straight"}, [_ell(0.45, 0.28, 0.42, 0.28, 0, 360, 12)[:-1]
                                    + [(0.87, 0.28, CORNER), (0.84, 1.0)]]),
        "curved": ({"curved", "round"}, [_ell(0.45, 0.28, 0.42, 0.28, 0, 360, 12)[:-1]
                                         + [(0.87, 0.28, CORNER), (0.84, 0.7), (0.6, 0.97), (0.22, 0.92)]]),
        "closed": ({"closed", "loop"}, [_ell(0.45, 0.3, 0.42, 0.3, -10, 360, 13) + [(0.85, 0.6), (0.7, 1.0)]]),
        "open": ({"open"}, [_ell(0.47, 0.3, 0.4, 0.28, 40, 330, 10), [(0.88, 0.02), (0.86, 0.5), (0.8, 1.0)]]),
    },
}
# fmt: on
# The share of images a prompt without a source word draws light on dark: a diffusion model's plain
# "a photo of one seven digit" shows signs, screens and boards as well as paper.
LIGHT_ON_DARK = 0.2
HAND_ASPECT = 0.62  # skeletons are drawn in a unit box; handwritten digits are about this wide


def _spline(p: np.ndarray, k: int = 6) -> np.ndarray:
    """Catmull-Rom curve through the points (two points: a straight line)."""
    if len(p) < 3:
        return p
    q = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    a, b, c, d = q[:-3, None], q[1:-2, None], q[2:-1, None], q[3:, None]  # every span at once: span x t x xy
    t = np.linspace(0, 1, k, endpoint=False)[:, None]
    spans = 0.5 * (2 * b + (c - a) * t + (2 * a - 5 * b + 4 * c - d) * t**2 + (3 * b - a - 3 * c + d) * t**3)
    return np.vstack([spans.reshape(-1, p.shape[1]), p[-1:]])


def _stroke_path(ctrl: np.ndarray, corners: list[int]) -> np.ndarray:
    """Smooth pieces between corners, joined into one polyline."""
    cuts = [0, *corners, len(ctrl) - 1]
    pieces = [_spline(ctrl[a : b + 1]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return np.vstack([pieces[0]] + [piece[1:] for piece in pieces[1:]])


@functools.cache
def _hershey_font(font: str):
    from HersheyFonts import HersheyFonts  # imported here: only the glyph backend needs it

    h = HersheyFonts()
    h.load_default_font(font)
    return h


@functools.cache
def _hershey_strokes(font: str, char: str) -> tuple[np.ndarray, ...]:
    return tuple(np.array(s, dtype=float) for s in _hershey_font(font).strokes_for_text(char) if len(s) > 1)


@functools.cache
def _font_mask(font: str, char: str) -> Image.Image:
    """The character in a TrueType font as an ink mask (255 = ink), cropped to its ink."""
    import matplotlib  # only for where its fonts live

    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", font + ".ttf")
    face = ImageFont.truetype(path, 160)
    im = Image.new("L", (320, 320), 0)
    ImageDraw.Draw(im).text((80, 40), char, font=face, fill=255)
    return im.crop(im.getbbox())


# ---- drawing --------------------------------------------------------------------------
def _draw_strokes(draw: ImageDraw.ImageDraw, paths: list[np.ndarray], width: float, rng, pressure: float):
    """Polylines with round joints; the width swells and thins along each stroke like a pen."""
    for path in paths:
        n = len(path)
        phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
        widths = width * (1 + pressure * np.sin(phase + freq * np.pi * np.linspace(0, 1, n)))
        # plain floats: PIL takes them as they are, and Python's arithmetic on them is quicker than numpy's
        points, widths = [tuple(p) for p in path.tolist()], widths.tolist()
        for i in range(n):
            x, y = points[i]
            r = max(widths[i] / 2, 0.75)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
            if i + 1 < n:
                draw.line([points[i], points[i + 1]], fill=255, width=max(1, round(widths[i])))


def _affine(rng, p: dict, bbox: tuple[float, float, float, float], canvas: int, extra: float = 0.0):
    """Matrix A and offset t that place a glyph's box (x0, y0, x1, y1) in the canvas: glyph
    coordinates g go to A @ g + t. Aspect, shear, rotation, height and position come from the
    style's ranges, drawn with the image's rng."""
    x0, y0, x1, y1 = bbox
    height = p["height"] * canvas
    theta = np.radians(rng.uniform(-p["rotate"], p["rotate"]))
    shear = rng.uniform(*p["shear"])
    m = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    m = m @ np.array([[1.0, -shear], [0.0, 1.0]]) @ np.diag([rng.uniform(*p["aspect"]), 1.0])
    a = m * height / max(y1 - y0, 1e-6)
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) - [(x0 + x1) / 2, (y0 + y1) / 2]
    ext = np.ptp(corners @ a.T, axis=0) + 2 * extra * height
    if ext.max() > 0.94 * canvas:  # keep the whole glyph in the frame
        a, ext = a * 0.94 * canvas / ext.max(), ext * 0.94 * canvas / ext.max()
    free = np.maximum(canvas - ext, 0) / 2
    centre = canvas / 2 + rng.uniform(-1, 1, 2) * free * p["position"]
    return a, centre - a @ [(x0 + x1) / 2, (y0 + y1) / 2]


def _wobble(rng, pts: np.ndarray, amount: float) -> np.ndarray:
    """A smooth random displacement field (two low-frequency waves per axis): the hand's
    slow drift that jitter of single points does not give."""
    if amount <= 0:
        return pts
    out = pts.copy()
    for axis in (0, 1):
        f = rng.uniform(1, 3, (2, 2))
        ph = rng.uniform(0, 2 * np.pi, 2)
        out[:, axis] += amount * np.sin(pts @ f[0] * np.pi + ph[0]) + 0.5 * amount * np.sin(pts @ f[1] * np.pi + ph[1])
    return out


class GlyphGenerator:
    """Offline text-to-image for digit and letter labels; see the module docstring."""

    cache_version = 2  # bump whenever the same (label, prompt, seed) starts to draw another image
    parallel = True  # plain CPU drawing: the store may make units in forked worker processes

    def __init__(self, size: int = 64, images_per_prompt: int = 20, batch_size: int = 64, prompts_per_label: int = 100):
        # prompts_per_label is read by the prompt config (prompt.num_prompts), not here
        self.size, self.images_per_prompt, self.batch_size = size, images_per_prompt, batch_size

    def resolved(self) -> dict:
        return {}  # nothing is chosen at run time: the config is what was used

    def check(self, labels: list[str]) -> None:
        if not labels:
            raise ConfigError("glyph got no labels: give digits (0-9 or zero..nine) or single letters")
        for label in labels:
            if label_to_char(str(label)) is None:
                raise ConfigError(
                    f"glyph cannot draw label {label!r}: it draws digits (0-9 or zero..nine) and single "
                    "letters; use a real text-to-image backend (diffusion=sd2) for other classes"
                )

    def check_heatmaps(self, prompts: dict[str, list[str]]) -> None:
        """Any prompt works: the heatmap is the ink, and the ink is always the label's character."""

    def __call__(self, label: str, prompts: list[str], seeds: list[int],
                 heatmaps: bool = False) -> list[GeneratedImage]:
        if len(prompts) != len(seeds):
            raise ConfigError(f"glyph got {len(prompts)} prompts but {len(seeds)} seeds")
        self.check([label])
        pairs = list(zip(prompts, seeds, strict=True))
        out = []
        for start in range(0, len(pairs), max(1, self.batch_size)):  # batches only chunk the work
            out += [self.draw(label, p, s, heatmaps) for p, s in pairs[start : start + self.batch_size]]
        return out

    # -- one image --
    def params(self, styles: set[str], hand: bool, varied: bool = False) -> dict:
        """Ranges the seed draws from. Style words without a source word ("tilted", "blurry") narrow
        one range each around an upright, plain glyph; `varied` (the prompt names no source) opens
        every range, as a diffusion model's seed does for a plain prompt."""
        slight = 0.5 if "slight" in styles else 1.0
        p = {
            "rotate": 3.0, "shear": (-0.04, 0.04), "aspect": (0.93, 1.07), "height": (0.6, 0.72),
            "position": 0.15, "width": (0.07, 0.11), "jitter": 0.02, "wobble": 0.045, "blur": (0.0, 0.0),
            "ink": (10, 50), "paper": (215, 250), "noise": 2.0,
        }  # fmt: skip
        if styles or hand or varied:  # any style at all: the glyph may sit anywhere, at any size
            p.update(height=(0.5, 0.8), position=0.5)
        if hand or varied:  # people slant, tilt and stretch their digits
            p.update(shear=(-0.15, 0.3), aspect=(0.8, 1.2), rotate=10.0)
        if varied:  # from hairline to marker
            p.update(width=(0.05, 0.17))
        for word, key, value in [
            ("tilted", "rotate", 20.0 * slight), ("italic", "shear", (0.15 * slight, 0.4 * slight)),
            ("back", "shear", (-0.35 * slight, -0.12 * slight)), ("narrow", "aspect", (0.55, 0.8)),
            ("wide", "aspect", (1.25, 1.6)), ("bold", "width", (0.13, 0.2)), ("thin", "width", (0.035, 0.055)),
            ("neat", "jitter", 0.01), ("neat", "wobble", 0.025), ("messy", "jitter", 0.03),
            ("messy", "wobble", 0.07), ("blurry", "blur", (0.8 * slight, 2.0 * slight)), ("faint", "ink", (70, 140)),
            ("noisy", "noise", 8.0), ("centered", "position", 0.1), ("offcenter", "position", 1.0),
            ("small", "height", (0.3, 0.45)), ("large", "height", (0.8, 0.92)),
        ]:  # fmt: skip
            if word in styles:
                p[key] = value
        return p

    def sources(self, char: str, styles: set[str], forms: set[str]) -> list[tuple[str, str]]:
        """(kind, name) candidates the prompt's words allow for this character."""
        hand = "hand" in styles or bool(forms)
        out = []
        if hand:
            if char in FORMS:
                named = [n for n, (tags, _) in FORMS[char].items() if tags & forms]
                out += [("hand", n) for n in named or FORMS[char]]
            else:  # letters have no skeletons: the hand-like vector fonts
                out += [("hershey", n) for n in ("scripts", "cursive", "futural", "rowmans")]
        if "script" in styles:
            out += [("hershey", n) for n, tags in HERSHEY.items() if "script" in tags]
        if "single" in styles:
            out += [("hershey", n) for n, tags in HERSHEY.items() if "single" in tags]
        typeface = styles & {"serif", "sans", "mono", "bold", "italic"}
        if "font" in styles or styles & {"serif", "sans", "mono"} or (typeface and not out):
            fonts = [("font", n) for n, tags in FONTS.items() if typeface <= tags]
            fonts += [("hershey", n) for n, tags in HERSHEY.items() if typeface <= tags and "mono" not in typeface]
            out += fonts or [("font", n) for n in FONTS]
        return out  # empty: the prompt names no source (see repertoire)

    def repertoire(self, char: str) -> dict[str, list[str]]:
        """Every source that can draw the character, by kind: what a prompt naming none draws from."""
        kinds = {"font": list(FONTS), "hershey": list(HERSHEY)}
        if char in FORMS:
            kinds["hand"] = list(FORMS[char])
        return kinds

    def draw(self, label: str, prompt: str, seed: int, heatmap: bool = False) -> GeneratedImage:
        char = label_to_char(str(label))
        if char is None:
            self.check([label])
        rng = np.random.default_rng([int(seed) % 2**64, zlib.crc32(char.encode()), zlib.crc32(prompt.encode())])
        styles, forms = read_style(prompt)
        if char not in FORMS:
            forms = set()  # form words are about digits; for a letter they mean nothing
        sources = self.sources(char, styles, forms)
        if sources:
            kind, name = sources[rng.integers(len(sources))]
        else:  # the seed picks the kind first, so each kind is as likely however many fonts there are
            kinds = self.repertoire(char)
            kind = sorted(kinds)[rng.integers(len(kinds))]
            name = kinds[kind][rng.integers(len(kinds[kind]))]
        p = self.params(styles, hand=kind == "hand" or "hand" in styles, varied=not sources)
        p["height"] = rng.uniform(*p["height"])  # drawn here: _affine takes one height
        canvas = 2 * self.size  # drawn at twice the size and reduced: smooth edges
        width = rng.uniform(*p["width"])

        mask = Image.new("L", (canvas, canvas), 0)
        if kind == "font":
            glyph = _font_mask(name, char)
            a, t = _affine(rng, p, (0, 0, *glyph.size), canvas)
            inv = np.linalg.inv(a)  # PIL maps each output pixel back to an input pixel
            c = -inv @ t
            data = (inv[0, 0], inv[0, 1], c[0], inv[1, 0], inv[1, 1], c[1])
            mask = glyph.transform((canvas, canvas), Image.AFFINE, data, Image.BILINEAR)
            if "thin" in styles:
                mask = mask.filter(ImageFilter.MinFilter(5))
            elif "bold" in styles:
                mask = mask.filter(ImageFilter.MaxFilter(3))
        else:
            if kind == "hand":
                strokes = FORMS[char][name][1]
                paths = []
                for s in strokes:
                    ctrl = np.array([q[:2] for q in s], dtype=float)
                    ctrl += rng.normal(0, p["jitter"], ctrl.shape)  # each control point lands a bit off
                    paths.append(_stroke_path(ctrl, [i for i, q in enumerate(s) if len(q) > 2]))
                # Proportions vary between writers: where the middle sits (a 9's loop, a 4's bar,
                # an 8's waist) and whether the top or the bottom is wider.
                gamma, taper = np.exp(rng.uniform(-0.35, 0.35)), rng.uniform(-0.4, 0.4)
                for q in paths:
                    q[:, 1] = np.clip(q[:, 1], 0, None) ** gamma
                    q[:, 0] = 0.5 + (q[:, 0] - 0.5) * (1 + taper * (q[:, 1] - 0.5))
                paths = [_wobble(rng, q, p["wobble"]) * [HAND_ASPECT, 1.0] for q in paths]
                pressure = 0.2
            else:
                paths = [_wobble(rng, q / 21.0, p["wobble"] / 3) for q in _hershey_strokes(name, char)]
                pressure = 0.1
                if "single" not in HERSHEY[name]:  # parallel strokes already give the weight
                    width, pressure = width / 2, 0.0
            allpts = np.vstack(paths)
            bbox = (*allpts.min(0), *allpts.max(0))
            a, t = _affine(rng, p, bbox, canvas, extra=width / 2)
            # the stroke width is a fraction of the glyph's height, whatever the glyph's units
            px_width = max(2.0, width * np.abs(np.linalg.det(a)) ** 0.5 * (bbox[3] - bbox[1]))
            _draw_strokes(ImageDraw.Draw(mask), [q @ a.T + t for q in paths], px_width, rng, pressure)

        mask = mask.resize((self.size, self.size), Image.BOX)
        blur = rng.uniform(*p["blur"]) * self.size / 64
        if blur > 0:
            mask = mask.filter(ImageFilter.GaussianBlur(blur))
        # Ink on paper, with a little sensor noise: a photo of a written character.
        m = np.asarray(mask, dtype=np.float32) / 255
        paper, ink = rng.uniform(*p["paper"]), rng.uniform(*p["ink"])
        if not sources and rng.random() < LIGHT_ON_DARK:  # a lit sign, chalk on a board, a screen
            paper, ink = ink, paper
        img = paper - (paper - ink) * m + rng.normal(0, p["noise"], m.shape)
        image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
        # The exact ink mask as the heatmap: every pixel the character covers at all. Binary, so any
        # threshold (a fraction of the maximum or Otsu) gives this mask and its box.
        ink = (m > 0).astype(np.float32) if heatmap else None
        return GeneratedImage(image, {"font": f"{kind}:{name}", "styles": sorted(styles | forms)}, ink)
