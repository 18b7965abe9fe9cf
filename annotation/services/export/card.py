"""The dataset card (README.md) and the manifest (sha256 of every file).

Both are deterministic: no timestamps, sorted keys, so two runs of the same definition on the
same data produce identical cards and manifests as well as identical data files.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict

from annotation.models import ExportFormat
from annotation.services.agreement.dashboard import agreement_summary_for_export
from annotation.services.agreement.results import ExportSummary
from annotation.services.export.archive import KEYWORDS, config_name, data_path, keyword_counts
from annotation.services.export.files import WrittenFile
from annotation.services.export.plan import ExportPlan
from annotation.services.export.spec import SPLITS, ExportSpec
from judging.models import JudgeConfiguration


def export_agreement_figures(*, plan: ExportPlan) -> ExportSummary | None:
    """The agreement dashboard's headline figures over exactly the exported pairs, or None when
    none of them has a human verdict. Seeded, so the card stays reproducible."""
    pair_ids = sorted(pair_id for shard in plan.shards for pair_id in shard.pair_ids)
    return agreement_summary_for_export(pair_ids_or_queryset=pair_ids)


def _judge_configurations(spec: ExportSpec) -> list[str]:
    configurations = JudgeConfiguration.objects.order_by("pk")
    if spec.judge_configuration_id is not None:
        configurations = configurations.filter(pk=spec.judge_configuration_id)
    else:
        configurations = configurations.filter(judgements__isnull=False).distinct()
    return [f"{config.pk}: {config}" for config in configurations]


def _count_table(plan: ExportPlan) -> list[str]:
    splits = [split for split, counts in plan.counts.items() if counts]
    by_category: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for split in splits:
        for path, count in plan.counts[split].items():
            class1, class2, _ = path.split(" / ", 2)
            by_category[f"{class1} / {class2}"][split] += count
    lines = ["| class1 / class2 | " + " | ".join(splits) + " |"]
    lines.append("|---|" + "---:|" * len(splits))
    for category in sorted(by_category):
        cells = " | ".join(str(by_category[category].get(split, 0)) for split in splits)
        lines.append(f"| {_cell(category)} | {cells} |")
    totals = " | ".join(str(sum(plan.counts[split].values())) for split in splits)
    lines.append(f"| **total** | {totals} |")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _front_matter(plan: ExportPlan, export_format: str) -> list[str]:
    """Hugging Face's YAML header. As in SPA-VL, each split has its own columns, so each is its
    own configuration (train is the default one)."""
    if export_format != ExportFormat.SPAVL_PARQUET:
        return []
    lines = ["---", "configs:"]
    for split in dict.fromkeys(shard.split for shard in plan.shards):
        name = "default" if split == "train" else split
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}", f"    path: data/{split}-*"]
    return [*lines, "---", ""]


def render_card(*, spec: ExportSpec, plan: ExportPlan, export_format: str) -> str:
    agreement = export_agreement_figures(plan=plan)
    lines = _front_matter(plan, export_format)
    rlhf = export_format == ExportFormat.RLHF_JSON
    training = rlhf_training_section(spec=spec, plan=plan) if rlhf else []
    if export_format == ExportFormat.SAFE_RLHF_JSONL:
        training = safe_rlhf_section(plan=plan)
    lines += [
        f"# {spec.name}",
        "",
        f"Safety preference pairs exported from spavl-web as `{export_format}`.",
        "",
        "## Counts per split and category",
        "",
        *_count_table(plan),
        "",
        "## Splits",
        "",
        f"Seed {spec.split_seed}; ratios train {spec.ratios['train']}, validation "
        f"{spec.ratios['validation']}, test {spec.ratios['test']}, stratified by subcategory. "
        "Pairs on the same image, or on images whose dHash differs in at most "
        f"{spec.near_duplicate_distance} bits, are always in the same split.",
        "",
        *training,
        "## Judge configuration",
        "",
        *([f"- {line}" for line in _judge_configurations(spec)] or ["- none"]),
        "",
        "## Agreement",
        "",
        "```json\n" + json.dumps(agreement, indent=2, sort_keys=True) + "\n```"
        if agreement is not None
        else "Not available for this export.",
        "",
        "## Definition",
        "",
        "```json",
        json.dumps(spec.to_json(), indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


SAFE_RLHF_FIELDS = [
    ("prompt", "the question"),
    ("image", "the image's path in the tar (`images/class1/class2/class3/N.ext`)"),
    ("response_0, response_1", "responses A and B of the pair, in that order"),
    ("response_0_source, response_1_source", "the model that wrote each response"),
    ("better_response_id", "0 or 1: the more helpful response (the final helpful label)"),
    ("safer_response_id", "0 or 1: the safer response (the final safer label)"),
    (
        "is_response_0_safe, is_response_1_safe",
        "people's final per-response label; null where the pair's campaigns did not label "
        "each response (never derived from the axes or the judge)",
    ),
    (
        "response_0_severity_level, response_1_severity_level",
        "0 safe, 1 minor, 2 moderate, 3 severe; null where the response has no label",
    ),
    ("pair_id", "the pair in spavl-web"),
]


def safe_rlhf_section(*, plan: ExportPlan) -> list[str]:
    """What a safe-rlhf-jsonl line holds, and how many pairs the format left out, by why."""
    lines = [
        "## Safe RLHF format",
        "",
        "`<split>.jsonl` in `<split>-jsonl.tar`, one line per pair, with the field names of "
        "PKU-Alignment's PKU-SafeRLHF (the release with severity levels), plus the image as "
        "in their vision-language sets:",
        "",
        *[f"- `{name}`: {meaning}" for name, meaning in SAFE_RLHF_FIELDS],
        "",
        "Only pairs decided on both axes (A or B on the safer and on the helpful axis) are "
        "exported: the format has no tie, so tied pairs are left out, never broken at random. "
        "Pairs with no two-axis label at all (single-preference campaigns) are not counted.",
        "",
        "| left out | pairs |",
        "|---|---:|",
        *[f"| {_cell(reason)} | {count} |" for reason, count in sorted(plan.skipped.items())],
        f"| **total** | {sum(plan.skipped.values())} |",
        "",
    ]
    return lines


FOLDER = "spavl-rlhf"  # where the card unpacks the tars, unless the spec names a data root
# SPA-VL-RLHF's own settings from scripts/train_dpo_model_ds.sh and scripts/train_reward_model.sh
# (github.com/EchoseChen/SPA-VL-RLHF), less the data and model paths the card fills in.
DPO_ARGUMENTS = [
    "--do_train",
    "--seed 42",
    "--dpo_beta 0.1",
    "--lora_enable False",
    "--finetune_mm_projector True",
    "--batch_size 1",
    "--learning_rate 1e-6",
    "--warmup_steps 10",
    '--output_dir "$SPA_VL_RLHF/results/dpo"',
    "--total_epochs 1",
    '--evaluation_strategy "no"',
    "--weight_decay 0.0",
    '--lr_scheduler_type "cosine"',
    "--logging_steps 1",
    '--report_to "tensorboard"',
    '--ddp_backend "nccl"',
    "--bf16 True",
    "--ddp_find_unused_parameters False",
    "--max_grad_norm 1.0",
    "--clean_tokens_after_eos True",
    "--temperature 1.0",
    "--model_max_length 2048",
    "--mm_vision_select_layer -2",
    "--mm_use_im_start_end False",
    "--mm_use_im_patch_token False",
    "--image_aspect_ratio 'pad'",
]
REWARD_MODEL_ARGUMENTS = [
    "--do_train",
    "--do_eval",
    "--seed 42",
    "--finetune_mm_projector True",
    "--per_device_train_batch_size 4",
    "--per_device_eval_batch_size 4",
    "--lora_enable False",
    "--gradient_accumulation_steps 1",
    "--learning_rate 3e-5",
    "--mm_vision_select_layer -2",
    "--mm_use_im_start_end False",
    "--mm_use_im_patch_token False",
    "--model_max_length 2048",
    '--output_dir "$SPA_VL_RLHF/results/rm"',
    '--evaluation_strategy "steps"',
    "--eval_steps 50",
    '--save_strategy "epoch"',
    "--num_train_epochs 1",
    "--save_total_limit 1000",
    "--weight_decay 0.0",
    "--warmup_ratio 0.03",
    '--lr_scheduler_type "constant_with_warmup"',
    "--logging_steps 5",
    '--report_to "tensorboard"',
    '--ddp_backend "nccl"',
    "--bf16 True",
    "--bits 16",
    "--ddp_find_unused_parameters False",
    "--image_aspect_ratio 'pad'",
]


def rlhf_training_section(*, spec: ExportSpec, plan: ExportPlan) -> list[str]:
    """How to train on an rlhf-json export with SPA-VL-RLHF as it is: the unpacked layout,
    the data configs, and the DPO and reward-model command lines."""
    counts = {split: keyword_counts(plan, split) for split in SPLITS}
    root = spec.rlhf_data_root
    lines = ["## Training with SPA-VL-RLHF", "", *_layout(root), "", *_keyword_table(counts), ""]
    if not counts["train"]:
        return [*lines, "This export has no train split: there is nothing to train on.", ""]
    return [*lines, *_setup(root), *_dpo(counts, root), *_reward_model(counts, root)]


def _layout(root: str) -> list[str]:
    folder = shlex.quote(root) if root else FOLDER
    where = (
        f"The configs name absolute paths under `{root}`: run from anywhere."
        if root
        else f"The configs name paths relative to that folder: run from `{FOLDER}`."
    )
    return [
        "Unpack every tar of this export into one folder:",
        "",
        "```sh",
        f'mkdir -p {folder} && for tar in *-json.tar; do tar -xf "$tar" -C {folder}; done',
        "```",
        "",
        "It then holds `images/`, SPA-VL-RLHF's `--image_folder` (each record's `image` is a "
        "path under it); one JSON list per question type and split, `<keyword>_<split>.json`, "
        "with SPA-VL-RLHF's keywords `easy`, `hardq` and `hardd` (our `hards`) and `unknown` "
        "for pairs of no known question type (leave it out of `--keywords` to train without "
        "them); and `config_train.json`, `config_validation.json`, `config_test.json`, each "
        "mapping the keywords to the split's lists, for `--config_train_path` and "
        f"`--config_test_path`. {where} A record's `id` is the source's id where that is an "
        "integer no other record carries, else the pair id.",
    ]


def _keyword_table(counts: dict[str, dict[str, int]]) -> list[str]:
    rows = [
        f"| {split} | " + " | ".join(str(counts[split].get(k, 0)) for k in KEYWORDS) + " |"
        for split in SPLITS
    ]
    return ["| split | " + " | ".join(KEYWORDS) + " |", "|---|" + "---:|" * len(KEYWORDS), *rows]


def _setup(root: str) -> list[str]:
    return [
        "First, in a shell that stays open for the commands below:",
        "",
        "```sh",
        *([] if root else [f"cd {FOLDER}"]),
        "export SPA_VL_RLHF=/path/to/LLaVA/llava/SPA-VL-RLHF  # its clone, inside LLaVA-v1.5",
        'export PYTHONPATH="$SPA_VL_RLHF:$PYTHONPATH"',
        "export MODELS=/path/to/models  # llava-v1.5-7b and clip-vit-large-patch14-336",
        "```",
        "",
    ]


def _data_arguments(root: str, *, configs: dict[str, str], keywords: list[str]) -> list[str]:
    return [
        *(
            f"--{flag} {shlex.quote(data_path(name, data_root=root))}"
            for flag, name in configs.items()
        ),
        f"--keywords {' '.join(keywords)}",
        f"--image_folder {shlex.quote(data_path('images', data_root=root))}",
        '--vision_tower "$MODELS/clip-vit-large-patch14-336"',
    ]


def _dpo(counts: dict[str, dict[str, int]], root: str) -> list[str]:
    data = _data_arguments(
        root, configs={"config_train_path": config_name("train")}, keywords=list(counts["train"])
    )
    model = '--policy_model_name_or_path "$MODELS/llava-v1.5-7b"'
    launch = 'accelerate launch --config_file "$SPA_VL_RLHF/scripts/config.yaml"'
    return [
        "DPO (SPA-VL-RLHF's `scripts/train_dpo_model_ds.sh` on this export):",
        "",
        "```sh",
        _command(f'{launch} "$SPA_VL_RLHF/train_dpo.py"', [*data, model, *DPO_ARGUMENTS]),
        "```",
        "",
    ]


def _reward_model(counts: dict[str, dict[str, int]], root: str) -> list[str]:
    evaluation = next((split for split in ("test", "validation") if counts[split]), "train")
    keywords = [k for k in KEYWORDS if k in counts["train"] or k in counts[evaluation]]
    configs = {"config_train_path": config_name("train")}
    configs["config_test_path"] = config_name(evaluation)
    data = _data_arguments(root, configs=configs, keywords=keywords)
    model = '--model_name_or_path "$MODELS/llava-v1.5-7b"'
    run = "torchrun --master_port=50100 --standalone --nnodes=1 --nproc-per-node=8"
    return [
        "The reward model, PPO's first stage (its `scripts/train_reward_model.sh`, evaluated on "
        f"the {evaluation} split; `train_ppo.py` then reads the same `config_train.json`):",
        "",
        "```sh",
        _command(f'{run} "$SPA_VL_RLHF/train_rm.py"', [*data, model, *REWARD_MODEL_ARGUMENTS]),
        "```",
        "",
    ]


def _command(program: str, arguments: list[str]) -> str:
    return " \\\n    ".join([program, *arguments])


def render_manifest(files: list[WrittenFile]) -> str:
    entries = [entry.to_json() for entry in sorted(files, key=lambda item: item.name)]
    return json.dumps({"files": entries}, indent=2, sort_keys=True) + "\n"
