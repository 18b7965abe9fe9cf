"""Split pairs into train/validation/test so that no image, or near-duplicate image, crosses
splits. Pure Python, no Django: it works on plain tuples.

1. Pairs on the same image form a group; near-duplicate images (dHash within ``max_distance``
   bits) are joined with a union-find. Candidates come from bucketing each hash by bands: with
   ``max_distance + 1`` bands, two hashes within the distance agree on at least one whole band
   (pigeonhole), so comparing only hashes that share a band finds every near-duplicate without
   comparing all n^2 pairs.
2. Each group takes the subcategory most of its pairs have (its stratum). Within a stratum the
   groups are shuffled with a seeded generator and each goes to the split with the most room
   left (its share of the stratum minus what it holds), so every stratum follows the ratios
   within about one group.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class PairKey:
    pair_id: int
    image_id: int
    subcategory_id: int | None


@dataclass(frozen=True)
class ImageHash:
    image_id: int
    dhash: int
    is_placeholder: bool


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, item: int) -> int:
        root = self.parent.setdefault(item, item)
        while root != self.parent[root]:
            root = self.parent[root]
        while item != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            # The smaller id becomes the root, so groups do not depend on visiting order.
            low, high = sorted((root_a, root_b))
            self.parent[high] = low


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """(shift, mask) of ``max_distance + 1`` (at least 5) bands covering the 64 bits."""
    count = max(5, max_distance + 1)
    widths = [64 // count + (1 if index < 64 % count else 0) for index in range(count)]
    bands, shift = [], 0
    for width in widths:
        bands.append((shift, (1 << width) - 1))
        shift += width
    return bands


def near_duplicate_groups(images: Iterable[ImageHash], *, max_distance: int) -> dict[int, int]:
    """Map each image id to its group's root (the smallest image id in the group)."""
    forest = _UnionFind()
    buckets: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    bands = _bands(max_distance)
    for image in sorted(images, key=lambda item: item.image_id):
        forest.find(image.image_id)
        if image.is_placeholder:
            continue  # made-up images look alike by construction; they are not duplicates
        unsigned = image.dhash & MASK64
        for index, (shift, mask) in enumerate(bands):
            bucket = buckets[(index, (unsigned >> shift) & mask)]
            for other_id, other_hash in bucket:
                if (unsigned ^ other_hash).bit_count() <= max_distance:
                    forest.union(image.image_id, other_id)
            bucket.append((image.image_id, unsigned))
    return {image_id: forest.find(image_id) for image_id in forest.parent}


def assign_splits(
    pairs: Sequence[PairKey],
    *,
    image_groups: Mapping[int, int],
    ratios: Mapping[str, float],
    seed: int,
) -> dict[str, list[int]]:
    """Return ``{split: sorted pair ids}``; whole image groups go to one split."""
    groups: dict[int, list[PairKey]] = defaultdict(list)
    for pair in pairs:
        groups[image_groups.get(pair.image_id, pair.image_id)].append(pair)
    strata: dict[int, list[int]] = defaultdict(list)
    for root, members in groups.items():
        strata[_majority_subcategory(members)].append(root)
    names = [name for name in ratios if ratios[name] > 0]
    total_ratio = sum(ratios[name] for name in names)
    result: dict[str, list[int]] = {name: [] for name in ratios}
    # What each split is owed (or overdrawn) from the strata already placed. Without it, a small
    # stratum (one or two groups) always lands in the largest split, and a small export would
    # have no validation or test rows at all.
    carry = dict.fromkeys(names, 0.0)
    for stratum in sorted(strata):
        roots = sorted(strata[stratum])
        random.Random(f"{seed}:{stratum}").shuffle(roots)
        stratum_size = sum(len(groups[root]) for root in roots)
        room = {name: ratios[name] / total_ratio * stratum_size + carry[name] for name in names}
        for root in roots:
            size = len(groups[root])
            target = max(names, key=lambda name: room[name])
            room[target] -= size
            result[target].extend(pair.pair_id for pair in groups[root])
        carry = room
    return {name: sorted(ids) for name, ids in result.items()}


def _majority_subcategory(members: Sequence[PairKey]) -> int:
    """The most common subcategory of a group; ties go to the smallest id; none counts as -1."""
    counts = Counter(-1 if pair.subcategory_id is None else pair.subcategory_id for pair in members)
    return min(counts, key=lambda subcategory: (-counts[subcategory], subcategory))
