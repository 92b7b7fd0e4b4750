-- The periods every retention query shares (included with `{{> retention_periods}}`): events
-- before as_of with their calendar period p (day, week from Monday, or month, UTC), the
-- period of as_of (now_p), and each account's start period (its first start event). Uses the
-- including query's parameters granularity, as_of and start_event.
WITH ev AS (
    SELECT account_id, CAST(ts AS TIMESTAMP) AS ts, CAST(kind AS VARCHAR) AS kind FROM events
),
bounds AS (
    SELECT COALESCE({{as_of}}, max(ts) + INTERVAL '1 millisecond') AS as_of FROM ev
),
obs AS (
    SELECT e.account_id, e.kind, e.ts, CAST(CASE {{granularity}}
        WHEN 'day' THEN floor(date_part('epoch', e.ts) / 86400)
        WHEN 'week' THEN floor((floor(date_part('epoch', e.ts) / 86400) + 3) / 7)
        ELSE date_part('year', e.ts) * 12 + date_part('month', e.ts) - 1 END AS BIGINT) AS p
    FROM ev e CROSS JOIN bounds b
    WHERE e.ts < b.as_of
),
now_p AS (
    SELECT CAST(CASE {{granularity}}
        WHEN 'day' THEN floor(date_part('epoch', as_of) / 86400)
        WHEN 'week' THEN floor((floor(date_part('epoch', as_of) / 86400) + 3) / 7)
        ELSE date_part('year', as_of) * 12 + date_part('month', as_of) - 1 END AS BIGINT) AS p
    FROM bounds
),
starts AS (
    SELECT account_id, min(p) AS start_p, min(ts) AS start_ts FROM obs
    WHERE {{start_event}} = 'any' OR kind = {{start_event}}
    GROUP BY account_id
),
