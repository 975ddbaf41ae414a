-- The held-out exam (r1data/exam.py), models side by side per task family. Runs are named
-- exam-<model>-suffix (the R1 user suffix in the prompt) and exam-<model>-plain (without it).
-- pass_at_1: the boxed answer is correct (mean over the k samples, then over prompts) and is a
--   value, not the question's expression restated (math-verify counts "8 + 8" right for 16);
-- format_rate: the sample closes </think> and boxes an answer after it (the R1 format);
-- last_answer: the last number of the completion equals the gold (what a weak model gets);
-- prompt_pass: each prompt's pass@1, for the bootstrap interval over prompts.
WITH per_prompt AS (
    SELECT s.run, replace(p.source, 'exam/', '') AS family, s.prompt_id,
           count(*) AS k,
           avg((coalesce(v.correct, false) AND contains(s.final, '\boxed')
                AND NOT regexp_matches(coalesce(v.answer, ''), '[0-9)]\s*([-+*/×÷]|\\times|\\div)'))::INT)
               AS pass_at_1,
           avg((s.reasoning IS NOT NULL AND contains(s.final, '\boxed'))::INT) AS format_rate,
           avg(coalesce(try_cast(replace(list_last(regexp_extract_all(
                   s.completion, '-?[0-9][0-9,]*(?:\.[0-9]+)?')), ',', '') AS DOUBLE)
               = try_cast(p.answer AS DOUBLE), false)::INT) AS last_answer
    FROM samples AS s
    JOIN prompts AS p USING (prompt_id)
    LEFT JOIN verdicts AS v USING (run, prompt_id, sample_idx)
    WHERE p.source LIKE 'exam/%' AND s.run LIKE 'exam-%'
    GROUP BY ALL
)
SELECT run, coalesce(family, 'all') AS family,
       count(*) AS prompts,
       max(k) AS k,
       round(avg(pass_at_1), 4) AS pass_at_1,
       round(avg(format_rate), 4) AS format_rate,
       round(avg(last_answer), 4) AS last_answer,
       list(pass_at_1 ORDER BY prompt_id) AS prompt_pass
FROM per_prompt
GROUP BY GROUPING SETS ((run, family), (run))
ORDER BY run, family NULLS FIRST;
