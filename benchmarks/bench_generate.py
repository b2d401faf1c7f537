"""The generate stage: ODIN's store + diffusers backend vs a plain diffusers loop, in one run.

CPU (anywhere, seconds): a tiny random-weight Stable Diffusion; the framework's overhead must stay
under 5%.
    python benchmarks/bench_generate.py
GPU: Stable Diffusion 2.1's real architecture (UNet 865.9 M params) with random weights (speed does
not depend on the weights), bf16, 768x768, batch sizes 1-16; also the fraction of the card's bf16
FLOP limit (3.04 TFLOP per guided UNet step per image at 768x768, 5.58 TFLOP per VAE decode).
    python benchmarks/bench_generate.py --gpu [--steps 20] [--batch-sizes 1,2,4,8,16]
    python benchmarks/bench_generate.py --toy        # CPU, seconds: 1 step, 2 images, 1 pair (a test runs it)

Both sides make the same images from the same prompts with the same loaded pipeline and write
them as PNG files; the plain loop is what a researcher writes by hand (one generator per batch,
`num_images_per_prompt`). The two alternate, and medians over the pairs are reported: the time
ratio, and, steadier on a shared machine, the framework's overhead measured directly: the time each
side spends outside the pipeline call (odin's minus plain's) over the plain loop's time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ODIN_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402

from odin.generate import diffusers_backend  # noqa: E402
from odin.generate.diffusers_backend import DiffusersGenerator  # noqa: E402
from odin.prompts import LabelPrompts  # noqa: E402
from odin.store import Store, derive_seed  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets; --peak-tflops overrides.
PEAK_BF16 = {
    "H100 SXM": 989.4,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H200": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "A10G": 70.0,
    "RTX 4090": 165.2,
}
UNET_TFLOP_PER_STEP_768 = 3.04  # one guided step (batch 2: cond + uncond) per image, torch FLOP counter
VAE_TFLOP_768 = 5.58


def build_sd21_random(folder: Path) -> Path:
    """SD 2.1's UNet, VAE and text encoder from their configs, random weights, saved in bf16."""
    sd21_pipeline(folder.parent / "tokenizer-src").to(torch.bfloat16).save_pretrained(folder)
    return folder


def sd21_pipeline(tokenizer_dir: Path):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tiny_sd import write_tokenizer_files
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel(
        sample_size=96,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=(5, 10, 20, 20),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=1024,
        use_linear_projection=True,
        upcast_attention=True,
    )
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    assert abs(params - 865.9) < 0.1, f"not SD 2.1's UNet: {params:.1f} M params"
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        sample_size=768,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    write_tokenizer_files(tokenizer_dir)  # a byte-level stand-in: pads to the same 77 tokens
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_attention_heads=16,
            num_hidden_layers=23,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def workload(labels: int, prompts: int) -> dict[str, LabelPrompts]:
    names = [f"class{i}" for i in range(labels)]
    return {n: LabelPrompts(n, [f"a photo of one {n}, style {p}" for p in range(prompts)]) for n in names}


def framework(gen: DiffusersGenerator, units: dict[str, LabelPrompts], root: Path) -> None:
    """ODIN's generate stage exactly as odin.run calls it, into an empty store."""
    cfg = {k: getattr(gen, k) for k in ("model", "steps", "guidance_scale", "height", "width", "dtype")}
    folder = Store(root).images(cfg, gen, units, 0, generator_name=gen.model)
    assert folder.made == sum(len(lp.prompts) for lp in units.values()) * gen.images_per_prompt


def plain(pipe, gen: DiffusersGenerator, units: dict[str, LabelPrompts], out: Path) -> None:
    """The loop a researcher writes by hand with diffusers."""
    for label, lp in units.items():
        (out / label).mkdir(parents=True, exist_ok=True)
        for p, prompt in enumerate(lp.prompts):
            for first in range(0, gen.images_per_prompt, gen.batch_size):
                n = min(gen.batch_size, gen.images_per_prompt - first)
                images = pipe(
                    prompt,
                    num_images_per_prompt=n,
                    num_inference_steps=gen.steps,
                    guidance_scale=gen.guidance_scale,
                    height=gen.height,
                    width=gen.width,
                    generator=torch.Generator("cpu").manual_seed(derive_seed(0, label, p, first)),
                ).images
                for i, image in enumerate(images):
                    image.save(out / label / f"p{p:03d}_i{first + i:03d}.png")


IN_PIPELINE = [0.0]  # wall seconds spent inside the diffusers pipeline's __call__, either side


def instrument(pipe) -> None:
    """Clock the pipeline call itself: what each side spends outside it is its own overhead."""
    cls = type(pipe)
    if "_bench_call" in vars(cls):
        return
    cls._bench_call = cls.__call__

    def call(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return cls._bench_call(self, *args, **kwargs)  # returns PIL images: the GPU is done
        finally:
            IN_PIPELINE[0] += time.perf_counter() - start

    cls.__call__ = call


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, of which outside the pipeline call)."""
    start, inside = time.perf_counter(), IN_PIPELINE[0]
    fn(*args)
    wall = time.perf_counter() - start
    return wall, wall - (IN_PIPELINE[0] - inside)


def compare(gen: DiffusersGenerator, units: dict[str, LabelPrompts], repeats: int, tmp: Path) -> dict:
    """Alternate the two sides; per pair, the time ratio odin / plain and odin's extra time outside
    the pipeline as a fraction of the plain loop's time; report medians."""
    framework(gen, units, tmp / "warmup")  # loads the pipeline once, warms kernels and caches
    shutil.rmtree(tmp / "warmup")  # batch size is runtime only: the next compare would reuse it all
    pipe = diffusers_backend._loaded[1]
    instrument(pipe)
    pairs = []
    for r in range(repeats):
        ours = timed(framework, gen, units, tmp / f"store{r}")
        theirs = timed(plain, pipe, gen, units, tmp / f"plain{r}")
        pairs.append((ours, theirs))
        shutil.rmtree(tmp / f"store{r}"), shutil.rmtree(tmp / f"plain{r}")
    med = statistics.median
    n = sum(len(lp.prompts) for lp in units.values()) * gen.images_per_prompt
    return {
        "images": n,
        "odin_s": med(o[0] for o, _ in pairs),
        "plain_s": med(p[0] for _, p in pairs),
        "wall_ratio": med(o[0] / p[0] for o, p in pairs),
        "wall_ratios": [round(o[0] / p[0], 3) for o, p in pairs],
        "overhead": med((o[1] - p[1]) / p[0] for o, p in pairs),
        "outside_ms": (1000 * med(o[1] for o, _ in pairs) / n, 1000 * med(p[1] for _, p in pairs) / n),
    }


def peak_tflops(override: float | None) -> tuple[float | None, str]:
    name = torch.cuda.get_device_name()
    if override:
        return override, name
    for key, value in PEAK_BF16.items():
        if all(word in name for word in key.split()):
            return value, name
    return None, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="SD 2.1 architecture on CUDA, bf16, 768x768")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (CPU 4, GPU 20)")
    ap.add_argument("--batch-sizes", default=None, help="comma list (CPU 6, GPU 1,2,4,8,16)")
    ap.add_argument("--repeats", type=int, default=None, help="timed pairs (CPU 10, GPU 2)")
    ap.add_argument("--threads", type=int, default=1, help="CPU torch threads (1: steady on a shared box)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak")
    ap.add_argument("--toy", action="store_true", help="CPU, 1 step, 1 label x 1 prompt x 2 images, 1 pair")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-"))
    try:
        if args.gpu:
            run_gpu(args, tmp)
        else:
            run_cpu(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_cpu(args, tmp: Path) -> None:
    from tiny_sd import build_tiny_sd

    torch.set_num_threads(args.threads)
    model = str(build_tiny_sd(tmp / "tiny-sd"))
    steps, repeats = args.steps or (1 if args.toy else 4), args.repeats or (1 if args.toy else 10)
    labels, prompts, images = (1, 1, 2) if args.toy else (2, 2, 6)
    units = workload(labels=labels, prompts=prompts)
    print(
        f"CPU, tiny SD (UNet (32, 64)), 64x64, {steps} steps, {labels} labels x {prompts} prompts x {images} images, "
        f"torch threads {torch.get_num_threads()}, medians over {repeats} alternating pairs"
    )
    for batch in [int(b) for b in (args.batch_sizes or str(images)).split(",")]:
        gen = DiffusersGenerator(
            model=model, steps=steps, height=64, width=64, images_per_prompt=images, batch_size=batch, device="cpu"
        )
        r = compare(gen, units, repeats, tmp)
        print(
            f"batch {batch}: odin {r['images'] / r['odin_s']:.2f} img/s, plain diffusers "
            f"{r['images'] / r['plain_s']:.2f} img/s; odin/plain wall time {r['wall_ratio']:.3f} "
            f"(per pair {r['wall_ratios']}); outside the pipeline call per image: odin "
            f"{r['outside_ms'][0]:.1f} ms, plain {r['outside_ms'][1]:.1f} ms: odin overhead "
            f"{100 * r['overhead']:+.2f}% of the plain loop's time"
        )


def run_gpu(args, tmp: Path) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device")
    model = str(build_sd21_random(tmp / "sd21-random"))
    steps, repeats = args.steps or 20, args.repeats or 2
    peak, name = peak_tflops(args.peak_tflops)
    tflop_per_image = steps * UNET_TFLOP_PER_STEP_768 + VAE_TFLOP_768
    print(
        f"{name}, SD 2.1 architecture (random weights), bf16, 768x768, {steps} steps, guidance 7.5, "
        f"{tflop_per_image:.1f} TFLOP per image, bf16 peak {peak or 'unknown (--peak-tflops)'} TFLOP/s"
    )
    for batch in [int(b) for b in (args.batch_sizes or "1,2,4,8,16").split(",")]:
        gen = DiffusersGenerator(
            model=model,
            steps=steps,
            height=768,
            width=768,
            images_per_prompt=batch,
            batch_size=batch,
            device="cuda",
            dtype="bfloat16",
        )
        units = workload(labels=1, prompts=max(1, 16 // batch))  # 16 images per repeat at every batch size
        torch.cuda.reset_peak_memory_stats()
        r = compare(gen, units, repeats, tmp)
        ours = r["images"] / r["odin_s"]
        mfu = f"{100 * ours * tflop_per_image / peak:.1f}% of bf16 peak" if peak else ""
        print(
            f"batch {batch:2d}: odin {ours:.3f} img/s, plain {r['images'] / r['plain_s']:.3f} img/s, "
            f"odin/plain wall time {r['wall_ratio']:.3f}, odin overhead outside the pipeline "
            f"{100 * r['overhead']:+.2f}%; {mfu}; "
            f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
        )


if __name__ == "__main__":
    main()
