"""Model families from a model_type, a hub id, a local path or a dataset's model name: every
name SPA-VL's responses carry and the common hub ids map, anything else is "" (never a guess),
and no string, however long or strange, breaks it."""

from __future__ import annotations

import pytest

from judging.families import FAMILIES, MAX_NAME_CHARS, model_family

# The response models of SPA-VL (arXiv 2406.12030: twelve open and closed VLMs) as its files
# and its redistributions spell them, and the spellings other preference sets (VLFeedback,
# RLAIF-V, align-anything) use for the same models.
SPAVL_MODEL_NAMES = {
    "Qwen-VL-Chat": "qwen",
    "qwen-vl-chat": "qwen",
    "QwenVL": "qwen",
    "Qwen_VL_Chat": "qwen",
    "gemini-pro": "gemini",
    "gemini-pro-vision": "gemini",
    "Gemini1.0 Pro Vision": "gemini",
    "gemini-1.0-pro-vision-001": "gemini",
    "gpt4v": "gpt",
    "gpt-4v": "gpt",
    "GPT-4V": "gpt",
    "gpt-4-vision-preview": "gpt",
    "gpt-4o": "gpt",
    "LLaVA-1.5-7b": "llava",
    "LLaVA-1.5-13b": "llava",
    "llava-v1.5-13b": "llava",
    "LLaVA15": "llava",
    "llava1.5-7b": "llava",
    "InternLM-XComposer": "internlm",
    "InternLMXComposer": "internlm",
    "internlm-xcomposer-7b": "internlm",
    "InternLM-XComposer2-VL-7B": "internlm",
    "MiniGPT-4": "minigpt",
    "MiniGPT4": "minigpt",
    "minigpt4-vicuna-7b": "minigpt",
    "InstructBLIP": "instructblip",
    "instructblip-vicuna-13b": "instructblip",
    "mPLUG-Owl": "mplug-owl",
    "mplug-owl2-llama2-7b": "mplug-owl",
    "CogVLM": "cogvlm",
    "cogvlm-chat-hf": "cogvlm",
    "LLaMA-Adapter-V2": "llama-adapter",
    "llama_adapter_v2": "llama-adapter",
    "LAMM": "lamm",
    "LAMM_SFT": "lamm",
    "Otter": "otter",
    "otter-mpt7b": "otter",
    "UniMM-Chat": "unimm",
    "Yi-VL-6B": "yi",
    "claude-3-opus-20240229": "claude",
}

HUB_IDS = {
    "Qwen/Qwen2-VL-7B-Instruct": "qwen",
    "Qwen/Qwen2.5-VL-72B-Instruct": "qwen",
    "Qwen/QVQ-72B-Preview": "qwen",
    "Qwen/Qwen-VL-Chat": "qwen",
    "unsloth/Qwen2.5-VL-7B-Instruct-bnb-4bit": "qwen",
    "llava-hf/llava-1.5-7b-hf": "llava",
    "llava-hf/llava-v1.6-mistral-7b-hf": "llava",
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": "llava",
    "llava-hf/bakLlava-v1-hf": "llava",
    "lmms-lab/llama3-llava-next-8b": "llava",
    "OpenGVLab/InternVL2_5-8B": "internvl",
    "OpenGVLab/Mini-InternVL-Chat-2B-V1-5": "internvl",
    "internlm/internlm-xcomposer2d5-7b-reward": "internlm",
    "Salesforce/instructblip-vicuna-7b": "instructblip",
    "Salesforce/blip2-opt-2.7b": "blip",
    "MAGAer13/mplug-owl2-llama2-7b": "mplug-owl",
    "THUDM/cogvlm2-llama3-chat-19B": "cogvlm",
    "THUDM/glm-4v-9b": "glm",
    "meta-llama/Llama-3.2-11B-Vision-Instruct": "llama",
    "meta-llama/Llama-Guard-3-11B-Vision": "llama",
    "deepseek-ai/deepseek-vl2-small": "deepseek",
    "deepseek-ai/Janus-Pro-7B": "deepseek",
    "01-ai/Yi-VL-34B": "yi",
    "HuggingFaceM4/idefics2-8b": "idefics",
    "HuggingFaceM4/Idefics3-8B-Llama3": "idefics",
    "HuggingFaceTB/SmolVLM-Instruct": "smolvlm",
    "google/paligemma2-3b-pt-224": "paligemma",
    "google/gemma-3-4b-it": "gemma",
    "google/shieldgemma-2-4b-it": "gemma",
    "microsoft/Phi-3.5-vision-instruct": "phi",
    "microsoft/Phi-4-multimodal-instruct": "phi",
    "mistralai/Pixtral-12B-2409": "mistral",
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": "mistral",
    "allenai/Molmo-7B-D-0924": "molmo",
    "openbmb/MiniCPM-Llama3-V-2_5": "minicpm",
    "Vision-CAIR/MiniGPT-4": "minigpt",
    "YanweiLi/MGM-7B": "mini-gemini",
    "rhymes-ai/Aria": "aria",
    "adept/fuyu-8b": "fuyu",
    "moonshotai/Kimi-VL-A3B-Instruct": "kimi",
    "CohereForAI/aya-vision-8b": "cohere",
}

MODEL_TYPES = {
    "qwen2_vl": "qwen",
    "qwen2_5_vl": "qwen",
    "qwen": "qwen",
    "llava": "llava",
    "llava_next": "llava",
    "llava_onevision": "llava",
    "internvl": "internvl",
    "idefics3": "idefics",
    "paligemma": "paligemma",
    "gemma3": "gemma",
    "mllama": "llama",
    "mistral3": "mistral",
    "pixtral": "mistral",
    "phi3_v": "phi",
    "blip-2": "blip",
    "instructblip": "instructblip",
    "molmo": "molmo",
    "deepseek_vl_v2": "deepseek",
}


@pytest.mark.parametrize(("name", "family"), SPAVL_MODEL_NAMES.items())
def test_it_maps_every_spavl_response_model(name, family):
    assert model_family(name) == family


@pytest.mark.parametrize(("model_id", "family"), HUB_IDS.items())
def test_it_maps_common_hub_ids(model_id, family):
    assert model_family(model_id) == family


@pytest.mark.parametrize(("model_type", "family"), MODEL_TYPES.items())
def test_a_known_model_type_decides_whatever_the_path_says(model_type, family):
    assert model_family("/checkpoints/judge-v3/step-1200", model_type) == family
    assert model_family("google/gemma-3-4b-it", model_type) == family


def test_the_baseline_has_no_family():
    assert model_family("", "baseline") == ""
    assert model_family("Qwen/Qwen2-VL-7B-Instruct", "baseline") == ""
    assert model_family("") == ""


def test_an_unknown_model_type_falls_back_on_the_id():
    assert model_family("llava-hf/llava-1.5-7b-hf", "vision-encoder-decoder") == "llava"
    assert model_family("/models/judge", "some_new_arch") == ""


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/models/Qwen2-VL-7B-Instruct", "qwen"),
        ("/models/Qwen2-VL-7B-Instruct/", "qwen"),
        ("/runs/llava-1.5-sft/checkpoint-500", "llava"),
        ("C:\\models\\InternVL2-8B", "internvl"),
        ("/root/.cache/huggingface/hub/models--Qwen--Qwen2-VL-7B/snapshots/0123abcd", "qwen"),
        ("~/.cache/huggingface/hub/models--llava-hf--llava-1.5-7b-hf", "llava"),
        ("llava:13b", "llava"),
        ("./QWEN2-VL", "qwen"),
        # Folders above the model's own and its parent name machines and people, not models.
        ("/home/gemini/models/judge", ""),
        ("/data/qwen/experiments/run-7/checkpoint-900", ""),
    ],
)
def test_it_reads_local_paths_from_the_models_folder(path, family):
    assert model_family(path) == family


@pytest.mark.parametrize(
    "name",
    [
        "model-a",
        "model-x",
        "demo-vlm-small",
        "acme-vision-7b",
        "unknown",
        "vicuna-7b-v1.5",
        # Named after a base LLM but no one's own line: not guessed.
        "Bunny-Llama-3-8B-V",
        "my-finetune-of-qwen2-vl",
        "BAAI/Bunny-v1_1-Llama-3-8B-V",
        # Words that contain a family's name without being one.
        "sharegpt4v-7b",
        "EleutherAI/gpt-neox-20b",
        "philosophy-bot",
        "yield-model",
        "tinyllama-1.1b",
        "medalpaca",
        "ollama",
        "chat",
    ],
)
def test_it_leaves_unknown_models_without_a_family(name):
    assert model_family(name) == ""


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("Mini-Gemini-7B", "mini-gemini"),  # not Google's
        ("MiniGPT-v2", "minigpt"),  # not OpenAI's
        ("Llama-3-LLaVA-NeXT-8B", "llava"),  # LLaVA-NeXT on Llama 3
        ("cogvlm2-llama3-chinese-chat-19B", "cogvlm"),
        ("MiniCPM-V-2_6", "minicpm"),
        ("InternVL2-Llama3-76B", "internvl"),
    ],
)
def test_a_models_own_line_wins_over_the_llm_its_name_mentions(name, family):
    assert model_family(name) == family


@pytest.mark.parametrize(
    "hostile",
    [
        "q" * 10_000_000,
        "\x00\x01\x1b[31mqwen\x7f",
        "/" * 100_000,
        "\u202eqwen",
        "Ｑｗｅｎ２-ＶＬ",
        "😀" * 1000,
        "\ud800broken surrogate",
        "--" * 50_000,
        "models--",
        "::::",
        " ",
    ],
)
def test_hostile_strings_give_a_known_family_or_none(hostile):
    assert model_family(hostile, hostile) in FAMILIES | {""}


def test_control_characters_and_full_width_letters_do_not_hide_a_family():
    assert model_family("qwen\x00vl-chat") == "qwen"
    assert model_family("Ｑｗｅｎ２-ＶＬ") == "qwen"
    assert model_family("llava\n-1.5") == "llava"


def test_only_the_tail_of_a_huge_string_is_read():
    assert model_family("x" * 10_000_000 + "/Qwen2-VL-7B") == "qwen"
    assert model_family("Qwen2-VL-7B/" + "x" * MAX_NAME_CHARS) == ""


def test_families_fit_the_column():
    assert all(0 < len(family) <= 50 and family == family.lower() for family in FAMILIES)
