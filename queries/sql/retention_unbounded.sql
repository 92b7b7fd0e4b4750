-- Unbounded retention ("returned on period N or later", Amplitude's Return On or After): for
-- each period N = 0..periods, of the accounts whose period N has completed before as_of, the
-- number and share that did a return event in their period N or any later one (up to as_of).
--
-- Starts, periods, as_of and the return event are as in retention_nday: an account counts in
-- N's denominator only once N periods have elapsed since its start period, so young cohorts do
-- not pull the curve down. The curve never rises with N.
-- @param granularity:period week Period length: day, week or month
-- @param window:enum(rolling|calendar) rolling Periods counted from each account's own start (rolling) or calendar periods
-- @param periods:int 8 Report periods 0..periods
-- @param start_event:kind signup Kind of the start event, or any for an account's first event
-- @param return_event:kind any Kind of the return event, or any for any kind except cancellation
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
{{> retention_periods}}
last_return AS (
    SELECT account_id, max(n) AS max_n FROM obs_n
    WHERE ({{return_event}} = 'any' AND kind <> 'cancellation') OR kind = {{return_event}}
    GROUP BY account_id
),
ns AS (
    SELECT CAST(n AS BIGINT) AS n FROM generate_series(0, {{periods}}) AS g(n)
),
cells AS (
    SELECT ns.n, s.account_id, COALESCE(l.max_n >= ns.n, false) AS came_back
    FROM starts s CROSS JOIN ns
    LEFT JOIN last_return l ON l.account_id = s.account_id
    WHERE ns.n < s.done_n
),
agg AS (
    SELECT n, count(*) AS eligible, sum(CASE WHEN came_back THEN 1 ELSE 0 END) AS returned
    FROM cells GROUP BY n
)
SELECT ns.n AS period,
       COALESCE(a.eligible, 0) AS eligible,
       COALESCE(a.returned, 0) AS returned,
       CASE WHEN a.eligible > 0 THEN round(100.0 * a.returned / a.eligible, 2) END AS retention_pct
FROM ns LEFT JOIN agg a ON a.n = ns.n
ORDER BY period
