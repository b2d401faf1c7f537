"""Typed config schema of post=match (dataclasses only: composing a config never imports numpy).

conf/post/match.yaml starts with `- /schema/post/match@_here_`; odin.config stores it with the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MatchPostConfig:
    _target_: str = "odin.match.MatchPost"
    name: str = "match"
    apply_to_test: bool = False  # must stay false: the real test images are what is matched
    max_per_class: int = 100  # real images per class learnt from (and generated ones, for their geometry)
    geometry: bool = True  # a subject on a plain ground: slant, box, centre moved to the real ones by rank
    coverage: bool = True  # ... and how much of the frame it covers (stroke width)
    noise: bool = True  # the real images' noise level, seeded per image
