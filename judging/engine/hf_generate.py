"""The transformers generator: batched `generate()` on any HF VLM, as if one item at a time.

Items are encoded first (each question's image decoded and preprocessed once, shared by all its
samples), planned longest first into batches under a padded-token budget, left-padded (so every
row's answer starts at the same position) and generated in one `model.generate` call per batch,
with the attention mask (and Qwen-VL's token types, from which its M-RoPE positions skip the
padding) passed along. Greedy output in a batch equals the same item generated alone, token for
token, as the tests check for Qwen2-VL and LLaVA in float32 (batched bfloat16 kernels on a GPU
may round differently: bench/generate_throughput.py counts such differences).

Sampling draws every item from its own random stream (see `_SeededSampler`), so a text never
depends on its batch. Decoding is exactly what `SamplingSettings` says: the defaults of the
model's generation_config.json (Qwen2-VL-Instruct's set, among others, a repetition penalty)
are not applied, since the configuration stored with each response could not name them; only
its EOS ids are kept.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from .batching import plan_batches, run_halving
from .generation_types import FinishReason, Generation, GenerationItem, SamplingSettings
from .hf import (
    EncodedRows,
    ModelRunner,
    _is_oom,
    _resolve_device_dtype,
    load_model,
    model_revision,
)
from .images import cap_pixels, decode_image
from .types import ImageRejected

PROMPT_VERSION = "chat-template-v1"


@dataclass(frozen=True, slots=True)
class _Job:
    index: int  # position in the caller's items
    item: GenerationItem
    rows: EncodedRows  # one row, this item's prompt; the image tensors shared per question

    @property
    def prompt_length(self) -> int:
        return len(self.rows.input_ids[0])


@dataclass(frozen=True, slots=True)
class DecodeBatch:
    """What one `generate()` call gets: inputs on the device, and how to decode."""

    inputs: dict[str, Any]
    config: GenerationConfig
    logits_processor: LogitsProcessorList
    items: tuple[GenerationItem, ...]  # one per row
    prompt_length: int  # padded: the new tokens start here in every row

    @property
    def n_items(self) -> int:
        return len(self.items)


class _SeededSampler(LogitsProcessor):
    """Samples each row from its own uniforms and leaves only the drawn token, so that
    `generate()` runs greedy and picks it.

    One `torch.multinomial` for the whole batch would draw every row from one stream, making a
    row's text depend on its batch. Here row i at step t takes `uniforms[i, t]` (drawn on the CPU
    from the item's own seed) and inverts the CDF of its temperature- and top-p-warped
    distribution: the same logits always give the same token.
    """

    def __init__(
        self, *, uniforms: torch.Tensor, prompt_length: int, temperature: float, top_p: float
    ) -> None:
        self.uniforms = uniforms
        self.prompt_length = prompt_length
        self.warpers = [TemperatureLogitsWarper(temperature)]
        if top_p < 1:
            self.warpers.append(TopPLogitsWarper(top_p))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_length
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        probs = scores.float().softmax(dim=-1)
        cdf = probs.cumsum(dim=-1)
        target = self.uniforms[:, step : step + 1] * cdf[:, -1:]
        # Rounding can put the target at the very top: never pick a token of probability 0.
        last_possible = (probs > 0).cumsum(dim=-1).argmax(dim=-1, keepdim=True)
        chosen = torch.searchsorted(cdf, target, right=True).minimum(last_possible)
        return torch.full_like(scores, -float("inf")).scatter_(1, chosen, 0.0)


def stream_seed(*, seed: int, key: int, sample_index: int) -> int:
    """The item's own random stream: independent of batches, distinct per question and sample."""
    digest = hashlib.sha256(f"spavl-generate\x1f{seed}\x1f{key}\x1f{sample_index}".encode())
    return int.from_bytes(digest.digest()[:8], "big") >> 1  # manual_seed takes < 2**63


def _uniforms(items: Sequence[GenerationItem], *, seed: int, steps: int) -> torch.Tensor:
    rows = []
    for item in items:
        generator = torch.Generator().manual_seed(
            stream_seed(seed=seed, key=item.key, sample_index=item.sample_index)
        )
        rows.append(torch.rand(steps, generator=generator))
    return torch.stack(rows)


def _default_forward(runner: ModelRunner, batch: DecodeBatch) -> torch.Tensor:
    """The new tokens of every row, [rows, new tokens] (rows that stopped are padded)."""
    with torch.inference_mode():
        out = runner.model.generate(
            **batch.inputs,
            generation_config=batch.config,
            logits_processor=batch.logits_processor,
        )
    return out[:, batch.prompt_length :]


class TransformersGenerator:
    """A generator on a loaded HF model; build it with `load_generator` or
    `generator_from_model`.

    `forward(runner, batch) -> new tokens` is the one call that touches the GPU. It is a plain
    attribute so that a test can wrap it to inject faults (out of memory).
    """

    prompt_version = PROMPT_VERSION

    def __init__(
        self,
        *,
        runner: ModelRunner,
        model_id: str,
        revision: str,
        batch_size: int,
        max_batch_tokens: int | None,
    ) -> None:
        self.runner = runner
        self.model_id = model_id
        self.revision = revision
        self.model_type: str = runner.model.config.model_type
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.eos_ids = _eos_ids(runner)
        self.forward: Callable[[ModelRunner, DecodeBatch], torch.Tensor] = _default_forward
        # Only what generate() needs to stop and pad; see the module docstring.
        runner.model.generation_config = GenerationConfig(
            eos_token_id=sorted(self.eos_ids), pad_token_id=runner.pad_id
        )

    # -- public -----------------------------------------------------------------------------

    def generate(
        self, items: Sequence[GenerationItem], settings: SamplingSettings
    ) -> list[Generation]:
        jobs = self._encode(items)  # raises ImageRejected before anything is generated
        lengths = [job.prompt_length + settings.max_new_tokens for job in jobs]
        plan = plan_batches(
            lengths,
            max_pairs=self.batch_size,
            max_tokens=self.max_batch_tokens or self.batch_size * max(lengths, default=0),
            rows_per_pair=1,
        )
        generations: list[Generation | None] = [None] * len(items)
        for batch in self._chunks(plan):
            results = run_halving(
                [jobs[i] for i in batch],
                run=lambda part: self._run(part, settings),
                is_oom=_is_oom,
                on_oom=self._shrink_after_oom,
            )
            for index, result in zip(batch, results, strict=True):
                if result is None:
                    raise MemoryError(f"key {items[index].key}: out of memory even alone")
                generations[index] = result
        return [g for g in generations if g is not None]

    # -- encoding ---------------------------------------------------------------------------

    def _encode(self, items: Sequence[GenerationItem]) -> list[_Job]:
        """Render and tokenize every prompt; each question's image is processed once."""
        by_question: dict[tuple[int, bytes], dict[str, int]] = {}
        for item in items:
            by_question.setdefault((item.key, item.image), {}).setdefault(item.prompt, 0)
        encoded: dict[tuple[int, bytes, str], EncodedRows] = {}
        for (key, image), prompts in by_question.items():
            rows = self._encode_question(key, image, list(prompts))
            for prompt, ids in zip(prompts, rows.input_ids, strict=True):
                encoded[key, image, prompt] = EncodedRows(input_ids=[ids], image=rows.image)
        return [
            _Job(index=i, item=item, rows=encoded[item.key, item.image, item.prompt])
            for i, item in enumerate(items)
        ]

    def _encode_question(self, key: int, data: bytes, prompts: list[str]) -> EncodedRows:
        runner = self.runner
        try:
            image = cap_pixels(decode_image(data), max_pixels=runner.max_pixels)
            return runner.encode(image, [runner.render(_user_turn(p)) for p in prompts])
        except (ValueError, OSError) as exc:
            # Processors raise these on images Pillow accepted but they cannot use.
            raise ImageRejected(f"key {key}: {exc or type(exc).__name__}") from exc

    # -- batches ----------------------------------------------------------------------------

    def _chunks(self, plan: list[list[int]]) -> Iterator[list[int]]:
        """The planned batches, cut to the batch size as it is now (an OOM lowers it)."""
        for planned in plan:
            while planned:
                head, planned = planned[: self.batch_size], planned[self.batch_size :]
                yield head

    def _run(self, jobs: Sequence[_Job], settings: SamplingSettings) -> list[Generation]:
        start = time.perf_counter()
        batch = self._batch(jobs, settings)
        new_tokens = self.forward(self.runner, batch).tolist()
        seconds = (time.perf_counter() - start) / len(jobs)
        return [
            self._generation(job.item, tokens, job.prompt_length, settings, seconds)
            for job, tokens in zip(jobs, new_tokens, strict=True)
        ]

    def _batch(self, jobs: Sequence[_Job], settings: SamplingSettings) -> DecodeBatch:
        runner = self.runner
        collated = runner.collate([job.rows for job in jobs])
        inputs = {k: v.to(runner.device) for k, v in collated.inputs.items()}
        inputs |= runner._image_inputs(collated)
        prompt_length = collated.inputs["input_ids"].shape[1]
        processors = LogitsProcessorList()
        if not settings.greedy:
            uniforms = _uniforms(
                [job.item for job in jobs], seed=settings.seed, steps=settings.max_new_tokens
            )
            processors.append(
                _SeededSampler(
                    uniforms=uniforms.to(runner.device),
                    prompt_length=prompt_length,
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                )
            )
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,  # _SeededSampler has drawn the token when sampling
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=runner.pad_id,
        )
        return DecodeBatch(
            inputs=inputs,
            config=config,
            logits_processor=processors,
            items=tuple(job.item for job in jobs),
            prompt_length=prompt_length,
        )

    def _generation(
        self,
        item: GenerationItem,
        tokens: list[int],
        prompt_length: int,
        settings: SamplingSettings,
        seconds: float,
    ) -> Generation:
        """Tokens up to and including the first EOS; the padding after it is not the item's."""
        stop = next((i for i, token in enumerate(tokens) if token in self.eos_ids), None)
        kept = tokens[: settings.max_new_tokens] if stop is None else tokens[: stop + 1]
        finish: FinishReason = "length" if stop is None else "stop"
        text = self.runner.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return Generation(
            key=item.key,
            sample_index=item.sample_index,
            text=text,
            tokens_in=prompt_length,
            tokens_out=len(kept),
            finish_reason=finish,
            seconds=seconds,
        )

    def _shrink_after_oom(self, size: int) -> None:
        # Later batches start at the size that failed, halved: no repeated failing attempts.
        self.batch_size = max(1, min(self.batch_size, size // 2))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _user_turn(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def _eos_ids(runner: ModelRunner) -> frozenset[int]:
    """The model's EOS ids (chat models list their end-of-turn token there) and the
    tokenizer's."""
    configured = runner.model.generation_config.eos_token_id
    candidates = [*(configured if isinstance(configured, list) else [configured])]
    ids = {int(i) for i in [*candidates, runner.tokenizer.eos_token_id] if i is not None}
    if not ids:
        raise ValueError("the model and its tokenizer name no end-of-sequence token")
    return frozenset(ids)


def generator_from_model(
    *,
    model: Any,
    processor: Any,
    model_id: str,
    revision: str,
    max_pixels: int = 448 * 448,
    batch_size: int = 16,
    max_batch_tokens: int | None = None,
) -> TransformersGenerator:
    """A generator on an already loaded model (the benchmark builds random-weight models in
    memory). The model's generation config is replaced by one that only stops and pads."""
    runner = ModelRunner(
        model=model, processor=processor, max_pixels=max_pixels, reuse_features=False
    )
    return TransformersGenerator(
        runner=runner,
        model_id=model_id,
        revision=revision,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
    )


def load_transformers_generator(
    *,
    model: str,
    revision: str | None,
    dtype: str | None,
    device: str | None,
    max_pixels: int,
    batch_size: int,
    max_batch_tokens: int | None,
) -> TransformersGenerator:
    torch_device, torch_dtype = _resolve_device_dtype(device, dtype)
    loaded, processor = load_model(model, device=torch_device, dtype=torch_dtype, revision=revision)
    return generator_from_model(
        model=loaded,
        processor=processor,
        model_id=model,
        revision=model_revision(loaded, model, revision),
        max_pixels=max_pixels,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
    )
