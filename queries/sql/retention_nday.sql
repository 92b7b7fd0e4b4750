-- N-day retention ("returned on period N", Amplitude's N-day / Return On): for each period
-- N = 0..periods, of the accounts whose period N has completed before as_of, the number and
-- share that did a return event in exactly their period N.
--
-- An account starts at its first start event (a later signup, e.g. after a cancellation, is a
-- return event, not a new start). Periods are calendar days, weeks (starting Monday) or months
-- in UTC; period N of an account is the Nth calendar period after its start period. Only events
-- before as_of are seen, and a period counts (denominator and numerator) only once it has
-- completed, so cohorts too young for N are left out of N's denominator. Accounts with no start
-- event are not in any cohort. Return event any = any kind except cancellation.
-- @param granularity:period week Period length: day, week or month
-- @param periods:int 8 Report periods 0..periods
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
ns AS (
    SELECT CAST(n AS BIGINT) AS n FROM generate_series(0, {{periods}}) AS g(n)
),
eligible AS (
    SELECT ns.n, count(*) AS accounts
    FROM starts s CROSS JOIN ns CROSS JOIN now_p
    WHERE s.start_p + ns.n < now_p.p
    GROUP BY ns.n
),
returned AS (
    SELECT r.n, count(*) AS accounts
    FROM returns r JOIN starts s ON r.account_id = s.account_id CROSS JOIN now_p
    WHERE r.n <= {{periods}} AND s.start_p + r.n < now_p.p
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
