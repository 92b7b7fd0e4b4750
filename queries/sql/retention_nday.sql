-- N-day retention ("returned on period N", Amplitude's N-day / Return On): for each period
-- N = 0..periods, of the accounts whose period N has completed before as_of, the number and
-- share that did a return event in exactly their period N.
--
-- An account starts at its first start event (a later signup, e.g. after a cancellation, is a
-- return event, not a new start). Periods are days, weeks or months. With window = rolling
-- (the default, as in most product analytics tools) period N of an account is the Nth span of
-- 1, 7 or 30 days from its start instant; with window = calendar, the Nth calendar day, week
-- (starting Monday) or month in UTC after its start period. Only events before as_of are seen,
-- and a period counts (denominator and numerator) only once it has completed, so accounts too
-- young for N are left out of N's denominator. Accounts with no start
-- event are not in any cohort. Return event any = any kind except cancellation.
-- @param granularity:period week Period length: day, week or month
-- @param window:enum(rolling|calendar) rolling Periods counted from each account's own start (rolling) or calendar periods
-- @param periods:int 8 Report periods 0..periods
-- @param start_event:kind signup Kind of the start event, or any for an account's first event
-- @param return_event:kind any Kind of the return event, or any for any kind except cancellation
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
{{> retention_periods}}
returns AS (
    SELECT DISTINCT account_id, n FROM obs_n
    WHERE ({{return_event}} = 'any' AND kind <> 'cancellation') OR kind = {{return_event}}
),
ns AS (
    SELECT CAST(n AS BIGINT) AS n FROM generate_series(0, {{periods}}) AS g(n)
),
eligible AS (
    SELECT ns.n, count(*) AS accounts
    FROM starts s CROSS JOIN ns
    WHERE ns.n < s.done_n
    GROUP BY ns.n
),
returned AS (
    SELECT r.n, count(*) AS accounts
    FROM returns r JOIN starts s ON r.account_id = s.account_id
    WHERE r.n <= {{periods}} AND r.n < s.done_n
    GROUP BY r.n
)
SELECT ns.n AS period,
       COALESCE(e.accounts, 0) AS eligible,
       COALESCE(r.accounts, 0) AS returned,
       CASE WHEN e.accounts > 0 THEN round(100.0 * COALESCE(r.accounts, 0) / e.accounts, 2) END AS retention_pct
FROM ns
LEFT JOIN eligible e ON e.n = ns.n
LEFT JOIN returned r ON r.n = ns.n
ORDER BY period
