-- Completion length (tokens) by run, finish reason and verdict.
SELECT s.run, s.finish_reason,
       CASE WHEN v.keep IS NULL THEN 'unfiltered' WHEN v.keep THEN 'kept' ELSE 'rejected' END
           AS verdict,
       count(*) AS samples,
       round(avg(s.num_tokens), 1) AS mean_tokens,
       quantile_cont(s.num_tokens, 0.5) AS p50,
       quantile_cont(s.num_tokens, 0.9) AS p90,
       max(s.num_tokens) AS max_tokens
FROM samples AS s
LEFT JOIN verdicts AS v USING (run, prompt_id, sample_idx)
GROUP BY ALL
ORDER BY ALL;
