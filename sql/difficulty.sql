-- Difficulty bands from the pass rate over each prompt's samples (too easy / too hard for RL).
SELECT run, source,
       CASE WHEN n_correct = 0 THEN '0 unsolved'
            WHEN n_correct / n <= 0.2 THEN '1 hard (0-0.2]'
            WHEN n_correct / n < 0.8 THEN '2 medium (0.2-0.8)'
            WHEN n_correct < n THEN '3 easy [0.8-1)'
            ELSE '4 solved by all' END AS band,
       count(*) AS prompts
FROM prompt_stats
GROUP BY ALL
ORDER BY run, source, band;
