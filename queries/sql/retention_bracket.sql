-- Bracket retention (Amplitude's custom brackets): for each bracket LO-HI of periods, of the
-- accounts whose period HI has completed before as_of, the number and share that did a return
-- event in at least one of their periods LO..HI.
--
-- Starts, periods, as_of and the return event are as in retention_nday. An account counts in a
-- bracket's denominator only once the whole bracket has elapsed.
-- @param granularity:period day Period length: day, week or month
-- @param window:enum(rolling|calendar) rolling Periods counted from each account's own start (rolling) or calendar periods
-- @param brackets:ranges 0-0,1-7,8-14,15-30 Brackets of periods, LO-HI,LO-HI,...
-- @param start_event:kind signup Kind of the start event, or any for an account's first event
-- @param return_event:kind any Kind of the return event, or any for any kind except cancellation
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
{{> retention_periods}}
returns AS (
    SELECT DISTINCT account_id, n FROM obs_n
    WHERE ({{return_event}} = 'any' AND kind <> 'cancellation') OR kind = {{return_event}}
),
brackets AS (
    SELECT CAST(lo AS BIGINT) AS lo, CAST(hi AS BIGINT) AS hi FROM {{brackets}} AS b(lo, hi)
),
eligible AS (
    SELECT b.lo, b.hi, count(*) AS accounts
    FROM starts s CROSS JOIN brackets b
    WHERE b.hi < s.done_n
    GROUP BY b.lo, b.hi
),
returned AS (
    SELECT b.lo, b.hi, count(DISTINCT r.account_id) AS accounts
    FROM returns r JOIN brackets b ON r.n >= b.lo AND r.n <= b.hi
    JOIN starts s ON r.account_id = s.account_id
    WHERE b.hi < s.done_n
    GROUP BY b.lo, b.hi
)
SELECT CAST(b.lo AS VARCHAR) || '-' || CAST(b.hi AS VARCHAR) AS bracket,
       COALESCE(e.accounts, 0) AS eligible,
       COALESCE(r.accounts, 0) AS returned,
       CASE WHEN e.accounts > 0 THEN round(100.0 * COALESCE(r.accounts, 0) / e.accounts, 2) END AS retention_pct
FROM brackets b
LEFT JOIN eligible e ON e.lo = b.lo AND e.hi = b.hi
LEFT JOIN returned r ON r.lo = b.lo AND r.hi = b.hi
ORDER BY b.lo, b.hi
