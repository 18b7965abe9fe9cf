"""The dataset card (README.md) and the manifest (sha256 of every file).

Both are deterministic: no timestamps, sorted keys, so two runs of the same definition on the
same data produce identical cards and manifests as well as identical data files.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from annotation.agreement.dashboard import agreement_summary_for_export
from annotation.models import ExportFormat
from annotation.services.export.files import WrittenFile
from annotation.services.export.plan import ExportPlan
from annotation.services.export.spec import ExportSpec
from judging.models import JudgeConfiguration


def export_agreement_figures(*, plan: ExportPlan) -> dict[str, Any] | None:
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


def render_manifest(files: list[WrittenFile]) -> str:
    entries = [entry.to_json() for entry in sorted(files, key=lambda item: item.name)]
    return json.dumps({"files": entries}, indent=2, sort_keys=True) + "\n"
