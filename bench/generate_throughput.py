"""Generation throughput: the engine's batched generator vs a naive one-question-at-a-time
`generate()`. Needs only torch + transformers (no Django, no download).

    python bench/generate_throughput.py                  # Qwen2-VL-2B shape, one GPU, bf16
    python bench/generate_throughput.py --tiny           # this CPU, in seconds

The 2B shape (typed out in judge_throughput.py) gets random weights created directly on the GPU,
with the tests' byte-level BPE tokenizer and the real 152k vocabulary, as the judge bench does.
Questions are built word by word to ~40 tokens, images are 448x448 (256 visual tokens), answers
run to 256 new tokens (random weights almost never emit EOS, so nearly every answer is full
length). Random weights: figures are for speed only, the texts mean nothing. "same as naive"
counts the naive questions whose greedy engine text (largest batch) equals the naive one.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from judge_throughput import SHAPES, random_qwen2vl, sync, text_of_tokens
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judging.engine.generate import load_generator  # noqa: E402
from judging.engine.generation_types import Generation, GenerationItem, SamplingSettings  # noqa: E402
from judging.engine.hf_generate import (  # noqa: E402
    TransformersGenerator,
    _user_turn,
    generator_from_model,
)
from judging.engine.images import cap_pixels, decode_image  # noqa: E402
from judging.engine.testing import build_tiny_qwen2vl  # noqa: E402


def make_questions(tokenizer, n: int, *, side: int, question_tokens: int) -> list[GenerationItem]:
    rng = random.Random(0)
    items = []
    for i in range(n):
        buffer = io.BytesIO()
        noise = Image.effect_noise((side, side), 40 + i % 50).convert("RGB")
        noise.save(buffer, format="JPEG", quality=90)
        prompt = text_of_tokens(tokenizer, question_tokens, rng) + "?"
        items.append(GenerationItem(key=i, image=buffer.getvalue(), prompt=prompt))
    return items


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def measure_engine(
    generator: TransformersGenerator,
    items: list[GenerationItem],
    batch: int,
    settings: SamplingSettings,
) -> tuple[dict[str, float], list[Generation]]:
    device = generator.runner.device
    generator.batch_size = batch
    warm_up = SamplingSettings(max_new_tokens=8)
    generator.generate(items[:batch], warm_up)  # kernels, allocator
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    generations = generator.generate(items, settings)
    sync(device)
    seconds = time.perf_counter() - start
    figures = {
        "responses_s": len(generations) / seconds,
        "tokens_s": sum(g.tokens_out for g in generations) / seconds,
        "truncated": sum(g.finish_reason == "length" for g in generations) / len(generations),
        "peak_gib": peak_gib(device),
    }
    return figures, generations


def measure_naive(
    generator: TransformersGenerator, items: list[GenerationItem], settings: SamplingSettings
) -> tuple[dict[str, float], list[str]]:
    """One question at a time, the processor and `generate()` as a model card shows them."""
    runner = generator.runner
    if runner.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    texts, tokens = [], 0
    sync(runner.device)
    start = time.perf_counter()
    for item in items:
        image = cap_pixels(decode_image(item.image), max_pixels=runner.max_pixels)
        text = runner.render(_user_turn(item.prompt))
        inputs = runner.processor(text=[text], images=[image], return_tensors="pt")
        inputs = inputs.to(runner.device)
        out = runner.model.generate(
            **inputs,
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            pad_token_id=runner.pad_id,
            eos_token_id=sorted(generator.eos_ids),
        )
        new = out[0, inputs["input_ids"].shape[1] :]
        tokens += len(new)
        texts.append(runner.tokenizer.decode(new, skip_special_tokens=True).strip())
    sync(runner.device)
    seconds = time.perf_counter() - start
    figures = {
        "responses_s": len(items) / seconds,
        "tokens_s": tokens / seconds,
        "peak_gib": peak_gib(runner.device),
    }
    return figures, texts


def print_row(label: str, figures: dict[str, float]) -> None:
    cut = f"{figures['truncated']:.0%}" if "truncated" in figures else ""
    print(
        f"{label:>7} {figures['responses_s']:>12.2f} {figures['tokens_s']:>10.0f} {cut:>5} "
        f"{figures['peak_gib']:>9.2f}"
    )


def build_generator(args: argparse.Namespace, workdir: Path) -> TransformersGenerator:
    if args.tiny:
        path = build_tiny_qwen2vl(workdir / "tiny-qwen2vl")
        generator = load_generator(str(path), max_pixels=16 * 28 * 28)
    else:
        model, processor = random_qwen2vl(args.shape, max_pixels=args.side * args.side)
        generator = generator_from_model(
            model=model,
            processor=processor,
            model_id=f"random-qwen2-vl-{args.shape}",
            revision="random",
            max_pixels=args.side * args.side,
        )
    assert isinstance(generator, TransformersGenerator)
    return generator


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="tiny random Qwen2-VL on the CPU")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="2b")
    parser.add_argument("--batch-sizes", default="8,16,32,64")
    parser.add_argument("--questions", type=int, default=64, help="questions per measurement")
    parser.add_argument("--naive-questions", type=int, default=4)
    parser.add_argument("--side", type=int, default=448, help="image side in pixels")
    parser.add_argument("--new-tokens", type=int, default=256)
    args = parser.parse_args()
    if args.tiny:
        args.questions, args.naive_questions = min(args.questions, 16), min(args.naive_questions, 4)
        args.batch_sizes, args.new_tokens = "1,4,8,16", min(args.new_tokens, 32)
    settings = SamplingSettings(max_new_tokens=args.new_tokens)
    with tempfile.TemporaryDirectory() as workdir:
        generator = build_generator(args, Path(workdir))
        runner = generator.runner
        items = make_questions(runner.tokenizer, args.questions, side=args.side, question_tokens=40)
        print(
            f"{generator.model_id} on {runner.device} ({str(runner.dtype).removeprefix('torch.')}),"
            f" {len(items)} questions, {args.side}px images, {args.new_tokens} new tokens, greedy"
        )
        print(f"{'batch':>7} {'responses/s':>12} {'tokens/s':>10} {'cut':>5} {'peak GiB':>9}")
        generations: list[Generation] = []
        batches = [int(b) for b in args.batch_sizes.split(",")]
        for batch in batches:
            figures, generations = measure_engine(generator, items, batch, settings)
            print_row(str(batch), figures)
        sampled = SamplingSettings(max_new_tokens=args.new_tokens, temperature=0.7, top_p=0.9)
        print_row(f"{batches[-1]} smp", measure_engine(generator, items, batches[-1], sampled)[0])
        print(f"{'':>44}   (sampled: temperature 0.7, top_p 0.9, a stream per item)")
        naive, texts = measure_naive(generator, items[: args.naive_questions], settings)
        print_row("naive", naive)
        print(f"{'':>44}   (one question at a time, generate(), greedy)")
        same = sum(g.text == t for g, t in zip(generations, texts, strict=False))
        print(f"same as naive: {same}/{len(texts)} greedy texts")


if __name__ == "__main__":
    main()
