-- Annual customer retention rate per calendar year (UTC): ((E - N) / S) x 100, where S =
-- customers at the start of the year, E = customers at its end, N = customers acquired during
-- the year.
--
-- A customer at an instant is an account whose latest signup or cancellation before that instant
-- is a signup (a cancellation at the same instant as a signup wins). Acquired during the year =
-- not a customer at its start and signed up during it (new or returning after a cancellation);
-- as in the formula, an account acquired and lost within the same year still counts in N, which
-- pulls the rate down; retained_from_start (customers at both start and end) and retained_pct
-- (retained_from_start / S x 100) show the share of S kept without that effect.
-- Years run from first_year (0 = the year of the first signup) to the last year that ended
-- before as_of. retention_rate_pct is NULL when S = 0.
-- @param first_year:int 0 First year reported (0 = the year of the first signup)
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
WITH lc AS (
    SELECT account_id, CAST(ts AS TIMESTAMP) AS ts, CAST(kind AS VARCHAR) AS kind
    FROM events WHERE kind = 'signup' OR kind = 'cancellation'
),
bounds AS (
    SELECT COALESCE({{as_of}}, (SELECT max(CAST(ts AS TIMESTAMP)) FROM events) + INTERVAL '1 millisecond') AS as_of,
           CASE WHEN {{first_year}} > 0 THEN {{first_year}}
                ELSE (SELECT CAST(date_part('year', min(ts)) AS BIGINT) FROM lc WHERE kind = 'signup') END AS y0
),
years AS (
    SELECT CAST(g.y AS BIGINT) AS y
    FROM generate_series(1970, 2200) AS g(y) CROSS JOIN bounds b
    WHERE g.y >= b.y0
      AND CAST(CAST(g.y + 1 AS VARCHAR) || '-01-01' AS TIMESTAMP) <= b.as_of
),
instants AS (
    SELECT y AS k, CAST(CAST(y AS VARCHAR) || '-01-01' AS TIMESTAMP) AS t FROM years
    UNION
    SELECT y + 1 AS k, CAST(CAST(y + 1 AS VARCHAR) || '-01-01' AS TIMESTAMP) AS t FROM years
),
latest AS (
    SELECT i.k, l.account_id, max(l.ts) AS last_ts
    FROM instants i JOIN lc l ON l.ts < i.t
    GROUP BY i.k, l.account_id
),
customers AS (
    SELECT la.k, la.account_id
    FROM latest la JOIN lc l ON l.account_id = la.account_id AND l.ts = la.last_ts
    GROUP BY la.k, la.account_id
    HAVING max(CASE WHEN l.kind = 'cancellation' THEN 1 ELSE 0 END) = 0
),
acquired AS (
    SELECT y.y, count(DISTINCT l.account_id) AS n
    FROM years y JOIN lc l
      ON l.kind = 'signup'
     AND l.ts >= CAST(CAST(y.y AS VARCHAR) || '-01-01' AS TIMESTAMP)
     AND l.ts < CAST(CAST(y.y + 1 AS VARCHAR) || '-01-01' AS TIMESTAMP)
    LEFT JOIN customers c ON c.k = y.y AND c.account_id = l.account_id
    WHERE c.account_id IS NULL
    GROUP BY y.y
),
counts AS (
    SELECT k, count(*) AS customers FROM customers GROUP BY k
),
kept AS (
    SELECT s.k AS y, count(*) AS n
    FROM customers s JOIN customers e ON e.k = s.k + 1 AND e.account_id = s.account_id
    GROUP BY s.k
)
SELECT y.y AS year,
       COALESCE(s.customers, 0) AS customers_start,
       COALESCE(e.customers, 0) AS customers_end,
       COALESCE(a.n, 0) AS acquired,
       CASE WHEN s.customers > 0
            THEN round(100.0 * (COALESCE(e.customers, 0) - COALESCE(a.n, 0)) / s.customers, 2) END AS retention_rate_pct,
       COALESCE(kp.n, 0) AS retained_from_start,
       CASE WHEN s.customers > 0 THEN round(100.0 * COALESCE(kp.n, 0) / s.customers, 2) END AS retained_pct
FROM years y
LEFT JOIN counts s ON s.k = y.y
LEFT JOIN counts e ON e.k = y.y + 1
LEFT JOIN acquired a ON a.y = y.y
LEFT JOIN kept kp ON kp.y = y.y
ORDER BY year
