"""Images as one tensor for the metrics: from files (exact 0-255 values) or from float arrays; one size, RGB or gray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's convert("L")


def load_images(paths: list[str | Path], size: int | None = None, gray: bool = False) -> torch.Tensor:
    """[N, C, size, size] uint8 (C = 1 if gray else 3). `size=None` keeps the files' size, which must then agree.

    Resized with PIL's bicubic filter; uint8 so SSIM takes data_range 255 from the dtype, as scikit-image does.
    """
    arrays = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("L" if gray else "RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            arrays.append(np.asarray(im))
    if not arrays:
        raise ValueError("load_images got no paths")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images differ in size {sorted(shapes)}; give size= (e.g. the diversity settings' size)")
    stacked = torch.from_numpy(np.stack(arrays))
    return stacked.unsqueeze(1) if gray else stacked.permute(0, 3, 1, 2).contiguous()


def as_tensor(images: list[np.ndarray], size: int, gray: bool) -> torch.Tensor:
    """float arrays in [0, 1] (HxW or HxWxC) -> [N, C, size, size] float64 in [0, 1] (C = 1 when gray)."""
    out = []
    for a in images:
        x = torch.as_tensor(np.asarray(a, dtype=np.float64))
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
        if gray and x.shape[0] == 3:
            x = torch.tensordot(torch.tensor(LUMA, dtype=x.dtype), x, dims=1)[None]
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        out.append(x.clamp(0, 1))
    return torch.stack(out)
