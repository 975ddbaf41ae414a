-- Each check on its own, per run and source: how many samples pass it (a sample can fail several).
SELECT s.run, p.source,
       count(*) AS samples,
       count(v.run) AS filtered,
       sum(v.format_ok::INT) AS format_ok,
       sum(v.correct::INT) AS correct,
       sum((v.correct IS NULL AND v.run IS NOT NULL)::INT) AS unverified,
       sum((v.lang_consistency >= 0.9)::INT) AS consistent_language,
       sum(v.keep::INT) AS kept
FROM samples AS s
JOIN prompts AS p USING (prompt_id)
LEFT JOIN verdicts AS v USING (run, prompt_id, sample_idx)
GROUP BY ALL
ORDER BY ALL;
