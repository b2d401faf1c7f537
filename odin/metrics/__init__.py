"""Image-set analyses: pairwise SSIM diversity and colorfulness."""
