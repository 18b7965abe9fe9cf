"""Judge throughput: the engine end to end vs a naive `generate()` judge. Needs only torch +
transformers (no Django, no download).

    python bench/judge_throughput.py --shape 2b            # one GPU, random bf16 weights
    python bench/judge_throughput.py --tiny                # this CPU, in seconds

The real shapes (Qwen2-VL-2B / -7B configs, typed out below) get random weights created directly
on the GPU. Their tokenizer is the tests' byte-level BPE (trained in milliseconds on prompt-like
text, Qwen's special tokens) while the model keeps the real 152k vocabulary: the text only uses
the low ids, but embedding lookup and the last-position lm_head cost what they cost for real.
Texts are built word by word until they reach SPA-VL-like token counts (question ~40 tokens,
responses ~200), images are 448x448 (256 visual tokens). Random weights: figures are for speed
only, verdicts mean nothing.
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judging.engine import PairInput, Thresholds, load_judge  # noqa: E402
from judging.engine.hf import TransformersJudge, judge_from_model  # noqa: E402
from judging.engine.prompts import pairwise_text  # noqa: E402
from judging.engine.testing import (  # noqa: E402
    build_tiny_qwen2vl,
    qwen_processor,
    qwen_special_ids,
    qwen_tokenizer,
)

SHAPES = {
    "2b": {
        "text": {
            "vocab_size": 151936,
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1e6,
                "mrope_section": [16, 24, 24],
            },
        },
        "vision": {
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 1536,
            "num_heads": 16,
            "mlp_ratio": 4,
        },
        "tie_word_embeddings": True,
    },
    "7b": {
        "text": {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1e6,
                "mrope_section": [16, 24, 24],
            },
        },
        "vision": {
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 3584,
            "num_heads": 16,
            "mlp_ratio": 4,
        },
        "tie_word_embeddings": False,
    },
}
WORDS = [
    "the",
    "a",
    "image",
    "shows",
    "person",
    "object",
    "street",
    "table",
    "hand",
    "dangerous",
    "safe",
    "help",
    "answer",
    "request",
    "because",
    "however",
    "carefully",
    "it",
    "is",
    "not",
    "appropriate",
    "to",
    "explain",
    "detail",
    "people",
    "could",
    "risk",
]


def text_of_tokens(tokenizer, n_tokens: int, rng: random.Random) -> str:
    words: list[str] = []
    while len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) < n_tokens:
        words.extend(rng.choice(WORDS) for _ in range(8))
    return " ".join(words)


def make_pairs(tokenizer, n: int, *, side: int, resp_tokens: int) -> list[PairInput]:
    rng = random.Random(0)
    pairs = []
    for i in range(n):
        buffer = io.BytesIO()
        noise = Image.effect_noise((side, side), 40 + i % 50).convert("RGB")
        noise.save(buffer, format="JPEG", quality=90)
        pairs.append(
            PairInput(
                pair_id=i,
                image=buffer.getvalue(),
                question=text_of_tokens(tokenizer, 40, rng) + "?",
                response_a=text_of_tokens(tokenizer, resp_tokens, rng),
                response_b=text_of_tokens(tokenizer, resp_tokens, rng),
            )
        )
    return pairs


def random_qwen2vl(shape: str, *, max_pixels: int):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tokenizer = qwen_tokenizer()
    spec = SHAPES[shape]
    config = Qwen2VLConfig(
        text_config=spec["text"],
        vision_config=spec["vision"],
        tie_word_embeddings=spec["tie_word_embeddings"],
        **qwen_special_ids(tokenizer),
    )
    with torch.device("cuda"):
        model = Qwen2VLForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    return model.eval(), qwen_processor(tokenizer, max_pixels=max_pixels)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_engine(
    judge: TransformersJudge, pairs: list[PairInput], batch: int
) -> dict[str, float]:
    judge.batch_pairs = batch
    device = judge.runner.device
    judge.judge(pairs[:batch])  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    verdicts = judge.judge(pairs)
    sync(device)
    end_to_end = time.perf_counter() - start
    assert all(v.error is None for v in verdicts)
    gpu_seconds, tokens = measure_forward_only(judge, pairs, batch)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {
        "pairs_s": len(pairs) / end_to_end,
        "gpu_pairs_s": len(pairs) / gpu_seconds,
        "tokens_s": tokens / gpu_seconds,
        "peak_gib": peak,
    }


def measure_forward_only(judge: TransformersJudge, pairs: list[PairInput], batch: int):
    """Preprocess everything first, then time only the forward passes (GPU-only figure)."""
    from judging.engine.images import cap_pixels, decode_image

    runner = judge.runner
    encoded = []
    for pair in pairs:
        image = cap_pixels(decode_image(pair.image), max_pixels=runner.max_pixels)
        texts = judge._pairwise_prompts(pair, flipped=False)
        if judge.guard_runner is runner:
            texts += judge._guard_prompts(runner, pair, flipped=False)
        encoded.append(runner.encode(image, texts))
    batches = [runner.collate(encoded[i : i + batch]) for i in range(0, len(encoded), batch)]
    tokens = sum(int(b.inputs["attention_mask"].sum()) for b in batches)
    sync(runner.device)
    start = time.perf_counter()
    for b in batches:
        runner.last_logits(b)
    sync(runner.device)
    return time.perf_counter() - start, tokens


def measure_naive(judge: TransformersJudge, pairs: list[PairInput], new_tokens: int) -> float:
    """One pair at a time, one order, `generate()` writing a short rationale: pairs/s."""
    from judging.engine.images import cap_pixels, decode_image

    runner = judge.runner
    sync(runner.device)
    start = time.perf_counter()
    for pair in pairs:
        image = cap_pixels(decode_image(pair.image), max_pixels=runner.max_pixels)
        prompt = pairwise_text(
            question=pair.question, first=pair.response_a, second=pair.response_b
        )
        text = runner.render(judge._user_turn(prompt + " Explain briefly, then answer."))
        inputs = runner.processor(text=[text], images=[image], return_tensors="pt").to(
            runner.device
        )
        runner.model.generate(
            **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
    sync(runner.device)
    return len(pairs) / (time.perf_counter() - start)


def build_judge(args: argparse.Namespace, workdir: Path) -> TransformersJudge:
    if args.tiny:
        path = build_tiny_qwen2vl(workdir / "tiny-qwen2vl")
        judge = load_judge(backend="transformers", model=str(path), max_pixels=16 * 28 * 28)
    else:
        model, processor = random_qwen2vl(args.shape, max_pixels=args.side * args.side)
        judge = judge_from_model(
            model=model,
            processor=processor,
            model_id=f"random-qwen2-vl-{args.shape}",
            revision="random",
            thresholds=Thresholds(),
            max_pixels=args.side * args.side,
            score_safety=not args.no_safety,
            reuse_image_features=not args.per_row_vision,
        )
    assert isinstance(judge, TransformersJudge)
    return judge


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="tiny random Qwen2-VL on the CPU")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="2b")
    parser.add_argument("--batch-sizes", default="1,8,16,32")
    parser.add_argument("--pairs", type=int, default=128, help="pairs per measurement")
    parser.add_argument("--naive-pairs", type=int, default=8)
    parser.add_argument("--side", type=int, default=448, help="image side in pixels")
    parser.add_argument("--no-safety", action="store_true", help="pairwise rows only")
    parser.add_argument("--per-row-vision", action="store_true", help="vision tower once per row")
    args = parser.parse_args()
    if args.tiny:
        args.pairs, args.naive_pairs, args.batch_sizes = (
            min(args.pairs, 16),
            min(args.naive_pairs, 4),
            "1,4,8",
        )
    with tempfile.TemporaryDirectory() as workdir:
        judge = build_judge(args, Path(workdir))
        resp_tokens = 20 if args.tiny else 200
        pairs = make_pairs(
            judge.runner.tokenizer, args.pairs, side=args.side, resp_tokens=resp_tokens
        )
        print(
            f"{judge.info.model_id} on {judge.runner.device} ({judge.info.dtype}), "
            f"{len(pairs)} pairs, {judge._rows_per_pair} rows per pair, {args.side}px images"
        )
        print(f"{'batch':>5} {'pairs/s':>9} {'GPU pairs/s':>12} {'tokens/s':>10} {'peak GiB':>9}")
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            r = measure_engine(judge, pairs, batch)
            print(
                f"{batch:>5} {r['pairs_s']:>9.1f} {r['gpu_pairs_s']:>12.1f} {r['tokens_s']:>10.0f} "
                f"{r['peak_gib']:>9.2f}"
            )
        naive = measure_naive(judge, pairs[: args.naive_pairs], new_tokens=8 if args.tiny else 64)
        print(f"naive generate(), one pair at a time: {naive:.2f} pairs/s")


if __name__ == "__main__":
    main()
