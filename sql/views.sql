-- r1data views over a sample store. Paths are relative to the store root: run from inside it
-- (cd STORE && duckdb -init views.sql); `r1data query` replaces each glob by the files it matches.
-- Each table folder holds a 0-row _schema.parquet, so these views exist even on an empty store.

CREATE OR REPLACE VIEW prompts AS
SELECT * EXCLUDE (filename) FROM read_parquet('prompts/*.parquet', union_by_name = true, filename = true);

CREATE OR REPLACE VIEW samples AS
SELECT * EXCLUDE (filename) FROM read_parquet('samples/**/*.parquet', union_by_name = true, filename = true);

-- One verdict per sample: the newest filter run wins when a run was filtered more than once.
CREATE OR REPLACE VIEW verdicts AS
SELECT * EXCLUDE (filename)
FROM read_parquet('verdicts/**/*.parquet', union_by_name = true, filename = true)
QUALIFY row_number() OVER (PARTITION BY run, prompt_id, sample_idx ORDER BY created_at DESC) = 1;

-- Curated sets: selected samples with their prompt and completion.
CREATE OR REPLACE VIEW curated AS
SELECT c.curated, s.*, p.source, p.problem, p.answer, p.domain, p.tests, p.meta
FROM read_parquet('curated/**/*.parquet', union_by_name = true) AS c
JOIN samples AS s USING (run, prompt_id, sample_idx)
JOIN prompts AS p USING (prompt_id);

-- Near-duplicate clusters (MinHash-LSH, r1data.neardup): prompts found at ingest, with their
-- problems; kept samples of different prompts found by select, per curated set.
CREATE OR REPLACE VIEW prompt_clusters AS
SELECT c.prompt_id, c.cluster, c.similarity, c.created_at, p.source, p.problem
FROM read_parquet('prompt_clusters/*.parquet', union_by_name = true) AS c
JOIN prompts AS p USING (prompt_id);

CREATE OR REPLACE VIEW sample_clusters AS
SELECT * FROM read_parquet('sample_clusters/**/*.parquet', union_by_name = true);

-- Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), as a stable product.
CREATE OR REPLACE MACRO pass_at_k(n, c, k) AS
CASE WHEN n - c < k THEN 1.0
     ELSE 1.0 - list_reduce([1.0 - k / i for i in range((n - c + 1)::BIGINT, (n + 1)::BIGINT)], lambda x, y: x * y, 1.0)
END;

-- Per prompt and run: samples drawn, correct among them, and the pass-rate statistics.
CREATE OR REPLACE VIEW prompt_stats AS
SELECT s.run, s.prompt_id, p.source, p.domain,
       count(*) AS n,
       count(v.correct) AS n_verified,
       coalesce(sum(v.correct::INT), 0)::BIGINT AS n_correct,
       coalesce(sum(v.keep::INT), 0)::BIGINT AS n_kept,
       avg(s.num_tokens) AS mean_tokens
FROM samples AS s
JOIN prompts AS p USING (prompt_id)
LEFT JOIN verdicts AS v USING (run, prompt_id, sample_idx)
GROUP BY ALL;
