"""The generated set every task starts from: prompts -> images -> (filter) -> post-processing, from the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from odin import keys
from odin.context import RunContext, generator_name
from odin.files import drawn_once
from odin.post import PostProcessor
from odin.store import Folder

log = logging.getLogger("odin.run")


@dataclass
class GeneratedSet:
    prompts: dict  # label -> LabelPrompts
    images: Folder  # as generated (and kept by the image filter)
    post_images: Folder  # after the post-processor (the same folder when it is the identity)
    post: PostProcessor  # the processor applied (post=auto: the one it chose)
    post_config: dict  # its resolved config (post=auto: the chosen candidate's): cache keys downstream use it
    metrics: dict  # the images, filter, post and prompts sections of metrics.json


def make_generated(ctx: RunContext) -> GeneratedSet:
    """Prompts, images and post-processed images of ctx.generated_labels, made once and read from the store after.

    With localize on, each image's heatmap of the label is made beside it; with filter=clip the images pass
    the filter, topped up with replacements, before post-processing.
    """
    labels, config, store = ctx.generated_labels, ctx.config, ctx.store
    heatmaps = ctx.cfg.localize.name != "none"
    with ctx.timed("prompts_s"):
        _, prompts = store.prompts(config["prompt"], ctx.prompter, labels, keys.prompt_extras(config, labels))
    if heatmaps:  # before any image: the backend can locate the label in every prompt
        from odin.localize.detection import check_backend

        check_backend(ctx.backend, prompts)
    name = generator_name(config["diffusion"])
    with ctx.timed("generate_s"):
        as_generated = store.images(config["diffusion"], ctx.backend, prompts, ctx.seed,
                                    shard=(ctx.cfg.shard, ctx.cfg.num_shards), generator_name=name, heatmaps=heatmaps)
    images, filtered = as_generated, None
    if ctx.image_filter is not None:
        from odin.filter_stage import filter_images

        def make_extra(units):
            return store.image_units(config["diffusion"], ctx.backend, units, ctx.seed, name, heatmaps=heatmaps,
                                     what="filter: replacements")

        with ctx.timed("filter_s"):
            images, filtered = filter_images(store, config["filter"], ctx.image_filter, as_generated, prompts,
                                             labels, ctx.seed, make_extra)
    with ctx.timed("choose_post_s"):
        post, post_config, choice = ctx.post.choose(ctx, images)
    with ctx.timed("post_s"):
        post_images = images if post.is_identity else store.post(post_config, post, images)

    applied = {"made": 0, "reused": 0} if post.is_identity else {"made": post_images.made, "reused": post_images.reused}
    metrics = {
        "images": {"folder": str(as_generated.path), "made": as_generated.made, "reused": as_generated.reused},
        **({"filter": filtered} if filtered else {}),
        "post": {"name": post_config.get("name", ctx.cfg.post.name), "folder": str(post_images.path), **applied,
                 **({ctx.cfg.post.name: choice} if choice else {})},  # post.auto, post.match: how it was chosen
        "prompts": {label: lp.prompts for label, lp in prompts.items()},
    }
    log.info("images: %d generated, %d reused from the store; post '%s': %d applied, %d reused",
             as_generated.made, as_generated.reused, metrics["post"]["name"], applied["made"], applied["reused"])
    generated = GeneratedSet(prompts, images, post_images, post, post_config, metrics)
    _show(ctx, generated)
    return generated


def _show(ctx: RunContext, generated: GeneratedSet) -> None:
    """The sample grid (samples.png) and the prompts, in the run dir and the logger. The grid is drawn once
    per (images, labels, count, title) and kept in the store: a rerun copies it."""
    cfg, folder = ctx.cfg, generated.post_images
    title = f"{cfg.dataset.name}: prompt={cfg.prompt._target_.rsplit('.', 1)[-1]}, post={cfg.post.name}"
    identity = keys.config_hash(folder.key, ctx.generated_labels, cfg.samples_per_class, title)
    kept = ctx.store.root / "grids" / f"{identity}.png"

    def draw(out):
        from odin.report import sample_grid

        sample_grid(folder.path, folder.rows, ctx.generated_labels, cfg.samples_per_class, out, title=title)

    grid = drawn_once(kept, ctx.out / "samples.png", draw)
    ctx.logger.log_image("samples", grid, caption=f"{cfg.diffusion._target_.rsplit('.', 1)[-1]}, "
                                                  f"post={generated.metrics['post']['name']}")
    ctx.logger.log_table("prompts", ["label", "index", "prompt"],
                         [[label, i, p] for label, lp in generated.prompts.items() for i, p in enumerate(lp.prompts)])
