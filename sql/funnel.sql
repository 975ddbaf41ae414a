-- Rejection-sampling funnel per run and source: how many samples each stage removed.
-- reject_reason holds the first failing check, so the rows add up to the total. Exam runs
-- (exam-*) are evaluations, not rejection sampling: `--report exam` has them.
WITH j AS (
    SELECT s.run, p.source, v.keep, v.reject_reason
    FROM samples AS s
    JOIN prompts AS p USING (prompt_id)
    LEFT JOIN verdicts AS v USING (run, prompt_id, sample_idx)
    WHERE s.run NOT LIKE 'exam-%'
)
SELECT run, source,
       coalesce(CASE WHEN keep THEN 'kept' END, reject_reason,
                CASE WHEN keep IS NULL THEN 'unfiltered' END, 'rejected') AS outcome,
       count(*) AS samples,
       round(count(*) / sum(count(*)) OVER (PARTITION BY run, source), 4) AS fraction
FROM j
GROUP BY run, source, outcome
ORDER BY run, source, outcome = 'kept' DESC, samples DESC;
