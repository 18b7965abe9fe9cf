"""SQL for the agreement dashboard: two temporary tables per slice, then small aggregates.

PostgreSQL only (DISTINCT ON, FILTER, temporary tables). ``load_slice`` builds, inside the
caller's transaction:

- ``agr_review``: the slice's submitted reviews with their screen side and campaign stratum;
- ``agr_pair``: one row per pair of the slice: taxonomy, the judge's verdict and probabilities,
  people's vote counts (blind verdicts), the human verdict and its inverse-probability weight.

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
from datetime import date, timedelta
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
        conditions.append("cp.campaign_id = %(campaign)s")
    if slice_.week is not None:
        params["week_start"] = slice_.week
        params["week_end"] = slice_.week + timedelta(days=7)
        conditions.append(
            f"{alias}.submitted_at >= %(week_start)s AND {alias}.submitted_at < %(week_end)s"
        )
    return " AND ".join(conditions)


_TAXONOMY_JOIN = """
    JOIN annotation_question q ON q.id = {pair}.question_id
    LEFT JOIN annotation_taxonomynode sub ON sub.id = q.subcategory_id
    LEFT JOIN annotation_taxonomynode cat ON cat.id = sub.parent_id
"""


def _reviews_sql(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    reviewer = ""
    if slice_.reviewer_id is not None:
        # The reviewer's pairs, with every review of them: agreement needs the others too.
        params["reviewer"] = slice_.reviewer_id
        reviewer = f"""AND r.pair_id IN (
            SELECT r2.pair_id FROM annotation_review r2
            JOIN annotation_campaignpair cp ON cp.id = r2.campaign_pair_id
            WHERE r2.reviewer_id = %(reviewer)s AND NOT r2.is_gold
              AND {_review_filter(slice_=slice_, params=params, alias="r2")})"""
    return f"""
    CREATE TEMPORARY TABLE agr_review ON COMMIT DROP AS
    SELECT r.id, r.pair_id, r.reviewer_id, r.blind_verdict, r.final_verdict, r.is_gold,
           r.submitted_at, a.left_side, cp.campaign_id, cp.in_control_slice,
           cp.priority > 0 AS flagged, cp.gold_verdict
    FROM annotation_review r
    JOIN annotation_campaignpair cp ON cp.id = r.campaign_pair_id
    JOIN annotation_assignment a ON a.id = r.assignment_id
    JOIN annotation_pair p ON p.id = r.pair_id
    {_TAXONOMY_JOIN.format(pair="p")}
    WHERE {_review_filter(slice_=slice_, params=params, alias="r")}
      AND {_pair_filter(slice_=slice_, params=params)} {reviewer}
    """


def _judgements_sql(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    conditions = ["status = 'ok'"]
    if slice_.judge_run_id is not None:
        params["run"] = slice_.judge_run_id
        conditions.append("run_id = %(run)s")
    if slice_.configuration_id is not None:
        params["configuration"] = slice_.configuration_id
        conditions.append("configuration_id = %(configuration)s")
    return f"""
        SELECT DISTINCT ON (pair_id) pair_id, p_a_better, p_a_first, p_a_second, prefers_a,
               p_unsafe_a, p_unsafe_b
        FROM judging_judgement WHERE {" AND ".join(conditions)}
        ORDER BY pair_id, created_at DESC, id DESC"""


def _pairs_sql(*, slice_: AgreementSlice, params: dict[str, Any]) -> str:
    params["unsafe_above"] = UNSAFE_ABOVE
    if slice_.filters_reviews:
        in_slice = "p.id IN (SELECT pair_id FROM agr_review WHERE NOT is_gold)"
    else:
        in_slice = "(j.pair_id IS NOT NULL OR v.pair_id IS NOT NULL)"
    campaign = "AND campaign_id = %(campaign)s" if slice_.campaign_id is not None else ""
    return f"""
    CREATE TEMPORARY TABLE agr_pair ON COMMIT DROP AS
    WITH j AS ({_judgements_sql(slice_=slice_, params=params)}),
    v AS (
        SELECT pair_id,
               count(*) FILTER (WHERE blind_verdict = 'a') AS n_a,
               count(*) FILTER (WHERE blind_verdict = 'b') AS n_b,
               count(*) FILTER (WHERE blind_verdict = 'tie') AS n_tie,
               count(*) FILTER (WHERE blind_verdict = 'both_unsafe') AS n_unsafe,
               count(*) FILTER (WHERE blind_verdict = 'cannot_judge') AS n_cannot,
               min(campaign_id) AS campaign_id
        FROM agr_review WHERE NOT is_gold GROUP BY pair_id
    ),
    adj AS (
        SELECT DISTINCT ON (pair_id) pair_id,
               CASE WHEN exclude THEN 'cannot_judge' ELSE verdict END AS verdict
        FROM annotation_adjudication ad
        WHERE status = 'decided' AND pair_id IN (SELECT pair_id FROM v)
          AND campaign_pair_id IN (SELECT id FROM annotation_campaignpair WHERE TRUE {campaign})
        ORDER BY pair_id, decided_at DESC, id DESC
    ),
    pool AS (
        SELECT cp.campaign_id, cp.priority > 0 AS flagged, cp.in_control_slice,
               count(*) AS pool_pairs
        FROM annotation_campaignpair cp JOIN annotation_pair p ON p.id = cp.pair_id
        {_TAXONOMY_JOIN.format(pair="p")}
        WHERE NOT cp.is_gold AND {_pair_filter(slice_=slice_, params=params)}
        {"AND cp.campaign_id = %(campaign)s" if slice_.campaign_id is not None else ""}
        GROUP BY 1, 2, 3
    ),
    reviewed AS (
        SELECT campaign_id, flagged, in_control_slice, count(DISTINCT pair_id) AS reviewed_pairs
        FROM agr_review WHERE NOT is_gold GROUP BY 1, 2, 3
    ),
    stratum AS (
        SELECT DISTINCT ON (pair_id) pair_id, flagged, in_control_slice, campaign_id
        FROM agr_review WHERE NOT is_gold ORDER BY pair_id, campaign_id, in_control_slice DESC
    ),
    majority AS (
        SELECT v.*, GREATEST(n_a, n_b, n_tie, n_unsafe) AS top,
               (n_a = GREATEST(n_a, n_b, n_tie, n_unsafe))::int
               + (n_b = GREATEST(n_a, n_b, n_tie, n_unsafe))::int
               + (n_tie = GREATEST(n_a, n_b, n_tie, n_unsafe))::int
               + (n_unsafe = GREATEST(n_a, n_b, n_tie, n_unsafe))::int AS tied
        FROM v
    )
    SELECT p.id AS pair_id, q.question_type, sub.id AS subcategory_id, cat.id AS category_id,
           cat.parent_id AS domain_id, p.final_chosen,
           j.p_a_better, j.p_a_first, j.p_a_second, j.p_unsafe_a, j.p_unsafe_b,
           CASE WHEN j.pair_id IS NULL THEN NULL
                WHEN j.p_unsafe_a > %(unsafe_above)s AND j.p_unsafe_b > %(unsafe_above)s
                    THEN 'both_unsafe'
                WHEN j.prefers_a THEN 'a' ELSE 'b' END AS judge_verdict,
           CASE WHEN j.pair_id IS NULL THEN NULL WHEN j.prefers_a THEN 'a' ELSE 'b' END
               AS judge_side,
           coalesce(m.n_a, 0) AS n_a, coalesce(m.n_b, 0) AS n_b,
           coalesce(m.n_tie, 0) AS n_tie, coalesce(m.n_unsafe, 0) AS n_unsafe,
           coalesce(m.n_cannot, 0) AS n_cannot,
           CASE WHEN m.pair_id IS NULL THEN 'unreviewed'
                WHEN adj.verdict = 'cannot_judge' THEN 'cannot_judge'
                WHEN adj.verdict IS NOT NULL THEN 'verdict'
                WHEN m.top = 0 THEN 'cannot_judge'
                WHEN m.tied > 1 THEN 'no_majority'
                ELSE 'verdict' END AS human_status,
           CASE WHEN m.pair_id IS NULL THEN NULL
                WHEN adj.verdict IS NOT NULL THEN NULLIF(adj.verdict, 'cannot_judge')
                WHEN m.top = 0 OR m.tied > 1 THEN NULL
                WHEN m.n_a = m.top THEN 'a' WHEN m.n_b = m.top THEN 'b'
                WHEN m.n_tie = m.top THEN 'tie' ELSE 'both_unsafe' END AS human_verdict,
           coalesce(s.in_control_slice, FALSE) AS in_control,
           pool.pool_pairs::float8 / NULLIF(rv.reviewed_pairs, 0) AS weight
    FROM annotation_pair p
    {_TAXONOMY_JOIN.format(pair="p")}
    LEFT JOIN j ON j.pair_id = p.id
    LEFT JOIN majority m ON m.pair_id = p.id
    LEFT JOIN v ON v.pair_id = p.id
    LEFT JOIN adj ON adj.pair_id = p.id
    LEFT JOIN stratum s ON s.pair_id = p.id
    LEFT JOIN pool ON (pool.campaign_id, pool.flagged, pool.in_control_slice)
                    = (s.campaign_id, s.flagged, s.in_control_slice)
    LEFT JOIN reviewed rv ON (rv.campaign_id, rv.flagged, rv.in_control_slice)
                           = (s.campaign_id, s.flagged, s.in_control_slice)
    WHERE {_pair_filter(slice_=slice_, params=params)} AND {in_slice}
    """


def load_slice(*, slice_: AgreementSlice) -> None:
    """Build agr_review and agr_pair for the slice (call inside ``transaction.atomic``)."""
    params: dict[str, Any] = {}
    reviews = _reviews_sql(slice_=slice_, params=params)
    pairs = _pairs_sql(slice_=slice_, params=params)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.agr_review, pg_temp.agr_pair")
        cursor.execute(reviews, params)
        cursor.execute(pairs, params)
        cursor.execute("ANALYZE agr_pair; ANALYZE agr_review")


def _fetch(sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return list(cursor.fetchall())


# Aggregates over the slice's tables; each is one query. ------------------------------------


def judge_people_cells() -> list[tuple[Any, ...]]:
    """(category_id, judge verdict, human verdict, in control slice, weight, pairs)."""
    return _fetch("""
        SELECT category_id, judge_verdict, human_verdict, in_control, weight, count(*)
        FROM agr_pair WHERE judge_verdict IS NOT NULL AND human_verdict IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5""")


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
    gold reviews, gold correct)."""
    return _fetch("""
        WITH w AS (
            SELECT r.*, p.judge_verdict,
                   count(*) FILTER (WHERE NOT r.is_gold AND r.blind_verdict <> 'cannot_judge')
                       OVER (PARTITION BY r.pair_id) - 1 AS others,
                   count(*) FILTER (WHERE NOT r.is_gold) OVER (PARTITION BY r.pair_id,
                       r.blind_verdict) - 1 AS same
            FROM agr_review r LEFT JOIN agr_pair p ON p.pair_id = r.pair_id
        )
        SELECT w.reviewer_id, u.username,
               count(*) FILTER (WHERE NOT is_gold),
               coalesce(sum(same) FILTER (WHERE usable AND others > 0), 0),
               coalesce(sum(others) FILTER (WHERE usable AND others > 0), 0),
               count(*) FILTER (WHERE usable AND others > 0),
               count(*) FILTER (WHERE NOT is_gold AND blind_verdict IN ('a', 'b')),
               count(*) FILTER (WHERE NOT is_gold AND blind_verdict = left_side),
               count(*) FILTER (WHERE usable AND judge_verdict IS NOT NULL),
               count(*) FILTER (WHERE usable AND blind_verdict = judge_verdict),
               count(*) FILTER (WHERE is_gold),
               count(*) FILTER (WHERE is_gold AND blind_verdict = gold_verdict)
        FROM (SELECT *, NOT is_gold AND blind_verdict <> 'cannot_judge' AS usable FROM w) w
        JOIN auth_user u ON u.id = w.reviewer_id
        GROUP BY 1, 2 ORDER BY 2""")


def judge_flip_rows() -> list[tuple[Any, ...]]:
    """(category_id, judged pairs with both one-order readings, flips between them)."""
    return _fetch("""
        SELECT category_id, count(*),
               count(*) FILTER (WHERE (p_a_first > 0.5) <> (p_a_second > 0.5))
        FROM agr_pair WHERE p_a_first IS NOT NULL AND p_a_second IS NOT NULL GROUP BY 1""")


def anchoring_rows() -> list[tuple[Any, ...]]:
    """(changed, direction, reviews): direction toward / away from the judge, or other."""
    return _fetch("""
        SELECT r.blind_verdict <> r.final_verdict,
               CASE WHEN p.judge_verdict IS NULL THEN 'no_judge'
                    WHEN r.blind_verdict = r.final_verdict THEN 'kept'
                    WHEN r.final_verdict = p.judge_verdict THEN 'toward'
                    WHEN r.blind_verdict = p.judge_verdict THEN 'away'
                    ELSE 'other' END,
               count(*)
        FROM agr_review r LEFT JOIN agr_pair p ON p.pair_id = r.pair_id
        WHERE NOT r.is_gold GROUP BY 1, 2""")


def calibration_rows() -> list[tuple[Any, ...]]:
    """(P(A better) rounded to 0.001, people chose A, pairs) over pairs people gave a side."""
    return _fetch("""
        SELECT round(p_a_better::numeric, 3)::float8, human_verdict = 'a', count(*)
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


def category_names() -> dict[int, str]:
    return dict(_fetch("SELECT id, key FROM annotation_taxonomynode WHERE level = 2"))


def data_fingerprint() -> tuple[Any, ...]:
    """Changes whenever a review, adjudication, judgement, campaign pair or final label does."""
    (row,) = _fetch("""
        SELECT
          (SELECT (count(*), coalesce(sum(hashtext(concat_ws('|', id, blind_verdict,
                  final_verdict, submitted_at, is_gold))::bigint), 0))::text
           FROM annotation_review),
          (SELECT (count(*), coalesce(sum(hashtext(concat_ws('|', id, status, verdict, exclude,
                  decided_at))::bigint), 0))::text FROM annotation_adjudication),
          (SELECT (count(*), max(id), coalesce(sum(hashtext(concat_ws('|', id, status,
                  p_a_better, prefers_a, p_unsafe_a, p_unsafe_b, run_id))::bigint), 0))::text
           FROM judging_judgement),
          (SELECT (count(*), coalesce(sum(priority), 0),
                  count(*) FILTER (WHERE in_control_slice), count(*) FILTER (WHERE is_gold),
                  coalesce(sum(hashtext(gold_verdict)::bigint), 0))::text
           FROM annotation_campaignpair),
          (SELECT (count(*), max(final_label_at), max(id))::text FROM annotation_pair),
          (SELECT (count(*), coalesce(sum(hashtext(concat_ws('|', id, subcategory_id,
                  question_type))::bigint), 0))::text FROM annotation_question),
          (SELECT (count(*), max(id), coalesce(sum(parent_id), 0))::text
           FROM annotation_taxonomynode)
        """)
    return tuple(row)
