-- R1 evaluation per run: pass@1 = mean over the k samples (then over prompts), cons@k = majority
-- vote over extracted answers, pass@k = unbiased estimator with k = n.
WITH votes AS (
    SELECT run, prompt_id, answer, count(*) AS votes, bool_or(correct) AS answer_correct
    FROM verdicts
    WHERE answer IS NOT NULL
    GROUP BY ALL
), majority AS (
    SELECT run, prompt_id, arg_max(answer_correct, votes) AS cons_correct
    FROM votes
    GROUP BY ALL
)
SELECT s.run,
       count(*) AS prompts,
       max(s.n) AS k,
       round(avg(s.n_correct / s.n), 4) AS pass_at_1,
       round(avg(coalesce(m.cons_correct, false)::INT), 4) AS cons_at_k,
       round(avg(pass_at_k(s.n, s.n_correct, s.n)), 4) AS pass_at_k
FROM prompt_stats AS s
LEFT JOIN majority AS m USING (run, prompt_id)
GROUP BY s.run
ORDER BY s.run;
