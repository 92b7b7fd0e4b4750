-- Retention cohort table: one row per cohort (accounts whose start fell in the same period) and
-- period N = 0..periods, with the cohort's size and how many of it returned on period N (mode
-- on) or on N or later (mode on_or_after).
--
-- Starts, periods, as_of and the return event are as in retention_nday. A cell exists only once
-- period N of the cohort has completed before as_of: a cohort too young for N has no row for N.
-- A cell where nobody returned has returned = 0.
-- @param granularity:period week Period length: day, week or month
-- @param periods:int 8 Report periods 0..periods
-- @param mode:enum(on|on_or_after) on Returned on period N, or on N or later
-- @param start_event:kind signup Kind of the start event, or any for an account's first event
-- @param return_event:kind any Kind of the return event, or any for any kind except cancellation
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
{{> retention_periods}}
returns AS (
    SELECT DISTINCT o.account_id, o.p - s.start_p AS n
    FROM obs o JOIN starts s ON o.account_id = s.account_id
    WHERE o.p >= s.start_p
      AND (({{return_event}} = 'any' AND o.kind <> 'cancellation') OR o.kind = {{return_event}})
),
last_return AS (
    SELECT account_id, max(n) AS max_n FROM returns GROUP BY account_id
),
cohorts AS (
    SELECT start_p, CAST(date_trunc({{granularity}}, min(start_ts)) AS DATE) AS cohort, count(*) AS size
    FROM starts GROUP BY start_p
),
ns AS (
    SELECT CAST(n AS BIGINT) AS n FROM generate_series(0, {{periods}}) AS g(n)
),
hits AS (
    SELECT s.start_p, ns.n, count(*) AS accounts
    FROM starts s CROSS JOIN ns
    LEFT JOIN returns r ON r.account_id = s.account_id AND r.n = ns.n
    LEFT JOIN last_return l ON l.account_id = s.account_id
    WHERE ({{mode}} = 'on' AND r.n IS NOT NULL) OR ({{mode}} = 'on_or_after' AND l.max_n >= ns.n)
    GROUP BY s.start_p, ns.n
)
SELECT c.cohort, ns.n AS period, c.size AS cohort_size,
       COALESCE(h.accounts, 0) AS returned,
       round(100.0 * COALESCE(h.accounts, 0) / c.size, 2) AS retention_pct
FROM cohorts c CROSS JOIN ns CROSS JOIN now_p
LEFT JOIN hits h ON h.start_p = c.start_p AND h.n = ns.n
WHERE c.start_p + ns.n < now_p.p
ORDER BY c.cohort, period
