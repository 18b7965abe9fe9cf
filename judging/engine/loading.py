"""`load_judge`: the one entry point the worker calls."""

from __future__ import annotations

from .types import Judge, Thresholds

BACKENDS = ("baseline", "transformers")


def base_prompt_version(backend: str) -> str:
    """The part of a judge's prompt version known without loading it. A model judge appends
    "+" and the guard prompt its tokenizer allows (see `hf.judge_from_model`)."""
    if backend == "baseline":
        from .baseline import BASELINE_PROMPT_VERSION

        return BASELINE_PROMPT_VERSION
    if backend == "transformers":
        from .prompts import PAIRWISE_PROMPT_VERSION

        return PAIRWISE_PROMPT_VERSION
    raise ValueError(f"unknown judge backend {backend!r}; choose one of {BACKENDS}")


def load_judge(
    *,
    backend: str,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    max_pixels: int = 448 * 448,
    batch_pairs: int = 16,
    guard_model: str | None = None,
    thresholds: Thresholds | None = None,
    revision: str | None = None,
    score_safety: bool = True,
    max_batch_tokens: int | None = None,
    reuse_image_features: bool = True,
) -> Judge:
    """Build a judge. Load it once per worker process: a model load takes seconds to minutes.

    backend "baseline" needs no model (keyword heuristics, CPU). backend "transformers" loads
    `model` (hub id or local folder) with AutoProcessor + AutoModelForImageTextToText; device
    defaults to CUDA when available, dtype to bfloat16 on CUDA and float32 on CPU. `guard_model`
    scores response safety with a separate model (default: the judge model with a guard
    prompt); `score_safety=False` skips safety scoring. `max_batch_tokens` caps padded tokens
    per forward (default: batch_pairs x rows per pair x 1024). `reuse_image_features` runs the
    vision tower once per pair instead of once per prompt where the model supports it.
    """
    if backend == "baseline":
        from .baseline import BaselineJudge

        return BaselineJudge(thresholds=thresholds)
    if backend == "transformers":
        if not model:
            raise ValueError("backend 'transformers' needs model= (a hub id or a local path)")
        # Imported here so that `judging.engine` works without torch installed.
        from .hf import load_transformers_judge

        return load_transformers_judge(
            model=model,
            device=device,
            dtype=dtype,
            max_pixels=max_pixels,
            batch_pairs=batch_pairs,
            guard_model=guard_model,
            thresholds=thresholds or Thresholds(),
            revision=revision,
            score_safety=score_safety,
            max_batch_tokens=max_batch_tokens,
            reuse_image_features=reuse_image_features,
        )
    raise ValueError(f"unknown judge backend {backend!r}; choose one of {BACKENDS}")
