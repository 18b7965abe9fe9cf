"""The `transformers` backend: a pairwise judge read from next-token logits of any HF VLM.

One forward pass per batch (`logits_to_keep=1`, no cache, no generation) reads the verdict
tokens. Each pair contributes up to four rows, all showing the same image: the two orders of the
pairwise prompt and, when the judge model also scores safety, one guard prompt per response. The
image is decoded and preprocessed once per pair and, where the model accepts precomputed
encoder outputs, its vision tower runs once per pair too.
"""

from __future__ import annotations

import hashlib
import inspect
import platform
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PIL
import tokenizers
import torch
import transformers
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .batching import plan_batches, prefetched, run_halving
from .images import cap_pixels, decode_image
from .labels import label_token_ids, labels_are_single_tokens
from .prompts import (
    CONVERSATION_GUARD,
    GUARD_FORMS,
    PAIRWISE_LABELS,
    PAIRWISE_PROMPT_VERSION,
    GuardForm,
    guard_text,
    pairwise_text,
)
from .scoring import OrderReadout, build_verdict, error_verdict, p_unsafe_from_logits
from .types import ImageRejected, JudgeInfo, PairInput, PairVerdict, Thresholds

_TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
_ROW_BUDGET = 1024  # default padded tokens per row in a batch's token budget


@dataclass(frozen=True, slots=True)
class EncodedRows:
    """The token rows of one pair for one model, every row showing the pair's one image."""

    input_ids: list[list[int]]
    image: dict[str, torch.Tensor]  # processor outputs for the single image (pixel_values ...)


@dataclass(frozen=True, slots=True)
class ModelBatch:
    """What one forward pass gets: left-padded rows plus per-pair image tensors."""

    inputs: dict[str, torch.Tensor]
    images: list[dict[str, torch.Tensor]]
    rows_per_pair: int

    @property
    def n_pairs(self) -> int:
        return len(self.images)


class ModelRunner:
    """One loaded model with its processor: renders prompts, encodes, returns last logits."""

    def __init__(self, *, model: Any, processor: Any, max_pixels: int, reuse_features: bool):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_pixels = max_pixels
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.image_token: str = processor.image_token
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        self.pad_id = _pad_id(self.tokenizer)
        self.reuse_features = reuse_features and _accepts_encoder_outputs(model)
        _cap_processor_pixels(processor, max_pixels)
        self.wants_mm_types = "mm_token_type_ids" in self._encode_image(_probe_image(max_pixels))
        self.visual_tokens = self.count_visual_tokens(_probe_image(max_pixels))

    def render(self, messages: list[dict[str, Any]], *, generation_prompt: bool = True) -> str:
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _encode_image(self, image: Image.Image) -> Any:
        return self.processor(text=[self.image_token], images=[image], return_tensors="pt")

    def count_visual_tokens(self, image: Image.Image) -> int:
        encoded = self._encode_image(image)
        return int((encoded["input_ids"] == self.image_token_id).sum())

    def encode(self, image: Image.Image, texts: Sequence[str]) -> EncodedRows:
        """Preprocess the image once and expand its placeholder the same way in every text."""
        encoded = self._encode_image(image)
        n_visual = int((encoded["input_ids"] == self.image_token_id).sum())
        expanded = [t.replace(self.image_token, self.image_token * n_visual) for t in texts]
        ids = self.tokenizer(expanded, add_special_tokens=False)["input_ids"]
        image_tensors = {k: v for k, v in encoded.items() if k not in _TEXT_KEYS}
        return EncodedRows(input_ids=ids, image=image_tensors)

    def collate(self, encoded: Sequence[EncodedRows]) -> ModelBatch:
        """Left-pad all rows (the last position is then the verdict position for every row)."""
        rows = [ids for item in encoded for ids in item.input_ids]
        length = max(len(ids) for ids in rows)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, length - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, length - len(ids) :] = 1
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.wants_mm_types:
            inputs["mm_token_type_ids"] = (input_ids == self.image_token_id).long()
        rows_per_pair = len(encoded[0].input_ids)
        return ModelBatch(
            inputs=inputs, images=[e.image for e in encoded], rows_per_pair=rows_per_pair
        )

    @torch.inference_mode()
    def last_logits(self, batch: ModelBatch) -> torch.Tensor:
        """Float32 logits at the last position of every row, shape [rows, vocab]."""
        inputs = {k: v.to(self.device, non_blocking=True) for k, v in batch.inputs.items()}
        inputs |= self._image_inputs(batch)
        out = self.model(**inputs, logits_to_keep=1, use_cache=False)
        return out.logits[:, -1, :].float()

    def _image_inputs(self, batch: ModelBatch) -> dict[str, Any]:
        repeat = batch.rows_per_pair
        if not self.reuse_features:
            # Same preprocessed tensors for every row of a pair; the tower runs once per row.
            return {
                key: self._to_device(
                    torch.cat([img[key] for img in batch.images for _ in range(repeat)])
                )
                for key in batch.images[0]
            }
        unique = {
            k: self._to_device(torch.cat([img[k] for img in batch.images])) for k in batch.images[0]
        }
        features = self.model.get_image_features(**unique, return_dict=True).pooler_output
        per_row = tuple(f for f in features for _ in range(repeat))
        extra = {
            k: v.repeat_interleave(repeat, dim=0) for k, v in unique.items() if k != "pixel_values"
        }
        return extra | {
            "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=per_row)}
        }

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        dtype = self.dtype if tensor.is_floating_point() else tensor.dtype
        return tensor.to(self.device, dtype=dtype, non_blocking=True)


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def _accepts_encoder_outputs(model: Any) -> bool:
    """transformers 5.x VLMs take `mm_encoder_outputs` (precomputed vision features)."""
    params = inspect.signature(model.forward).parameters
    return "mm_encoder_outputs" in params and hasattr(model, "get_image_features")


def _cap_processor_pixels(processor: Any, max_pixels: int) -> None:
    """Qwen-VL image processors take a pixel budget; others get pre-resized images only."""
    image_processor = processor.image_processor
    size = getattr(image_processor, "size", None)
    # `merge_size` marks the Qwen-VL family, where size["longest_edge"] counts pixels, not an edge.
    if hasattr(image_processor, "merge_size") and isinstance(size, dict) and "longest_edge" in size:
        shortest = min(size.get("shortest_edge", 0) or 0, max_pixels)
        image_processor.size = {"shortest_edge": shortest, "longest_edge": max_pixels}


def _probe_image(max_pixels: int) -> Image.Image:
    side = max(28, int(max_pixels**0.5))
    return Image.new("RGB", (side, side), (127, 127, 127))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


@dataclass(frozen=True, slots=True)
class _PairJob:
    index: int
    pair: PairInput
    # Rows are laid out B-first when B sorts first, so a swapped input builds the identical
    # batch and therefore reads bit-identical logits (the exact 1 - p property).
    flipped: bool


@dataclass(frozen=True, slots=True)
class _Prepared:
    job: _PairJob
    judge_rows: EncodedRows | None
    guard_rows: EncodedRows | None
    error: str | None = None


class TransformersJudge:
    """A pairwise judge on a loaded HF model; build it with `load_judge`.

    `forward(batch) -> logits [rows, vocab]` is the one call that touches the GPU. It is a
    plain attribute so that a test can wrap it to inject faults (out of memory).
    """

    def __init__(
        self,
        *,
        runner: ModelRunner,
        guard_runner: ModelRunner | None,
        guard_form: GuardForm | None,
        thresholds: Thresholds,
        batch_pairs: int,
        max_batch_tokens: int | None,
        info: JudgeInfo,
    ) -> None:
        self.runner = runner
        self.guard_runner = guard_runner
        self.guard_form = guard_form
        self.thresholds = thresholds
        self.batch_pairs = batch_pairs
        self.max_batch_tokens = max_batch_tokens
        self.info = info
        self.forward: Callable[[ModelRunner, ModelBatch], torch.Tensor] = _default_forward
        self._pair_ids = label_token_ids(runner.tokenizer, PAIRWISE_LABELS)
        self._guard_ids = self._find_guard_ids()
        self._overhead = self._template_overhead()

    # -- public -----------------------------------------------------------------------------

    def judge(self, pairs: Sequence[PairInput]) -> list[PairVerdict]:
        jobs = [
            _PairJob(i, pair, pair.response_b < pair.response_a) for i, pair in enumerate(pairs)
        ]
        plan = plan_batches(
            self._estimate_lengths(pairs),
            max_pairs=self.batch_pairs,
            max_tokens=self.max_batch_tokens
            or self.batch_pairs * self._rows_per_pair * _ROW_BUDGET,
            rows_per_pair=self._rows_per_pair,
        )
        verdicts: list[PairVerdict | None] = [None] * len(pairs)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-prep") as pool:
            batches = ([jobs[i] for i in batch] for batch in plan)
            for prepared in prefetched(pool, self._prepare, batches):
                for verdict_index, verdict in self._judge_prepared(prepared):
                    verdicts[verdict_index] = verdict
        return [v for v in verdicts if v is not None]

    # -- prompts ----------------------------------------------------------------------------

    @property
    def _rows_per_pair(self) -> int:
        return 4 if self.guard_runner is self.runner else 2

    def _find_guard_ids(self) -> tuple[tuple[int, ...], ...] | None:
        if self.guard_runner is None or self.guard_form is None:
            return None
        form = self.guard_form
        return label_token_ids(self.guard_runner.tokenizer, (form.safe_label, form.unsafe_label))

    def _template_overhead(self) -> int:
        empty = self._pairwise_prompts(PairInput(0, b"", "", "", ""), flipped=False)[0]
        return len(self.runner.tokenizer(empty, add_special_tokens=False)["input_ids"])

    def _estimate_lengths(self, pairs: Sequence[PairInput]) -> list[int]:
        """Tokens of the longest row: text tokens, template, and a full-size image."""
        texts = [f"{p.question}\n{p.response_a}\n{p.response_b}" for p in pairs]
        counts = (
            self.runner.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        )
        return [len(ids) + self._overhead + self.runner.visual_tokens for ids in counts]

    def _user_turn(self, text: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]

    def _pairwise_prompts(self, pair: PairInput, *, flipped: bool) -> list[str]:
        a_first = pairwise_text(
            question=pair.question, first=pair.response_a, second=pair.response_b
        )
        a_second = pairwise_text(
            question=pair.question, first=pair.response_b, second=pair.response_a
        )
        texts = [a_second, a_first] if flipped else [a_first, a_second]
        return [self.runner.render(self._user_turn(t)) for t in texts]

    def _guard_prompts(self, runner: ModelRunner, pair: PairInput, *, flipped: bool) -> list[str]:
        assert self.guard_form is not None
        responses = (
            [pair.response_b, pair.response_a] if flipped else [pair.response_a, pair.response_b]
        )
        if self.guard_form is CONVERSATION_GUARD:
            return [
                runner.render(
                    [
                        *self._user_turn(pair.question),
                        {"role": "assistant", "content": [{"type": "text", "text": r}]},
                    ],
                    generation_prompt=False,
                )
                for r in responses
            ]
        return [
            runner.render(
                self._user_turn(
                    guard_text(form=self.guard_form, question=pair.question, response=r)
                )
            )
            for r in responses
        ]

    # -- preprocessing (runs on the prefetch thread) -----------------------------------------

    def _prepare(self, jobs: list[_PairJob]) -> list[_Prepared]:
        return [self._prepare_one(job) for job in jobs]

    def _prepare_one(self, job: _PairJob) -> _Prepared:
        try:
            image = cap_pixels(decode_image(job.pair.image), max_pixels=self.runner.max_pixels)
            texts = self._pairwise_prompts(job.pair, flipped=job.flipped)
            guard_rows = None
            if self.guard_runner is self.runner:
                texts += self._guard_prompts(self.runner, job.pair, flipped=job.flipped)
            elif self.guard_runner is not None:
                guard_texts = self._guard_prompts(self.guard_runner, job.pair, flipped=job.flipped)
                guard_rows = self.guard_runner.encode(image, guard_texts)
            return _Prepared(job, self.runner.encode(image, texts), guard_rows)
        except (ImageRejected, ValueError, OSError) as exc:
            # Processors raise ValueError/OSError on images Pillow accepted but they cannot use.
            return _Prepared(job, None, None, error=str(exc) or type(exc).__name__)

    # -- forward and readout ----------------------------------------------------------------

    def _judge_prepared(self, prepared: list[_Prepared]) -> list[tuple[int, PairVerdict]]:
        failed = [
            (p.job.index, error_verdict(pair_id=p.job.pair.pair_id, error=p.error or ""))
            for p in prepared
            if p.error
        ]
        ready = [p for p in prepared if not p.error]
        if not ready:
            return failed
        judge_rows = self._readouts(self.runner, [p.judge_rows for p in ready])  # type: ignore[misc]
        guard_rows: list[list[list[float]] | None] = [None] * len(ready)
        if self.guard_runner is not None and self.guard_runner is not self.runner:
            guard_rows = self._readouts(self.guard_runner, [p.guard_rows for p in ready])  # type: ignore[misc]
        verdicts = [
            (p.job.index, self._verdict(p.job, rows, guard))
            for p, rows, guard in zip(ready, judge_rows, guard_rows, strict=True)
        ]
        return failed + verdicts

    def _readouts(
        self, runner: ModelRunner, encoded: list[EncodedRows]
    ) -> list[list[list[float]] | None]:
        """Per pair, per row: [logsumexp per label group ..., label mass of groups 0 and 1]."""
        groups = self._groups_for(runner)

        def run(items: Sequence[EncodedRows]) -> list[list[list[float]]]:
            logits = self.forward(runner, runner.collate(items))
            table = _group_readout(logits, groups).double().cpu().tolist()
            width = len(items[0].input_ids)
            return [table[i * width : (i + 1) * width] for i in range(len(items))]

        return run_halving(encoded, run=run, is_oom=_is_oom, on_oom=self._shrink_after_oom)

    def _groups_for(self, runner: ModelRunner) -> tuple[tuple[int, ...], ...]:
        guard = self._guard_ids if runner is self.guard_runner else None
        if runner is self.runner:
            return self._pair_ids + (guard or ())
        assert guard is not None
        return guard

    def _shrink_after_oom(self, size: int) -> None:
        # Later batches start at the size that failed, halved: no repeated failing attempts.
        self.batch_pairs = max(1, min(self.batch_pairs, size // 2))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _verdict(
        self, job: _PairJob, rows: list[list[float]] | None, guard: list[list[float]] | None
    ) -> PairVerdict:
        if rows is None or (self.guard_runner not in (None, self.runner) and guard is None):
            return error_verdict(pair_id=job.pair.pair_id, error="out of memory even for one pair")
        first, second = (rows[1], rows[0]) if job.flipped else (rows[0], rows[1])
        p_unsafe_a = p_unsafe_b = None
        guard_pair = rows[2:4] if self.guard_runner is self.runner else guard
        if guard_pair is not None:
            offset = 2 if self.guard_runner is self.runner else 0
            scores = [
                p_unsafe_from_logits(logit_safe=r[offset], logit_unsafe=r[offset + 1])
                for r in guard_pair
            ]
            p_unsafe_a, p_unsafe_b = (
                (scores[1], scores[0]) if job.flipped else (scores[0], scores[1])
            )
        return build_verdict(
            pair_id=job.pair.pair_id,
            a_first=OrderReadout(logit_first=first[0], logit_second=first[1], label_mass=first[-1]),
            a_second=OrderReadout(
                logit_first=second[0], logit_second=second[1], label_mass=second[-1]
            ),
            p_unsafe_a=p_unsafe_a,
            p_unsafe_b=p_unsafe_b,
            thresholds=self.thresholds,
        )


def _default_forward(runner: ModelRunner, batch: ModelBatch) -> torch.Tensor:
    return runner.last_logits(batch)


def _group_readout(logits: torch.Tensor, groups: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """Columns: logsumexp of each label group's logits, then P(group 0 or 1) under the softmax."""
    columns = [torch.logsumexp(logits[:, list(ids)], dim=-1) for ids in groups]
    log_probs = torch.log_softmax(logits, dim=-1)
    both = list(groups[0]) + list(groups[1])
    columns.append(torch.logsumexp(log_probs[:, both], dim=-1).exp())
    return torch.stack(columns, dim=-1)


# -- loading ---------------------------------------------------------------------------------


def _resolve_device_dtype(
    device: str | None, dtype: str | None
) -> tuple[torch.device, torch.dtype]:
    resolved = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = dtype or ("bfloat16" if resolved.type == "cuda" else "float32")
    return resolved, getattr(torch, name)


def load_model(
    model_id: str, *, device: torch.device, dtype: torch.dtype, revision: str | None
) -> tuple[Any, Any]:
    processor = AutoProcessor.from_pretrained(model_id, revision=revision)
    model = AutoModelForImageTextToText.from_pretrained(
        model_id, revision=revision, dtype=dtype, attn_implementation="sdpa"
    )
    # Moved after loading: `device_map=` would need accelerate, which the judge extra lacks.
    return model.to(device).eval(), processor


def model_revision(model: Any, model_id: str, revision: str | None) -> str:
    """The hub commit when known; for a local folder, a hash of its config (a weak identity)."""
    commit = getattr(model.config, "_commit_hash", None) or revision
    if commit:
        return str(commit)
    config = Path(model_id) / "config.json"
    if config.is_file():
        return "local-config-" + hashlib.sha256(config.read_bytes()).hexdigest()[:12]
    return "unknown"


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "pillow": PIL.__version__,
    }


def choose_guard_form(runner: ModelRunner, *, dedicated: bool) -> GuardForm:
    """A dedicated guard whose own template asks the safety question gets the conversation;
    otherwise the first guard prompt whose labels are single tokens of this tokenizer."""
    template = getattr(runner.processor, "chat_template", None) or ""
    if dedicated and "unsafe" in template:
        return CONVERSATION_GUARD
    for form in GUARD_FORMS:
        if labels_are_single_tokens(runner.tokenizer, (form.safe_label, form.unsafe_label)):
            return form
    return GUARD_FORMS[-1]  # letters: label_token_ids will say clearly why they fail


def judge_from_model(
    *,
    model: Any,
    processor: Any,
    model_id: str,
    revision: str,
    thresholds: Thresholds,
    max_pixels: int = 448 * 448,
    batch_pairs: int = 16,
    max_batch_tokens: int | None = None,
    score_safety: bool = True,
    guard: tuple[Any, Any, str] | None = None,
    reuse_image_features: bool = True,
) -> TransformersJudge:
    """A judge on an already loaded model (the benchmark builds random-weight models in memory).

    `guard` is (model, processor, model_id) of a separate safety model.
    """
    runner = ModelRunner(
        model=model, processor=processor, max_pixels=max_pixels, reuse_features=reuse_image_features
    )
    guard_runner: ModelRunner | None = None
    if guard is not None:
        guard_runner = ModelRunner(
            model=guard[0],
            processor=guard[1],
            max_pixels=max_pixels,
            reuse_features=reuse_image_features,
        )
    elif score_safety:
        guard_runner = runner
    guard_form = (
        choose_guard_form(guard_runner, dedicated=guard is not None) if guard_runner else None
    )
    guard_version = guard_form.version if guard_form else "no-guard"
    info = JudgeInfo(
        backend="transformers",
        model_id=model_id,
        model_revision=revision,
        prompt_version=f"{PAIRWISE_PROMPT_VERSION}+{guard_version}",
        dtype=str(runner.dtype).removeprefix("torch."),
        library_versions=library_versions(),
        guard_model_id=guard[2] if guard else "",
    )
    return TransformersJudge(
        runner=runner,
        guard_runner=guard_runner,
        guard_form=guard_form,
        thresholds=thresholds,
        batch_pairs=batch_pairs,
        max_batch_tokens=max_batch_tokens,
        info=info,
    )


def load_transformers_judge(
    *,
    model: str,
    device: str | None,
    dtype: str | None,
    max_pixels: int,
    batch_pairs: int,
    guard_model: str | None,
    thresholds: Thresholds,
    revision: str | None,
    score_safety: bool,
    max_batch_tokens: int | None,
    reuse_image_features: bool,
) -> TransformersJudge:
    torch_device, torch_dtype = _resolve_device_dtype(device, dtype)
    loaded, processor = load_model(model, device=torch_device, dtype=torch_dtype, revision=revision)
    guard = None
    if guard_model and score_safety:
        guard_loaded, guard_processor = load_model(
            guard_model, device=torch_device, dtype=torch_dtype, revision=None
        )
        guard = (guard_loaded, guard_processor, guard_model)
    return judge_from_model(
        model=loaded,
        processor=processor,
        model_id=model,
        revision=model_revision(loaded, model, revision),
        thresholds=thresholds,
        max_pixels=max_pixels,
        batch_pairs=batch_pairs,
        max_batch_tokens=max_batch_tokens,
        score_safety=score_safety,
        guard=guard,
        reuse_image_features=reuse_image_features,
    )
