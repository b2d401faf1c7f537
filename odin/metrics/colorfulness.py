"""Colorfulness of Hasler and Süsstrunk (2003), per image, as in the paper's supplement (Figure 3).

On 0-255 RGB, with SIGNED opponent channels rg = R - G and yb = (R + G)/2 - B:
    M = sqrt(std_rg^2 + std_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2)
(population standard deviations over the image's pixels). The snippet copied around the web takes
|rg| and |yb| first; that is a different number (a red/green image scores as if it were one flat
colour), so it is not used here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PAPER_SIZE = 224  # the supplement resizes every image to 224x224 first


def colorfulness(images, size: int | None = PAPER_SIZE) -> torch.Tensor:
    """M for each RGB image of `images`: [N, 3, H, W] or one [3, H, W], values 0-255 (uint8 or float).

    Images that are not `size` x `size` are resized first (bilinear, antialiased); `size=None` keeps them
    as they are. Returns a float64 tensor of N values.
    """
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"colorfulness needs RGB images as [N, 3, H, W] (0-255), got shape {tuple(x.shape)}")
    x = x.to(torch.float64)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    red, green, blue = x.unbind(1)
    rg = (red - green).flatten(1)
    yb = ((red + green) / 2 - blue).flatten(1)
    spread = torch.sqrt(rg.var(1, correction=0) + yb.var(1, correction=0))
    offset = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return spread + 0.3 * offset
