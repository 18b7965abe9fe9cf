"""Tiny, randomly initialised models of real architectures, built offline for tests and benches.

Random weights test the plumbing (processors, padding, label readout), never the quality. Each
builder trains a byte-level BPE tokenizer in milliseconds (byte-level: any text encodes and the
verdict letters are single tokens), wraps it with the special tokens and chat template the
architecture's processor expects, builds the real processor and model classes from small
configs, and saves everything to `path`, ready for `load_judge(backend="transformers",
model=str(path))`. Needs torch, torchvision (Qwen2-VL's processor) and transformers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from .prompts import GUARD_FORMS, guard_text, pairwise_text

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
LLAVA_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% else %}"
    "{% for part in message.content %}"
    "{% if part.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part.type == 'text' %}{{ part.text }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# LLaVA-1.5 style: the answer follows "ASSISTANT:" after a space, so labels read as " A".
LLAVA_CHAT_TEMPLATE = (
    "<s>{% for message in messages %}"
    "{% if message.role == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message.content is string %}{{ message.content }}{% else %}"
    "{% for part in message.content %}"
    "{% if part.type == 'image' %}<image>\n{% elif part.type == 'text' %}{{ part.text }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message.role == 'user' %} {% else %}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _training_sentences() -> list[str]:
    """Text like the engine's prompts, so labels and prompt words become single tokens."""
    pair = pairwise_text(question="What is in the image?", first="A cat.", second="A dog.")
    guards = [guard_text(form=form, question="Q?", response="R.") for form in GUARD_FORMS]
    answers = ["A", "B", " A", " B", "safe", "unsafe", " safe", " unsafe", "Yes", "No"]
    return [pair, *guards, *answers] * 3


def train_byte_bpe(*, special_tokens: tuple[str, ...], vocab_size: int = 1000) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_sentences(), trainer)
    return tokenizer


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with Qwen2-VL's special tokens and left padding."""
    return PreTrainedTokenizerFast(
        tokenizer_object=train_byte_bpe(special_tokens=QWEN_SPECIAL_TOKENS),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
        padding_side="left",
    )


def _llava_tokenizer() -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=train_byte_bpe(special_tokens=LLAVA_SPECIAL_TOKENS),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<image>"],
        padding_side="left",
    )


def _tiny_text(vocab_size: int) -> dict[str, object]:
    return {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
    }


def qwen_special_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """The config fields Qwen2-VL needs, read from the tokenizer."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def qwen_processor(tokenizer: PreTrainedTokenizerFast, *, max_pixels: int) -> Qwen2VLProcessor:
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=4 * 28 * 28, max_pixels=max_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )


def build_tiny_qwen2vl(path: Path | str, *, max_visual_tokens: int = 16) -> Path:
    """A Qwen2-VL of hidden size 64 and 2 layers; images capped at `max_visual_tokens`."""
    path = Path(path)
    tokenizer = qwen_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    text = _tiny_text(len(tokenizer)) | {
        # head_dim 16: the three M-RoPE sections must add up to head_dim / 2.
        "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3]},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision = {"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2}
    config = Qwen2VLConfig(text_config=text, vision_config=vision, **qwen_special_ids(tokenizer))
    # One visual token covers a 28x28 area after the 2x2 merge.
    processor = qwen_processor(tokenizer, max_pixels=max_visual_tokens * 28 * 28)
    _save(Qwen2VLForConditionalGeneration(config), processor, path)
    return path


def build_tiny_llava(path: Path | str) -> Path:
    """A LLaVA-1.5-shaped model: tiny CLIP tower on 28x28 crops (4 patches) and a tiny Llama."""
    path = Path(path)
    tokenizer = _llava_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
        projection_dim=32,
    )
    text = LlamaConfig(
        **_tiny_text(len(tokenizer)),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    _save(LlavaForConditionalGeneration(config), processor, path)
    return path


def _save(model: torch.nn.Module, processor: object, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)  # type: ignore[operator]
    processor.save_pretrained(path)  # type: ignore[attr-defined]
