"""The label tokens' cross-attention maps of a diffusers UNet, accumulated while the pipeline runs.

DAAM's aggregation (Tang et al., ACL 2023) through diffusers' own attention-processor API (the
`daam` package pins diffusers 0.21): every cross-attention layer (attn2) gets a processor that lets
the layer's original processor compute its output untouched, then recomputes the attention
probabilities of the conditional half of the batch explicitly (q k^T softmax; cheap, the keys are
the prompt's 77 tokens), averages them over heads, keeps the label's token columns, upsamples the
map to the latent resolution and adds it to one running map per image. Self-attention layers keep
their processors. Memory is one (images, latent h, latent w) float32 map whatever the step count.

    with AttentionHeatmaps(pipe, label, prompts) as maps:   # prompts: one per image, in output order
        images = pipe(prompt=prompts, ...).images
    heat = maps.heatmaps(size=(height, width))               # float32 (H, W) arrays in [0, 1]

Entering swaps the UNet's cross-attention processors and leaving puts the originals back; with a
`torch.compile`d UNet that swap may cost a recompilation per call (not measured here).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class LabelNotInPromptError(ValueError):
    pass


def label_token_positions(tokenizer, prompt: str, label: str) -> list[int]:
    """Positions of the label's tokens in the prompt as the pipeline tokenizes it (with its start
    token, truncated to `model_max_length`): every occurrence, multi-token labels whole, any case."""
    ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids
    # The label as given and as spelled in the prompt: a cased tokenizer gives each spelling its own
    # tokens (CLIP's lowercases, so they coincide). A leading space matters to byte-level BPEs.
    spellings = {label, label.lower(), *(m.group(0) for m in re.finditer(re.escape(label), prompt, re.IGNORECASE))}
    positions: set[int] = set()
    for text in spellings:
        for variant in (text, " " + text):
            needle = tokenizer(variant, add_special_tokens=False).input_ids
            for start in range(len(ids) - len(needle) + 1) if needle else ():
                if ids[start : start + len(needle)] == needle:
                    positions.update(range(start, start + len(needle)))
    if not positions:
        raise LabelNotInPromptError(
            f"label '{label}' is not among the tokens of prompt '{prompt}' (the first "
            f"{tokenizer.model_max_length} tokens, as the pipeline's tokenizer splits them), so its attention "
            "cannot be located. Every prompt must contain the label as a word: fix the prompt generator's "
            "template or its outputs, or turn localization off (localize=none)."
        )
    return sorted(positions)


def check_label_in_prompts(tokenizer, label: str, prompts: list[str]) -> None:
    """Fail before any image is made if some prompts lack the label's tokens, naming them all (up to 5)."""
    bad = []
    for prompt in dict.fromkeys(prompts):
        try:
            label_token_positions(tokenizer, prompt, label)
        except LabelNotInPromptError:
            bad.append(prompt)
    if bad:
        shown = "; ".join(repr(p) for p in bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise LabelNotInPromptError(
            f"label '{label}' is not among the tokens of {len(bad)} prompt(s): {shown}. Every prompt must contain "
            "the label as a word (within the tokenizer's first "
            f"{tokenizer.model_max_length} tokens): fix the prompt generator's template or its outputs, or turn "
            "localization off (localize=none)."
        )


class AttentionHeatmaps:
    """While open, the pipeline's UNet adds the label tokens' cross-attention to one map per image."""

    def __init__(self, pipe, label: str, prompts: list[str]):
        self.unet = getattr(pipe, "unet", None)
        if self.unet is None:
            raise ValueError(
                f"localize=attention needs a UNet pipeline (Stable Diffusion 1.x, 2.x, XL); {type(pipe).__name__} "
                "has none (transformer denoisers use joint attention, not cross-attention maps)"
            )
        if not prompts:
            raise ValueError("AttentionHeatmaps needs one prompt per image")
        self.vae_scale_factor = getattr(pipe, "vae_scale_factor", 8)
        keys = pipe.tokenizer.model_max_length
        positions = {p: label_token_positions(pipe.tokenizer, p, label) for p in dict.fromkeys(prompts)}
        self.tokens = torch.zeros(len(prompts), keys)  # (images, keys): 1 at the label's tokens
        for i, prompt in enumerate(prompts):
            self.tokens[i, positions[prompt]] = 1.0
        self.accumulator: torch.Tensor | None = None  # (images, latent h, latent w), float32, on the UNet's device
        self.latent_size: tuple[int, int] | None = None
        self.updates = 0  # cross-attention calls added (layers x steps)
        self._originals: dict[str, Any] | None = None
        self._device_tokens: torch.Tensor | None = None

    # ---- attach / detach -----------------------------------------------------------------
    def __enter__(self) -> AttentionHeatmaps:
        self._originals = self.unet.attn_processors
        processors = {
            name: _LabelAttention(proc, self) if self._is_cross_attention(name) else proc
            for name, proc in self._originals.items()
        }
        if not any(isinstance(p, _LabelAttention) for p in processors.values()):
            raise ValueError(f"{type(self.unet).__name__} has no cross-attention layers to take heatmaps from")
        self.unet.set_attn_processor(processors)
        self._hook = self.unet.register_forward_pre_hook(self._read_latent_size, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self._hook.remove()
        self.unet.set_attn_processor(self._originals)  # the very objects it had: nothing else changes

    def _is_cross_attention(self, name: str) -> bool:
        return bool(getattr(self.unet.get_submodule(name.removesuffix(".processor")), "is_cross_attention", False))

    def _read_latent_size(self, module, args, kwargs) -> None:
        sample = args[0] if args else kwargs["sample"]
        self.latent_size = tuple(sample.shape[-2:])

    # ---- accumulate ----------------------------------------------------------------------
    @torch.no_grad()
    def add(self, attn, hidden_states: torch.Tensor, context: torch.Tensor, attention_mask, temb) -> None:
        """Add one cross-attention layer's label map (conditional half of the batch) to the running map."""
        n = self.tokens.shape[0]
        if hidden_states.shape[0] not in (n, 2 * n):
            raise RuntimeError(
                f"AttentionHeatmaps was given {n} prompts but the UNet runs a batch of {hidden_states.shape[0]}: "
                "pass one prompt per generated image, in the pipeline's output order"
            )
        # Classifier-free guidance batches [unconditional, conditional]: the conditional half is last.
        x, ctx = hidden_states[-n:], context[-n:]
        if attn.spatial_norm is not None:  # the same input preparation as diffusers' processors
            x = attn.spatial_norm(x, temb)
        if x.ndim == 4:
            x = x.flatten(2).transpose(1, 2)
        if attn.group_norm is not None:
            x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            ctx = attn.norm_encoder_hidden_states(ctx)
        q, k = attn.to_q(x), attn.to_k(ctx)
        heads = attn.heads
        q = q.view(n, -1, heads, q.shape[-1] // heads).transpose(1, 2)
        k = k.view(n, -1, heads, k.shape[-1] // heads).transpose(1, 2)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        scores = (q.float() @ k.float().transpose(-1, -2)) * attn.scale  # (n, heads, pixels, keys)
        if attention_mask is not None:
            mask = attn.prepare_attention_mask(attention_mask, k.shape[2], hidden_states.shape[0])
            scores = scores + mask.view(hidden_states.shape[0], heads, -1, k.shape[2])[-n:].float()
        tokens = self._tokens_on(scores.device, k.shape[2])
        label_map = torch.einsum("nhpk,nk->np", scores.softmax(-1), tokens) / heads  # (n, pixels)
        self._accumulate(label_map)

    def _tokens_on(self, device: torch.device, keys: int) -> torch.Tensor:
        """The token mask on the UNet's device, copied once: a host-to-device copy in every layer
        would stall the GPU's queue."""
        if self._device_tokens is None or self._device_tokens.device != device or self._device_tokens.shape[1] != keys:
            padded = F.pad(self.tokens, (0, max(0, keys - self.tokens.shape[1])))[:, :keys]
            self._device_tokens = padded.to(device)
        return self._device_tokens

    def _accumulate(self, label_map: torch.Tensor) -> None:
        lh, lw = self.latent_size
        h, w = _layer_grid(label_map.shape[1], lh, lw)
        up = F.interpolate(label_map.view(-1, 1, h, w), size=(lh, lw), mode="bilinear", align_corners=False)[:, 0]
        if self.accumulator is None:
            self.accumulator = torch.zeros_like(up)
        self.accumulator += up  # in place: one map per image, however many steps and layers
        self.updates += 1

    # ---- read out ------------------------------------------------------------------------
    def heatmaps(self, size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """One float32 (H, W) map per image, min-max normalised to [0, 1]; `size` is (height, width),
        by default the latent size times the VAE's scale factor (the image size)."""
        if self.accumulator is None:
            raise RuntimeError(
                "no cross-attention was recorded: call the pipeline inside `with AttentionHeatmaps(...)`"
            )
        if size is None:
            size = (self.latent_size[0] * self.vae_scale_factor, self.latent_size[1] * self.vae_scale_factor)
        maps = F.interpolate(self.accumulator[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
        low = maps.amin(dim=(1, 2), keepdim=True)
        span = maps.amax(dim=(1, 2), keepdim=True) - low
        maps = torch.where(span > 0, (maps - low) / span.clamp_min(1e-12), torch.zeros_like(maps))
        return list(maps.cpu().numpy().astype(np.float32))


class _LabelAttention:
    """A cross-attention processor: the layer's own processor makes the output (so images are
    byte-identical with and without localization); the label's map is taken on the side."""

    def __init__(self, original, heatmaps: AttentionHeatmaps):
        self.original, self.heatmaps = original, heatmaps

    # The signature of diffusers' AttnProcessor2_0: `Attention.forward` passes on only the keyword
    # arguments a processor's signature names.
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kw):
        if temb is not None:
            kw["temb"] = temb
        out = self.original(
            attn, hidden_states, *args, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, **kw
        )
        if encoder_hidden_states is not None:
            self.heatmaps.add(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        return out


def _layer_grid(pixels: int, latent_h: int, latent_w: int) -> tuple[int, int]:
    """The (h, w) of a layer with `pixels` positions: the latent grid halved k times (rounding up,
    as the UNet's stride-2 convolutions do)."""
    h, w = latent_h, latent_w
    while h * w > pixels:
        h, w = -(-h // 2), -(-w // 2)
    if h * w != pixels:
        raise RuntimeError(f"a cross-attention layer of {pixels} positions does not fit latent {latent_h}x{latent_w}")
    return h, w


def generate_with_heatmaps(
    pipe, prompts: list[str], label: str, generators, size: tuple[int, int] | None = None, **pipe_kwargs
) -> tuple[list, list[np.ndarray]]:
    """Run `pipe(prompt=prompts, generator=generators, **pipe_kwargs)` and return (images, heatmaps),
    one heatmap per image at the image's size."""
    with AttentionHeatmaps(pipe, label, prompts) as maps:
        images = pipe(prompt=prompts, generator=generators, **pipe_kwargs).images
    if size is None and images and hasattr(images[0], "size"):
        size = images[0].size[::-1]  # PIL gives (width, height)
    return list(images), maps.heatmaps(size)
