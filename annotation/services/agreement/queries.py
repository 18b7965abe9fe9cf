"""SQL for the agreement dashboard: two temporary tables per slice, then small aggregates.

Portable between PostgreSQL and SQLite >= 3.30 (the embedded ``make demo`` database): aggregate
FILTER, ROW_NUMBER() windows, CASTs and plain parameters; the one vendor switch is
``_greatest``. ``load_slice`` builds, inside the caller's transaction:

- ``agr_pair``: one row per pair of the slice: taxonomy, the judge's verdict and probabilities,
  people's vote counts (blind verdicts), the human verdict and its sampling stratum;
- ``agr_weight``: each sampling stratum's inverse-probability weight;
- ``agr_reviewer``: the slice's reviews counted by reviewer and by what the reviewer figures
  add up;
- ``agr_family`` (only when a judge configuration has a model family): the family of each
  response model name, for the own-family figures.

Every aggregate then reads those tables, so the number of queries does not grow with the data.

Definitions (the page states them too):

- People's verdicts are *blind* verdicts, given before the judge's verdict was shown, so
  anchoring cannot inflate agreement. Gold reviews count for gold accuracy only.
- The human verdict of a pair is the decided adjudication's where one exists, else the strict
  majority of blind verdicts other than cannot-judge; a tie between reviewers has no majority.
- The judge's verdict: both unsafe when both responses are confidently unsafe
  (P(unsafe) > ``Thresholds.unsafe_above``), else the side it prefers. The judge never says tie.
- Inverse-probability weights: a reviewed pair counts 1 / P(reviewed) with P estimated per
  campaign and stratum (judge-flagged or not x control slice or not) as reviewed pool pairs over
  pool pairs of the slice. A pair reviewed in several campaigns takes its first campaign's weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection

from judging.engine.types import Thresholds

VERDICTS = ("a", "b", "tie", "both_unsafe")
UNSAFE_ABOVE = Thresholds().unsafe_above
P_UNSAFE_CUT = 0.5  # a response counts unsafe for the safety rates when P(unsafe) > this


@dataclass(frozen=True)
class AgreementSlice:
    """What the page filters on; None means all."""

    taxonomy_node_id: int | None = None
    question_type: str | None = None
    judge_run_id: int | None = None
    configuration_id: int | None = None
    campaign_id: int | None = None
    reviewer_id: int | None = None
    week: date | None = None  # the Monday of an ISO week (UTC) of review submission

    @property
    def filters_pairs(self) -> bool:
        return self.taxonomy_node_id is not None or self.question_type is not None

    @property
    def filters_reviews(self) -> bool:
        return any(v is not None for v in (self.campaign_id, self.reviewer_id, self.week))

    def cache_key(self) -> str:
        return ":".join(str(getattr(self, name) or "") for name in self.__dataclass_fields__)


def _pair_filter(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    """SQL condition on a pair joined to its question ``q`` and taxonomy nodes ``sub``/``cat``."""
    conditions = ["TRUE"]
    if slice_.taxonomy_node_id is not None:
        params["node"] = slice_.taxonomy_node_id
        conditions.append("%(node)s IN (sub.id, cat.id, cat.parent_id)")
    if slice_.question_type is not None:
        params["qtype"] = slice_.question_type
        conditions.append("q.question_type = %(qtype)s")
    return " AND ".join(conditions)


def _review_filter(*, slice_: AgreementSlice, params: dict[str, Any], alias: str) -> str:
    conditions = [f"{alias}.submitted_at IS NOT NULL"]
    if slice_.campaign_id is not None:
        params["campaign"] = slice_.campaign_id
        conditions.append(f"{alias}.campaign_id = %(campaign)s")
    if slice_.week is not None:
        start = datetime.combine(slice_.week, time.min, tzinfo=UTC)
        params["week_start"] = connection.ops.adapt_datetimefield_value(start)
        params["week_end"] = connection.ops.adapt_datetimefield_value(start + timedelta(days=7))
        conditions.append(
            f"{alias}.submitted_at >= %(week_start)s AND {alias}.submitted_at < %(week_end)s"
        )
    return " AND ".join(conditions)


_SUBCATEGORY_JOIN = """
    JOIN annotation_question q ON q.id = {pair}.question_id
    LEFT JOIN annotation_taxonomynode sub ON sub.id = q.subcategory_id
"""
_TAXONOMY_JOIN = f"""{_SUBCATEGORY_JOIN}
    LEFT JOIN annotation_taxonomynode cat ON cat.id = sub.parent_id
"""

# A pair's sampling stratum as one integer: campaign, then control slice first, then flagged.
# min() over it picks a pair's first campaign, preferring its control slice there. A campaign
# pair's, and the same read from the copies on its reviews.
_STRATUM = """({cp}.campaign_id * 4 + CASE WHEN {cp}.in_control_slice THEN 0 ELSE 2 END
              + CASE WHEN {cp}.priority > 0 THEN 1 ELSE 0 END)"""
_REVIEW_STRATUM = """(r.campaign_id * 4 + CASE WHEN r.from_control_slice THEN 0 ELSE 2 END
                     + CASE WHEN r.flagged THEN 1 ELSE 0 END)"""


def _greatest(*columns: str) -> str:
    """The largest of several columns: GREATEST on PostgreSQL, multi-argument max on SQLite."""
    function = "max" if connection.vendor == "sqlite" else "GREATEST"
    return f"{function}({', '.join(columns)})"


def _slice_reviews(*, slice_: AgreementSlice, params: dict[str, Any]) -> tuple[str, str]:
    """FROM and WHERE of the slice's submitted reviews ``r`` (joined to their pair ``p``,
    question ``q`` and taxonomy nodes only when the slice filters pairs: each join costs a
    hash of 100,000 rows; a review carries its campaign and stratum itself)."""
    reviewer = ""
    if slice_.reviewer_id is not None:
        # The reviewer's pairs, with every review of them: agreement needs the others too.
        params["reviewer"] = slice_.reviewer_id
        reviewer = f"""AND r.pair_id IN (
            SELECT r2.pair_id FROM annotation_review r2
            WHERE r2.reviewer_id = %(reviewer)s AND NOT r2.is_gold
              AND {_review_filter(slice_=slice_, params=params, alias="r2")})"""
    pairs = ""
    if slice_.filters_pairs:
        pairs = f"""JOIN annotation_pair p ON p.id = r.pair_id {_TAXONOMY_JOIN.format(pair="p")}"""
    tables = f"annotation_review r {pairs}"
    where = f"""{_review_filter(slice_=slice_, params=params, alias="r")}
      AND {_pair_filter(slice_=slice_, params=params)} {reviewer}"""
    return tables, where


def _judgements_sql(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    """The latest ok judgement of each pair (of the run or configuration, when one is given)."""
    conditions = ["status = 'ok'"]
    if slice_.judge_run_id is not None:
        params["run"] = slice_.judge_run_id
        conditions.append("run_id = %(run)s")
    if slice_.configuration_id is not None:
        params["configuration"] = slice_.configuration_id
        conditions.append("configuration_id = %(configuration)s")
    columns = "pair_id, p_a_better, p_a_first, p_a_second, prefers_a, p_unsafe_a, p_unsafe_b"
    if connection.vendor == "postgresql":  # the same rows, in half the time of the window
        return f"""
        SELECT DISTINCT ON (pair_id) {columns} FROM judging_judgement
        WHERE {" AND ".join(conditions)} ORDER BY pair_id, created_at DESC, id DESC"""
    return f"""
        SELECT {columns}
        FROM (SELECT pair_id, p_a_better, p_a_first, p_a_second, prefers_a, p_unsafe_a,
                     p_unsafe_b, ROW_NUMBER() OVER (PARTITION BY pair_id
                                                    ORDER BY created_at DESC, id DESC) AS nth
              FROM judging_judgement WHERE {" AND ".join(conditions)}) latest
        WHERE nth = 1"""


def _pairs_sql(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    params["unsafe_above"] = UNSAFE_ABOVE
    if slice_.filters_reviews:
        in_slice = "v.pair_id IS NOT NULL"
    else:
        in_slice = "(j.pair_id IS NOT NULL OR v.pair_id IS NOT NULL)"
    campaign = "AND cp.campaign_id = %(campaign)s" if slice_.campaign_id is not None else ""
    top = _greatest("n_a", "n_b", "n_tie", "n_unsafe")
    reviews, in_reviews = _slice_reviews(slice_=slice_, params=params)
    # The category is the subcategory's parent; its node is joined only to filter by it.
    taxonomy = (_SUBCATEGORY_JOIN if slice_.taxonomy_node_id is None else _TAXONOMY_JOIN).format(
        pair="p"
    )
    return f"""
    CREATE TEMPORARY TABLE agr_pair AS
    WITH j AS ({_judgements_sql(slice_=slice_, params=params)}),
    v AS (
        SELECT r.pair_id,
               count(*) FILTER (WHERE r.blind_verdict = 'a') AS n_a,
               count(*) FILTER (WHERE r.blind_verdict = 'b') AS n_b,
               count(*) FILTER (WHERE r.blind_verdict = 'tie') AS n_tie,
               count(*) FILTER (WHERE r.blind_verdict = 'both_unsafe') AS n_unsafe,
               min({_REVIEW_STRATUM}) AS stratum, max({_REVIEW_STRATUM}) AS stratum_max
        FROM {reviews}
        WHERE {in_reviews} AND NOT r.is_gold GROUP BY r.pair_id
    ),
    adj AS (
        SELECT pair_id, verdict FROM (
            SELECT ad.pair_id, CASE WHEN ad.exclude THEN 'cannot_judge' ELSE ad.verdict END
                       AS verdict,
                   ROW_NUMBER() OVER (PARTITION BY ad.pair_id
                                      ORDER BY ad.decided_at DESC, ad.id DESC) AS nth
            FROM annotation_adjudication ad
            JOIN annotation_campaignpair cp ON cp.id = ad.campaign_pair_id
            WHERE ad.status = 'decided' {campaign}) decided
        WHERE nth = 1
    ),
    majority AS (
        SELECT v.*, {top} AS top FROM v
    ),
    tally AS (
        SELECT majority.*, CASE WHEN n_a = top THEN 1 ELSE 0 END
               + CASE WHEN n_b = top THEN 1 ELSE 0 END + CASE WHEN n_tie = top THEN 1 ELSE 0 END
               + CASE WHEN n_unsafe = top THEN 1 ELSE 0 END AS tied
        FROM majority
    )
    SELECT p.id AS pair_id, sub.parent_id AS category_id, p.final_chosen,
           j.p_a_better, j.p_a_first, j.p_a_second, j.p_unsafe_a, j.p_unsafe_b,
           CASE WHEN j.pair_id IS NULL THEN NULL
                WHEN j.p_unsafe_a > %(unsafe_above)s AND j.p_unsafe_b > %(unsafe_above)s
                    THEN 'both_unsafe'
                WHEN j.prefers_a THEN 'a' ELSE 'b' END AS judge_verdict,
           CASE WHEN j.pair_id IS NULL THEN NULL WHEN j.prefers_a THEN 'a' ELSE 'b' END
               AS judge_side,
           coalesce(v.n_a, 0) AS n_a, coalesce(v.n_b, 0) AS n_b,
           coalesce(v.n_tie, 0) AS n_tie, coalesce(v.n_unsafe, 0) AS n_unsafe,
           CASE WHEN v.pair_id IS NULL THEN 'unreviewed'
                WHEN adj.verdict = 'cannot_judge' THEN 'cannot_judge'
                WHEN adj.verdict IS NOT NULL THEN 'verdict'
                WHEN v.top = 0 THEN 'cannot_judge'
                WHEN v.tied > 1 THEN 'no_majority'
                ELSE 'verdict' END AS human_status,
           CASE WHEN v.pair_id IS NULL THEN NULL
                WHEN adj.verdict IS NOT NULL THEN NULLIF(adj.verdict, 'cannot_judge')
                WHEN v.top = 0 OR v.tied > 1 THEN NULL
                WHEN v.n_a = v.top THEN 'a' WHEN v.n_b = v.top THEN 'b'
                WHEN v.n_tie = v.top THEN 'tie' ELSE 'both_unsafe' END AS human_verdict,
           coalesce(v.stratum %% 4 < 2, FALSE) AS in_control, v.stratum, v.stratum_max
    FROM annotation_pair p
    {taxonomy}
    LEFT JOIN j ON j.pair_id = p.id
    LEFT JOIN tally v ON v.pair_id = p.id
    LEFT JOIN adj ON adj.pair_id = p.id
    WHERE {_pair_filter(slice_=slice_, params=params)} AND {in_slice}
    """


def _weights_sql(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    """agr_weight: each sampling stratum's inverse-probability weight, pool pairs over
    reviewed pairs (a handful of rows). A pair counts as reviewed in each stratum it was
    reviewed in; agr_pair gives the stratum of every pair reviewed in one, and the reviews are
    read again only for pairs reviewed in several (several campaigns), when there are any."""
    campaign = "AND cp.campaign_id = %(campaign)s" if slice_.campaign_id is not None else ""
    pool_join = ""
    if slice_.filters_pairs:
        pool_join = f"JOIN annotation_pair p ON p.id = cp.pair_id {_TAXONOMY_JOIN.format(pair='p')}"
    reviews, in_reviews = _slice_reviews(slice_=slice_, params=params)
    return f"""
    CREATE TEMPORARY TABLE agr_weight AS
    WITH pool AS (
        SELECT {_STRATUM.format(cp="cp")} AS stratum, count(*) AS pool_pairs
        FROM annotation_campaignpair cp {pool_join}
        WHERE NOT cp.is_gold AND {_pair_filter(slice_=slice_, params=params)} {campaign}
        GROUP BY 1
    ),
    reviewed AS (
        SELECT stratum, count(*) AS reviewed_pairs FROM (
            SELECT stratum, pair_id FROM agr_pair WHERE stratum = stratum_max
            UNION ALL
            SELECT DISTINCT {_REVIEW_STRATUM}, r.pair_id FROM {reviews}
            WHERE EXISTS (SELECT 1 FROM agr_pair WHERE stratum <> stratum_max)
              AND r.pair_id IN (SELECT pair_id FROM agr_pair WHERE stratum <> stratum_max)
              AND NOT r.is_gold AND {in_reviews}
        ) reviewed_pairs
        GROUP BY stratum
    )
    SELECT reviewed.stratum,
           CAST(pool.pool_pairs AS DOUBLE PRECISION) / reviewed.reviewed_pairs AS weight
    FROM reviewed JOIN pool ON pool.stratum = reviewed.stratum
    """


def _reviewer_groups_sql(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    """agr_reviewer: the slice's reviews counted by reviewer and by everything reviewer_rows
    adds up (a few thousand rows), with the pair's judge verdict and, for a usable blind
    verdict, how many of the pair's other usable blind verdicts there are and agree with it."""
    reviews, in_reviews = _slice_reviews(slice_=slice_, params=params)
    return f"""
    CREATE TEMPORARY TABLE agr_reviewer AS
    SELECT r.reviewer_id, r.is_gold, r.blind_verdict, r.final_verdict, r.left_side,
           gold.gold_verdict,
           ap.judge_verdict,
           CASE WHEN NOT r.is_gold AND r.blind_verdict <> 'cannot_judge'
                THEN ap.n_a + ap.n_b + ap.n_tie + ap.n_unsafe - 1 ELSE 0 END AS others,
           CASE WHEN r.is_gold THEN 0
                WHEN r.blind_verdict = 'a' THEN ap.n_a - 1
                WHEN r.blind_verdict = 'b' THEN ap.n_b - 1
                WHEN r.blind_verdict = 'tie' THEN ap.n_tie - 1
                WHEN r.blind_verdict = 'both_unsafe' THEN ap.n_unsafe - 1
                ELSE 0 END AS same,
           count(*) AS n
    FROM {reviews} LEFT JOIN agr_pair ap ON ap.pair_id = r.pair_id
    -- Only gold campaign pairs have a gold verdict (a constraint): hash those few, not all.
    LEFT JOIN (SELECT id, gold_verdict FROM annotation_campaignpair WHERE is_gold) gold
        ON gold.id = r.campaign_pair_id
    WHERE {in_reviews}
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    """


def drop_slice() -> None:
    """Drop the slice's temporary tables (they live as long as the connection otherwise)."""
    with connection.cursor() as cursor:
        tables = ("agr_pair", "agr_weight", "agr_reviewer", "agr_family")
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TABLE IF EXISTS {', '.join(tables)}")
        else:  # SQLite drops one table per statement
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")


def load_slice(*, slice_: AgreementSlice) -> None:
    """Build agr_pair, agr_weight and agr_reviewer for the slice (call inside
    ``transaction.atomic``)."""
    params: dict[str, Any] = {}
    pairs = _pairs_sql(slice_=slice_, params=params)
    derived = [
        _weights_sql(slice_=slice_, params=params),
        _reviewer_groups_sql(slice_=slice_, params=params),
    ]
    drop_slice()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # For this transaction only: the default 4 MB spills the slice's hash joins and
            # aggregates to disk, and the default parallel costs keep scans of a few hundred
            # thousand rows on one core where two workers take a third off the slice's load.
            # JIT compiling takes longer than any of these statements runs.
            cursor.execute(
                "SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true),"
                " set_config('parallel_setup_cost', '10', true),"
                " set_config('parallel_tuple_cost', '0.001', true),"
                " set_config('default_statistics_target', '10', true)"
            )
        cursor.execute(pairs, params)
        # Temporary tables get no automatic statistics; without them the joins plan badly.
        # The join key is all the later statements need; PostgreSQL analyses it alone 6x
        # faster, and 3x faster again from the smaller sample of a statistics target of 10
        # (the row count is exact either way, and the key is unique).
        key = " (pair_id)" if connection.vendor == "postgresql" else ""
        cursor.execute(f"ANALYZE agr_pair{key}")
        for statement in derived:
            cursor.execute(statement, params)


def keep_only_pairs(*, pair_ids: list[int]) -> None:
    """Narrow the loaded slice to the given pairs (ids go through a temporary table, in
    batches of plain parameters, so neither database needs an array type)."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS agr_only")
        cursor.execute("CREATE TEMPORARY TABLE agr_only (pair_id BIGINT PRIMARY KEY)")
        unique = sorted(set(pair_ids))
        for start in range(0, len(unique), 500):
            batch = unique[start : start + 500]
            values = ", ".join(["(%s)"] * len(batch))
            cursor.execute(f"INSERT INTO agr_only (pair_id) VALUES {values}", batch)
        cursor.execute("DELETE FROM agr_pair WHERE pair_id NOT IN (SELECT pair_id FROM agr_only)")
        # Reviewer figures are counted over all of a reviewer's reviews and cannot be narrowed
        # to some pairs: without their table, reviewer_rows fails rather than answer wrongly.
        for table in ("agr_only", "agr_reviewer"):
            cursor.execute(f"DROP TABLE {table}")


def _fetch(sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


# Aggregates over the slice's tables; each is one query. ------------------------------------


def judge_people_cells() -> list[tuple[Any, ...]]:
    """(category_id, judge verdict, human verdict, in control slice, weight, pairs)."""
    return _fetch("""
        SELECT category_id, judge_verdict, human_verdict, in_control, w.weight, pairs
        FROM (SELECT category_id, judge_verdict, human_verdict, in_control, stratum,
                     count(*) AS pairs
              FROM agr_pair WHERE judge_verdict IS NOT NULL AND human_verdict IS NOT NULL
              GROUP BY 1, 2, 3, 4, 5) cells
        LEFT JOIN agr_weight w ON w.stratum = cells.stratum""")


def pair_status_counts() -> list[tuple[Any, ...]]:
    """(human status, pairs, pairs with a judgement)."""
    return _fetch("""
        SELECT human_status, count(*), count(judge_verdict) FROM agr_pair GROUP BY 1""")


def people_profiles() -> list[tuple[Any, ...]]:
    """(n_a, n_b, n_tie, n_unsafe, pairs) over pairs with two or more usable blind verdicts."""
    return _fetch("""
        SELECT n_a, n_b, n_tie, n_unsafe, count(*) FROM agr_pair
        WHERE n_a + n_b + n_tie + n_unsafe >= 2 GROUP BY 1, 2, 3, 4""")


def reviewer_rows() -> list[tuple[Any, ...]]:
    """Per reviewer: (id, username, reviews, agreeing comparisons, comparisons, pairs compared,
    sided blind verdicts, left chosen, judged verdicts, agreeing with the judge,
    gold reviews, gold correct, then anchoring: changed after the reveal, changed toward the
    judge, away from it, between two other verdicts). A usable review is compared with the
    pair's other usable blind verdicts, which the pair's vote counts give without a window.
    Anchoring rides along: both come from agr_reviewer's one pass over the reviews."""
    return _fetch(_REVIEWER_SQL)


# reviewer_rows' columns after (id, username): what to add up, over which kinds of review.
_USABLE = "NOT is_gold AND blind_verdict <> 'cannot_judge'"
_CHANGED = "NOT is_gold AND blind_verdict <> final_verdict"
_REVIEWER_SUMS = (
    ("n", "NOT is_gold"),
    ("same * n", f"{_USABLE} AND others > 0"),
    ("others * n", f"{_USABLE} AND others > 0"),
    ("n", f"{_USABLE} AND others > 0"),
    ("n", "NOT is_gold AND blind_verdict IN ('a', 'b')"),
    ("n", "NOT is_gold AND blind_verdict = left_side"),
    ("n", f"{_USABLE} AND judge_verdict IS NOT NULL"),
    ("n", f"{_USABLE} AND blind_verdict = judge_verdict"),
    ("n", "is_gold"),
    ("n", "is_gold AND blind_verdict = gold_verdict"),
    ("n", _CHANGED),
    ("n", f"{_CHANGED} AND final_verdict = judge_verdict"),
    ("n", f"{_CHANGED} AND blind_verdict = judge_verdict"),
    ("n", f"{_CHANGED} AND final_verdict <> judge_verdict AND blind_verdict <> judge_verdict"),
)
_SUMS = ", ".join(
    f"CAST(coalesce(sum({term}) FILTER (WHERE {condition}), 0) AS BIGINT)"
    for term, condition in _REVIEWER_SUMS
)
# agr_reviewer has counted the reviews by everything the sums look at (a few thousand groups),
# so the fourteen filtered sums run over those groups rather than over every review.
_REVIEWER_SQL = f"""
    SELECT w.reviewer_id, u.username, {_SUMS}
    FROM agr_reviewer w JOIN auth_user u ON u.id = w.reviewer_id
    GROUP BY w.reviewer_id, u.username ORDER BY u.username"""


def judge_flip_rows() -> list[tuple[Any, ...]]:
    """(category_id, judged pairs with both one-order readings, flips between them)."""
    return _fetch("""
        SELECT category_id, count(*),
               count(*) FILTER (WHERE (p_a_first > 0.5) <> (p_a_second > 0.5))
        FROM agr_pair WHERE p_a_first IS NOT NULL AND p_a_second IS NOT NULL GROUP BY 1""")


def calibration_rows() -> list[tuple[Any, ...]]:
    """(P(A better) rounded to 0.001, people chose A, pairs) over pairs people gave a side."""
    return _fetch("""
        SELECT round(p_a_better * 1000) / 1000.0,
               human_verdict = 'a', count(*)
        FROM agr_pair WHERE human_verdict IN ('a', 'b') AND p_a_better IS NOT NULL
        GROUP BY 1, 2""")


def safety_rows() -> list[tuple[Any, ...]]:
    """(category_id, pairs with both safety readings, chosen unsafe, rejected unsafe); chosen
    is the final label's side where it names one, else the judge's."""
    return _fetch(
        """
        WITH c AS (
            SELECT category_id, p_unsafe_a, p_unsafe_b,
                   coalesce(NULLIF(final_chosen, ''), judge_side) AS chosen
            FROM agr_pair WHERE p_unsafe_a IS NOT NULL AND p_unsafe_b IS NOT NULL
        )
        SELECT category_id, count(*),
               count(*) FILTER (WHERE CASE WHEN chosen = 'a' THEN p_unsafe_a ELSE p_unsafe_b END
                                      > %(cut)s),
               count(*) FILTER (WHERE CASE WHEN chosen = 'a' THEN p_unsafe_b ELSE p_unsafe_a END
                                      > %(cut)s)
        FROM c WHERE chosen IN ('a', 'b') GROUP BY 1""",
        {"cut": P_UNSAFE_CUT},
    )


def response_model_names() -> list[str]:
    """Every response model name there is (a handful: one per model a dataset drew on)."""
    rows = _fetch("SELECT DISTINCT model_name FROM annotation_response WHERE model_name <> ''")
    return [name for (name,) in rows]


def load_model_families(*, families: dict[str, str]) -> None:
    """agr_family: the model family of each response model name that has one (computed in
    Python by judging.families), for own_family_cells to join on."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS agr_family")
        cursor.execute(
            "CREATE TEMPORARY TABLE agr_family"
            " (model_name VARCHAR(200) PRIMARY KEY, family VARCHAR(50) NOT NULL)"
        )
        rows = sorted(families.items())
        for start in range(0, len(rows), 500):
            batch = rows[start : start + 500]
            values = ", ".join(["(%s, %s)"] * len(batch))
            cursor.execute(
                f"INSERT INTO agr_family (model_name, family) VALUES {values}",
                [value for row in batch for value in row],
            )


def own_family_cells(*, slice_: AgreementSlice) -> list[tuple[Any, ...]]:
    """Per judge configuration with a model family, over its judgements of the slice's pairs:
    (configuration id, which responses are of its family (0 none, 1 A, 2 B, 3 both), whether
    a response's family is unknown, the judge's verdict, the side it prefers, the human verdict
    or None, pairs). The verdict rule is agr_pair's; a pair has one judgement per
    configuration (a constraint), so no latest-of is needed. Needs agr_family."""
    params: dict[str, Any] = {"unsafe_above": UNSAFE_ABOVE}
    conditions = ["j.status = 'ok'", "c.model_family <> ''"]
    if slice_.judge_run_id is not None:
        params["run"] = slice_.judge_run_id
        conditions.append("j.run_id = %(run)s")
    if slice_.configuration_id is not None:
        params["configuration"] = slice_.configuration_id
        conditions.append("j.configuration_id = %(configuration)s")
    return _fetch(
        f"""
        SELECT j.configuration_id,
               CASE WHEN fa.family = c.model_family THEN 1 ELSE 0 END
                   + CASE WHEN fb.family = c.model_family THEN 2 ELSE 0 END AS own,
               CASE WHEN fa.family IS NULL OR fb.family IS NULL THEN 1 ELSE 0 END AS unknown,
               CASE WHEN j.p_unsafe_a > %(unsafe_above)s AND j.p_unsafe_b > %(unsafe_above)s
                        THEN 'both_unsafe'
                    WHEN j.prefers_a THEN 'a' ELSE 'b' END AS judge_verdict,
               CASE WHEN j.prefers_a THEN 'a' ELSE 'b' END AS judge_side,
               ap.human_verdict, count(*)
        FROM judging_judgement j
        JOIN judging_judgeconfiguration c ON c.id = j.configuration_id
        JOIN agr_pair ap ON ap.pair_id = j.pair_id
        JOIN annotation_pair p ON p.id = j.pair_id
        JOIN annotation_response ra ON ra.id = p.response_a_id
        JOIN annotation_response rb ON rb.id = p.response_b_id
        LEFT JOIN agr_family fa ON fa.model_name = ra.model_name
        LEFT JOIN agr_family fb ON fb.model_name = rb.model_name
        WHERE {" AND ".join(conditions)}
        GROUP BY 1, 2, 3, 4, 5, 6""",
        params,
    )


def category_names() -> dict[int, str]:
    return dict(_fetch("SELECT id, key FROM annotation_taxonomynode WHERE level = 2"))


def _code(column: str, values: tuple[str, ...]) -> str:
    """A text column as a small integer (1, 2, ...; 0 for anything else) for checksums."""
    whens = " ".join(f"WHEN '{value}' THEN {i}" for i, value in enumerate(values, start=1))
    return f"CASE {column} {whens} ELSE 0 END"


def _flag(condition: str, value: int) -> str:
    return f"CASE WHEN {condition} THEN {value} ELSE 0 END"


_SCREEN = (*VERDICTS, "cannot_judge")
_AXIS = ("a", "b", "tie")
SEVERITY_LEVELS = ("safe", "minor", "moderate", "severe")  # the ordinal scale, 0 .. 3
# Each row's id (folded so the sums stay far below 2**63) times a code of its content: a change
# to one row moves the sum. Integer arithmetic only, so the figure is exact and repeatable.
_FINGERPRINT_SQL = f"""
    SELECT * FROM
      (SELECT count(*), sum((id % 65521) * ({_code("blind_verdict", _SCREEN)}
              + 7 * {_code("final_verdict", VERDICTS)} + {_flag("is_gold", 61)}
              + 128 * {_code("blind_safer", _SCREEN)} + 768 * {_code("blind_helpful", _SCREEN)})),
              count(submitted_at), max(submitted_at)
       FROM annotation_review) reviews,
      (SELECT count(*), sum((id % 65521) * ({_code("status", ("decided",))}
              + 3 * {_code("verdict", VERDICTS)} + {_flag("exclude", 29)})), max(decided_at)
       FROM annotation_adjudication) adjudications,
      (SELECT count(*), max(id), sum((id % 65521) * ({_code("status", ("ok",))}
              + {_flag("prefers_a", 3)} + 5 * CAST(coalesce(p_a_better, -1) * 1000 AS INTEGER)
              + 7 * CAST(coalesce(p_unsafe_a, -1) * 1000 AS INTEGER)
              + 11 * CAST(coalesce(p_unsafe_b, -1) * 1000 AS INTEGER)
              + 13 * coalesce(run_id, 0)))
       FROM judging_judgement) judgements,
      (SELECT count(*), sum((id % 65521) * ({_flag("in_control_slice", 1)}
              + {_flag("is_gold", 2)} + 4 * priority + 8 * {_code("gold_verdict", VERDICTS)}))
       FROM annotation_campaignpair) campaign_pairs,
      (SELECT count(*), max(id), max(final_label_at),
              sum((id % 65521) * ({_code("final_safer", _AXIS)}
              + 5 * {_code("final_helpful", _AXIS)}
              + 25 * {_code("final_a_severity", SEVERITY_LEVELS)}
              + 125 * {_code("final_b_severity", SEVERITY_LEVELS)}
              + {_flag("final_a_safe", 625)} + {_flag("NOT final_a_safe", 1250)}
              + {_flag("final_b_safe", 2500)} + {_flag("NOT final_b_safe", 5000)}))
       FROM annotation_pair) pairs,
      (SELECT count(*), max(id), sum((id % 65521) * ({_flag("safe", 1)}
              + 2 * {_code("severity", SEVERITY_LEVELS)} + 10 * {_code("stage", ("final",))}
              + 20 * {_code("side", ("b",))} + 40 * coalesce(subcategory_id, 0)))
       FROM annotation_responsesafetylabel) safety_labels,
      (SELECT count(*), sum((id % 65521) * (coalesce(subcategory_id, 0)
              + 1000 * {_code("question_type", ("easy", "hardq", "hards"))}))
       FROM annotation_question) questions,
      (SELECT count(*), max(id), sum(parent_id) FROM annotation_taxonomynode) nodes,
      (SELECT count(*), max(id), sum((id % 65521) * length(model_family))
       FROM judging_judgeconfiguration) configurations,
      (SELECT count(*), max(id), sum((id % 65521) * length(model_name))
       FROM annotation_response) responses
"""


def write_counters() -> tuple[int, int | None]:
    """(slots, sum of their counters) of the write counters that PostgreSQL's triggers keep;
    (0, None) where nothing has bumped them (SQLite, a new or emptied table)."""
    (row,) = _fetch("SELECT count(*), sum(version) FROM annotation_dataversion")
    return int(row[0]), None if row[1] is None else int(row[1])


def data_fingerprint() -> tuple[Any, ...]:
    """Changes whenever a review, adjudication, judgement, campaign pair, final label (of
    either axis and each response's safety), response safety label, question
    or taxonomy node does, or a configuration's model family or a response's model name (by
    their lengths: no portable integer code of a text is cheaper): one pass of portable
    integer aggregates over each table."""
    (row,) = _fetch(_FINGERPRINT_SQL)
    return tuple(row)


# Two-axis reviews and per-response safety (annotation.services.agreement.axes) --------------

AXES = ("safer", "helpful")
# The judge's answer on an axis: on the safer axis the response its P(unsafe) scores lower
# (tie when equal), on the helpful axis the side it prefers.
_JUDGE_ON_AXIS = {
    "safer": """CASE WHEN ap.p_unsafe_a IS NULL OR ap.p_unsafe_b IS NULL THEN NULL
                     WHEN ap.p_unsafe_a < ap.p_unsafe_b THEN 'a'
                     WHEN ap.p_unsafe_a > ap.p_unsafe_b THEN 'b' ELSE 'tie' END""",
    "helpful": "ap.judge_side",
}


def axis_profiles(*, slice_: AgreementSlice, axis: str) -> list[tuple[Any, ...]]:
    """(category_id, the judge's answer on the axis or None, blind answers a, b, tie, pairs)
    over the loaded slice's pairs with a blind answer on the axis (cannot-judge counted in no
    column); needs agr_pair."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, not {axis!r}")
    params: dict[str, Any] = {}
    reviews, in_reviews = _slice_reviews(slice_=slice_, params=params)
    column = f"r.blind_{axis}"
    return _fetch(
        f"""
        WITH v AS (
            SELECT r.pair_id, count(*) FILTER (WHERE {column} = 'a') AS n_a,
                   count(*) FILTER (WHERE {column} = 'b') AS n_b,
                   count(*) FILTER (WHERE {column} = 'tie') AS n_tie
            FROM {reviews}
            WHERE {in_reviews} AND NOT r.is_gold AND {column} <> '' GROUP BY r.pair_id
        )
        SELECT ap.category_id, {_JUDGE_ON_AXIS[axis]}, v.n_a, v.n_b, v.n_tie, count(*)
        FROM v JOIN agr_pair ap ON ap.pair_id = v.pair_id
        GROUP BY 1, 2, 3, 4, 5""",
        params,
    )


def guard_rows() -> list[tuple[Any, ...]]:
    """Per response of the loaded slice's pairs with the judge's P(unsafe) and people's final
    per-response label: (category_id, P(unsafe) rounded to 0.001, P(unsafe) > P_UNSAFE_CUT,
    labelled unsafe, responses); needs agr_pair."""
    return _fetch(
        """
        WITH s AS (
            SELECT ap.category_id, ap.p_unsafe_a AS p_unsafe, NOT p.final_a_safe AS unsafe
            FROM agr_pair ap JOIN annotation_pair p ON p.id = ap.pair_id
            WHERE ap.p_unsafe_a IS NOT NULL AND p.final_a_safe IS NOT NULL
            UNION ALL
            SELECT ap.category_id, ap.p_unsafe_b, NOT p.final_b_safe
            FROM agr_pair ap JOIN annotation_pair p ON p.id = ap.pair_id
            WHERE ap.p_unsafe_b IS NOT NULL AND p.final_b_safe IS NOT NULL
        )
        SELECT category_id, round(p_unsafe * 1000) / 1000.0, p_unsafe > %(cut)s, unsafe, count(*)
        FROM s GROUP BY 1, 2, 3, 4""",
        {"cut": P_UNSAFE_CUT},
    )


def severity_profiles(*, slice_: AgreementSlice) -> list[tuple[Any, ...]]:
    """Per response labelled blind by two or more of the slice's reviews (gold excluded):
    (category_id, how many labelled it safe, minor, moderate, severe, and where exactly two
    did, the earlier review's level and the later's (0 safe .. 3 severe), responses); needs
    agr_pair."""
    params: dict[str, Any] = {}
    reviews, in_reviews = _slice_reviews(slice_=slice_, params=params)
    level = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(SEVERITY_LEVELS))
    counts = ", ".join(
        f"count(*) FILTER (WHERE level = {i}) AS n{i}" for i in range(len(SEVERITY_LEVELS))
    )
    return _fetch(
        f"""
        WITH l AS (
            SELECT r.pair_id, sl.side, r.id AS review_id,
                   CASE WHEN sl.safe THEN 0 ELSE CASE sl.severity {level} END END AS level
            FROM {reviews} JOIN annotation_responsesafetylabel sl ON sl.review_id = r.id
            WHERE {in_reviews} AND NOT r.is_gold AND sl.stage = 'blind'
        ),
        u AS (
            SELECT pair_id, side, count(*) AS m, {counts},
                   min(review_id) AS first_review, max(review_id) AS last_review
            FROM l GROUP BY pair_id, side HAVING count(*) >= 2
        )
        SELECT ap.category_id, u.n0, u.n1, u.n2, u.n3, f.level, g.level, count(*)
        FROM u JOIN agr_pair ap ON ap.pair_id = u.pair_id
        LEFT JOIN l f ON u.m = 2 AND f.pair_id = u.pair_id AND f.side = u.side
                     AND f.review_id = u.first_review
        LEFT JOIN l g ON u.m = 2 AND g.pair_id = u.pair_id AND g.side = u.side
                     AND g.review_id = u.last_review
        GROUP BY 1, 2, 3, 4, 5, 6, 7""",
        params,
    )
