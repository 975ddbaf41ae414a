-- Pass rate per run and source: mean pass@1 over prompts, and how many prompts any sample solved.
SELECT run, source,
       count(*) AS prompts,
       sum(n) AS samples,
       sum(n_correct) AS correct,
       round(avg(n_correct / n), 4) AS mean_pass_at_1,
       round(avg(pass_at_k(n, n_correct, n)), 4) AS pass_at_n,
       sum((n_correct > 0)::INT) AS prompts_solved
FROM prompt_stats
GROUP BY ALL
ORDER BY run, source;
