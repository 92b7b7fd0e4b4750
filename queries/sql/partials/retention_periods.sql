-- The periods every retention query shares (included with `{{> retention_periods}}`). Uses the
-- including query's parameters granularity, window, as_of and start_event.
--
-- An account starts at its first start event (start_ts; start_p is the calendar period it falls
-- in: day, week from Monday, or month, UTC). Its period N is, with window = calendar, the Nth
-- calendar period after start_p; with window = rolling, the Nth span of 1, 7 or 30 days
-- counted from start_ts itself (rolling months are 30 days). Gives:
--   starts(account_id, start_p, start_ts, done_n): done_n = how many of the account's periods
--     had ended before as_of (period N is complete when N < done_n);
--   obs_n(account_id, kind, n): every event before as_of from the account's start period
--     (calendar) or start instant (rolling) on, with its period number n.
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
period_secs AS (
    SELECT CASE {{granularity}} WHEN 'day' THEN 86400.0 WHEN 'week' THEN 604800.0 ELSE 2592000.0 END AS secs
),
first_starts AS (
    SELECT account_id, min(p) AS start_p, min(ts) AS start_ts FROM obs
    WHERE {{start_event}} = 'any' OR kind = {{start_event}}
    GROUP BY account_id
),
starts AS (
    SELECT f.account_id, f.start_p, f.start_ts, CAST(CASE {{window}}
        WHEN 'calendar' THEN n.p - f.start_p
        ELSE floor((date_part('epoch', b.as_of) - date_part('epoch', f.start_ts)) / l.secs) END AS BIGINT) AS done_n
    FROM first_starts f CROSS JOIN now_p n CROSS JOIN bounds b CROSS JOIN period_secs l
),
obs_n AS (
    SELECT o.account_id, o.kind, CAST(CASE {{window}}
        WHEN 'calendar' THEN o.p - s.start_p
        ELSE floor((date_part('epoch', o.ts) - date_part('epoch', s.start_ts)) / l.secs) END AS BIGINT) AS n
    FROM obs o JOIN starts s ON o.account_id = s.account_id CROSS JOIN period_secs l
    WHERE CASE {{window}} WHEN 'calendar' THEN o.p >= s.start_p ELSE o.ts >= s.start_ts END
),
