-- Retention cohort table: one row per cohort (accounts whose start fell in the same period) and
-- period N = 0..periods, with the cohort's size and how many of it returned on period N (mode
-- on) or on N or later (mode on_or_after).
--
-- Starts, periods, as_of and the return event are as in retention_nday; a cohort is the
-- accounts whose start fell in one calendar period. A cell exists only once period N has
-- completed before as_of for every account of the cohort: a cohort too young for N has no row
-- for N.
-- A cell where nobody returned has returned = 0.
-- @param granularity:period week Period length: day, week or month
-- @param window:enum(rolling|calendar) rolling Periods counted from each account's own start (rolling) or calendar periods
-- @param periods:int 8 Report periods 0..periods
-- @param mode:enum(on|on_or_after) on Returned on period N, or on N or later
-- @param start_event:kind signup Kind of the start event, or any for an account's first event
-- @param return_event:kind any Kind of the return event, or any for any kind except cancellation
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
{{> retention_periods}}
returns AS (
    SELECT DISTINCT account_id, n FROM obs_n
    WHERE ({{return_event}} = 'any' AND kind <> 'cancellation') OR kind = {{return_event}}
),
last_return AS (
    SELECT account_id, max(n) AS max_n FROM returns GROUP BY account_id
),
cohorts AS (
    SELECT start_p, CAST(date_trunc({{granularity}}, min(start_ts)) AS DATE) AS cohort, count(*) AS size,
           min(done_n) AS done_n
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
FROM cohorts c CROSS JOIN ns
LEFT JOIN hits h ON h.start_p = c.start_p AND h.n = ns.n
WHERE ns.n < c.done_n
ORDER BY c.cohort, period
