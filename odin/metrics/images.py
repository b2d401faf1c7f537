"""Images from files as one tensor for the metrics: the same size, RGB or gray, exact 0-255 values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


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
