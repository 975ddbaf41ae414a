-- Two runs side by side (two teachers, or eval runs of two models), on the prompts both sampled:
-- per prompt, per source and overall: mean pass@1 of A and B, and the prompts only one solves
-- (any correct sample). The runs are DuckDB variables:
--   r1data query --store st --report compare --param run_a=teacher --param run_b=eval-student
--   duckdb: SET VARIABLE run_a = 'teacher'; SET VARIABLE run_b = 'eval-student'; .read compare.sql
WITH runs AS (
    SELECT coalesce(getvariable('run_a'), error('compare needs run_a and run_b (r1data query --param run_a=A --param run_b=B; duckdb: SET VARIABLE run_a = ''A'')')) AS run_a,
           coalesce(getvariable('run_b'), error('compare needs run_b (r1data query --param run_b=B; duckdb: SET VARIABLE run_b = ''B'')')) AS run_b
), pairs AS (
    SELECT a.prompt_id, a.source,
           a.n_correct / a.n AS pass_a, b.n_correct / b.n AS pass_b,
           a.n_correct > 0 AS solved_a, b.n_correct > 0 AS solved_b
    FROM prompt_stats AS a
    JOIN prompt_stats AS b USING (prompt_id)
    JOIN runs ON a.run = runs.run_a AND b.run = runs.run_b
)
SELECT CASE WHEN grouping(source) = 1 THEN 'all'
            WHEN grouping(prompt_id) = 1 THEN 'source' ELSE 'prompt' END AS level,
       CASE WHEN grouping(source) = 1 THEN '*' ELSE source END AS source,
       CASE WHEN grouping(prompt_id) = 1 THEN '*' ELSE prompt_id END AS prompt_id,
       count(*) AS prompts,
       round(avg(pass_a), 4) AS pass_a,
       round(avg(pass_b), 4) AS pass_b,
       round(avg(pass_b) - avg(pass_a), 4) AS delta,
       sum((solved_a AND solved_b)::INT) AS solved_both,
       sum((solved_a AND NOT solved_b)::INT) AS only_a,
       sum((solved_b AND NOT solved_a)::INT) AS only_b,
       sum((NOT solved_a AND NOT solved_b)::INT) AS solved_neither
FROM pairs
GROUP BY GROUPING SETS ((), (source), (source, prompt_id))
ORDER BY grouping(source) DESC, source, grouping(prompt_id) DESC, abs(delta) DESC, prompt_id;
