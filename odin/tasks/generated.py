"""The generated set every task starts from: prompts -> images -> post-processing, all from the store."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from odin import keys
from odin.store import Folder, Store

log = logging.getLogger("odin.run")


@dataclass
class Generated:
    prompts: dict  # label -> LabelPrompts
    images: Folder  # as generated
    post_images: Folder  # after the post-processor (the same folder when it is the identity)
    post: object  # the PostProcessor used (post=auto: the one it chose)
    post_config: dict  # its resolved config (post=auto: the chosen candidate's), for cache keys downstream
    metrics: dict


def generate(cfg, plain: dict, labels: list[str], prompter, backend, post, store: Store, timing: dict,
             choose=None, heatmaps: bool = False, image_filter=None) -> Generated:
    """Prompts, images and post-processed images of `labels`, made once and read from the store after.

    `heatmaps`: each image's heatmap of the label beside it (localize). `choose(images) -> (processor,
    config, record)` replaces a post-processor that must be chosen
    (post=auto) by the one chosen; its record goes into the metrics (`post.auto`). `image_filter` (a
    ClipFilter, filter=clip): the generated images pass it, topped up with replacements, before post.
    """
    from odin.run import generator_name, timed

    with timed(timing, "prompts_s"):
        _, prompts = store.prompts(plain["prompt"], prompter, labels, keys.prompt_extras(plain, labels))
    if heatmaps:  # before any image: the backend can locate the label in every prompt
        from odin.localize.detection import check_backend

        check_backend(backend, prompts)
    with timed(timing, "generate_s"):
        images = store.images(plain["diffusion"], backend, prompts, cfg.seed, shard=(cfg.shard, cfg.num_shards),
                              generator_name=generator_name(plain["diffusion"]), heatmaps=heatmaps)
    generated, filtered = images, None
    if image_filter is not None:
        from odin.filter_stage import filter_images

        def make_extra(units):
            return store.image_units(plain["diffusion"], backend, units, cfg.seed, generator_name(plain["diffusion"]),
                                     heatmaps=heatmaps, what="filter: replacements")

        with timed(timing, "filter_s"):
            images, filtered = filter_images(store, plain["filter"], image_filter, generated, prompts, labels,
                                             cfg.seed, make_extra)
    post_config, auto = plain["post"], None
    if choose is not None:
        with timed(timing, "choose_post_s"):
            post, post_config, auto = choose(images)
    with timed(timing, "post_s"):
        post_images = images if post.is_identity else store.post(post_config, post, images)

    name = post_config.get("name", cfg.post.name)
    metrics = {
        "task": cfg.task.name, "labels": labels, "store": str(store.root),
        "images": {"folder": str(generated.path), "made": generated.made, "reused": generated.reused},
        **({"filter": filtered} if filtered else {}),
        "post": {"name": name, "folder": str(post_images.path),
                 "made": 0 if post.is_identity else post_images.made,
                 "reused": 0 if post.is_identity else post_images.reused,
                 **({"auto": auto} if auto else {})},
        "prompts": {label: lp.prompts for label, lp in prompts.items()},
        "timing": timing,
    }
    log.info("images: %d generated, %d reused from the store; post '%s': %d applied, %d reused",
             generated.made, generated.reused, name, metrics["post"]["made"], metrics["post"]["reused"])
    return Generated(prompts, images, post_images, post, post_config, metrics)
