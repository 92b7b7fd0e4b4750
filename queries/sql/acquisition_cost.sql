-- Customer acquisition cost per period and channel: acquisition spend (cost on signup events)
-- divided by new customers (distinct accounts signing up in the period), with an '(all)' row per
-- period over every channel.
--
-- The channel is the signup's category ('unknown' when absent). A returning account (signup
-- after a cancellation) is acquired again. Periods are calendar days, weeks (from Monday) or
-- months in UTC; only periods with a signup appear. cac is NULL when nobody signed up.
-- @param granularity:period month Period length: day, week or month
-- @param from:date 1970-01-01 Start of the window (inclusive)
-- @param as_of:date latest End of the window, exclusive (latest = just after the last event)
WITH bounds AS (
    SELECT COALESCE({{as_of}}, (SELECT max(CAST(ts AS TIMESTAMP)) FROM events) + INTERVAL '1 millisecond') AS as_of
),
signups AS (
    SELECT e.account_id, COALESCE(e.category, 'unknown') AS channel, COALESCE(e.cost, 0.0) AS cost,
           CAST(date_trunc({{granularity}}, CAST(e.ts AS TIMESTAMP)) AS DATE) AS period
    FROM events e CROSS JOIN bounds b
    WHERE e.kind = 'signup' AND CAST(e.ts AS TIMESTAMP) >= {{from}} AND CAST(e.ts AS TIMESTAMP) < b.as_of
),
per_channel AS (
    SELECT period, channel, sum(cost) AS spend, count(DISTINCT account_id) AS new_customers
    FROM signups GROUP BY period, channel
),
per_period AS (
    SELECT period, '(all)' AS channel, sum(cost) AS spend, count(DISTINCT account_id) AS new_customers
    FROM signups GROUP BY period
),
all_rows AS (
    SELECT * FROM per_channel UNION ALL SELECT * FROM per_period
)
SELECT period, channel, round(spend, 2) AS spend, new_customers,
       CASE WHEN new_customers > 0 THEN round(spend / new_customers, 2) END AS cac
FROM all_rows
ORDER BY period, channel = '(all)', channel
