-- pass@k per prompt over the n samples of each run (R1 reports pass@1 as the mean over k samples).
SELECT run, source, prompt_id, n, n_correct,
       round(n_correct / n, 4) AS pass_at_1,
       round(pass_at_k(n, n_correct, least(8, n)), 4) AS pass_at_8,
       round(pass_at_k(n, n_correct, n), 4) AS pass_at_n
FROM prompt_stats
ORDER BY run, source, pass_at_1 DESC, prompt_id;
