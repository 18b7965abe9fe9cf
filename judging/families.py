"""Model families: the line of models a judge or a response's model belongs to, read from the
transformers ``model_type`` or, failing that, from a hub id, a local path or a model name as
datasets write them ("Qwen-VL-Chat", "gpt4v", "LLaVA-1.5-7b").

The agreement dashboard compares a judge with people on pairs where one response comes from
the judge's own family, since a judge may prefer its kin's answers (self-preference bias, seen
in multimodal judges: arXiv 2604.11589). A family is the line that trained the vision-language
model, not its base language model: LLaVA-1.5 is "llava" though its LLM is Vicuna. Anything
unrecognised is "", never a guess: a wrong family would flag pairs that are no kin.

No Django here, so the judge and generation workers can call it as they load a model.
"""

from __future__ import annotations

import re
import unicodedata

# transformers' model_type (config.json) per family, the custom-code models' own included.
_MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "qwen": (
        "qwen",
        "qwen2",
        "qwen3",
        "qwen2_vl",
        "qwen2_5_vl",
        "qwen2_5_omni",
        "qwen3_vl",
        "qwen3_vl_moe",
        "qwen3_omni_moe",
    ),
    "llava": (
        "llava",
        "llava_next",
        "llava_next_video",
        "llava_onevision",
        "llava_llama",
        "llava_qwen",
        "llava_mistral",
        "vipllava",
    ),
    "internvl": ("internvl", "internvl_chat"),
    "internlm": ("internlm", "internlm2", "internlmxcomposer2"),
    "minigpt": ("minigpt4",),
    "instructblip": ("instructblip", "instructblipvideo"),
    "blip": ("blip", "blip_2"),
    "mplug-owl": ("mplug_owl", "mplug_owl2", "mplugowl3"),
    "cogvlm": ("cogvlm", "cogagent"),
    "glm": ("chatglm", "glm4v", "glm4v_moe"),
    "llama": ("llama", "mllama", "llama4"),
    "deepseek": ("deepseek_vl", "deepseek_vl_hybrid", "deepseek_vl_v2", "janus"),
    "idefics": ("idefics", "idefics2", "idefics3"),
    "smolvlm": ("smolvlm",),
    "paligemma": ("paligemma",),
    "gemma": ("gemma", "gemma2", "gemma3", "gemma3n", "shieldgemma2"),
    "phi": ("phi", "phi3", "phi3_v", "phi4mm", "phi4_multimodal"),
    "mistral": ("mistral", "mistral3", "pixtral"),
    "molmo": ("molmo",),
    "minicpm": ("minicpmv", "minicpmo"),
    "aria": ("aria",),
    "fuyu": ("fuyu",),
    "kosmos": ("kosmos_2", "kosmos_2_5"),
    "cohere": ("aya_vision", "cohere2_vision"),
    "kimi": ("kimi_vl",),
    "chameleon": ("chameleon",),
    "emu": ("emu3",),
}
FAMILY_OF_MODEL_TYPE = {kind: family for family, kinds in _MODEL_TYPES.items() for kind in kinds}
# The heuristic judge: no model, no family (whatever its id says).
NO_MODEL_TYPES = frozenset({"baseline"})

# Rules on one lowercased component of a name (a path or hub id part), in order: the first that
# matches wins. "Lines" match at the start of any word of it, because a model's own name often
# names its base LLM too ("llava-onevision-qwen2", "cogvlm2-llama3", "MiniCPM-Llama3-V"): the
# line comes first. Makers' names (and short, common words) count only where the component
# starts with them: "Bunny-Llama-3-8B-V" is not Meta's, and stays unknown.
_LINES: tuple[tuple[str, str], ...] = (
    ("llava", r"(?:bak|vip[-_ ]?)?llava"),
    ("llama-adapter", r"llama[-_ ]?adapter"),
    ("minigpt", r"mini[-_ ]?gpt"),
    ("mini-gemini", r"mini[-_ ]?gemini|mgm-"),
    ("instructblip", r"instruct[-_ ]?blip"),
    ("blip", r"blip"),
    ("mplug-owl", r"mplug"),
    ("internvl", r"internvl"),
    ("internlm", r"(?:internlm[-_ ]?)?xcomposer"),
    ("cogvlm", r"cog(?:vlm|agent)"),
    ("idefics", r"idefics"),
    ("smolvlm", r"smolvlm"),
    ("paligemma", r"paligemma"),
    ("minicpm", r"minicpm"),
    ("molmo", r"molmo"),
    ("mistral", r"pixtral"),
    ("deepseek", r"janus(?:[-_ ]?(?:pro|flow)|-\d|$)"),
    ("qwen", r"qvq"),
    ("unimm", r"unimm"),
    ("shikra", r"shikra"),
    ("kosmos", r"kosmos"),
    ("chameleon", r"chameleon"),
)
_MAKERS: tuple[tuple[str, str], ...] = (
    ("qwen", r"qwen"),
    ("llama", r"m?llama(?![a-z])|llama[-_ ]?guard"),
    ("mistral", r"mistral|ministral"),
    ("phi", r"phi(?![a-z])"),
    ("gemma", r"(?:shield|med)?gemma"),
    ("yi", r"yi(?![a-z])"),
    ("glm", r"(?:chat|visual)?glm"),
    ("deepseek", r"deepseek"),
    ("internlm", r"internlm"),
    ("gpt", r"(?:chat)?gpt(?![-_ ]?(?:neo|j(?![a-z])|sw3|bigcode))"),
    ("gemini", r"gemini"),
    ("claude", r"claude"),
    ("otter", r"otter"),
    ("lamm", r"lamm(?![a-z])"),
    ("fuyu", r"fuyu"),
    ("aria", r"aria(?![a-z])"),
    ("kimi", r"kimi"),
    ("emu", r"emu\d"),
    ("cohere", r"aya[-_ ]?vision|command[-_ ]?a[-_ ]?vision"),
)
_LINE_RULES = tuple((family, re.compile(rf"(?<![a-z0-9])(?:{rule})")) for family, rule in _LINES)
_MAKER_RULES = tuple((family, re.compile(rule)) for family, rule in _MAKERS)
FAMILIES = frozenset(
    {family for family, _ in (*_LINES, *_MAKERS)} | set(FAMILY_OF_MODEL_TYPE.values())
)

# Hub ids are at most 96 characters and local paths rarely reach 300; a longer string is not a
# model name, and its tail (where the model's folder is) is all that is read of it.
MAX_NAME_CHARS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Path separators, and Ollama-style "name:tag".
_SEPARATORS = re.compile(r"[/\\:]")
_LEADING_PUNCTUATION = re.compile(r"^[^a-z0-9]+")
_HUB_CACHE_PREFIX = "models--"


def model_family(model_id: str, model_type: str = "") -> str:
    """The family of a model ("qwen", "llava", ...; see FAMILIES), "" when it is unknown or no
    model (the baseline). A known model_type decides; else the id or name does."""
    kind = _normalised(model_type).strip().replace("-", "_")
    if kind in NO_MODEL_TYPES:
        return ""
    if family := FAMILY_OF_MODEL_TYPE.get(kind):
        return family
    for component in _candidates(_normalised(model_id)):
        if family := _family_of_component(_LEADING_PUNCTUATION.sub("", component.strip())):
            return family
    return ""


def _normalised(text: str) -> str:
    # NFKC folds full-width and other compatibility forms ("Ｑｗｅｎ") into plain letters.
    tail = text[-MAX_NAME_CHARS:]
    return unicodedata.normalize("NFKC", _CONTROL.sub(" ", tail)).casefold()


def _candidates(name: str) -> list[str]:
    """The parts of a name that can name the model, most telling first: a hub cache folder's
    name then org ("models--Qwen--Qwen2-VL-7B/snapshots/<hash>"), else the last two parts (a
    hub id's name then org, a local model's folder then its parent). Folders further up name
    a machine's users and disks, not the model."""
    parts = [part for part in _SEPARATORS.split(name) if part.strip()]
    cached = [part for part in parts if part.startswith(_HUB_CACHE_PREFIX)]
    if cached:
        return cached[-1].split("--")[:0:-1]
    return parts[:-3:-1]


def _family_of_component(component: str) -> str:
    for family, pattern in _LINE_RULES:
        if pattern.search(component):
            return family
    for family, pattern in _MAKER_RULES:
        if pattern.match(component):
            return family
    return ""
