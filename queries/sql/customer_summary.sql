-- One row per account: the statistics the population models are fitted on (`vigil model fit`,
-- the fits of `vigil run` and `vigil replay`). Transactions are purchases and renewals (the
-- scoring core's default transaction kinds); all of one account's transactions on one day are
-- one occasion, worth their sum. repeat_occasions (BG/NBD's x) counts the occasions after the
-- first; recency_days (t_x) is the last one's day and age_days (T) the end of observation (as_of),
-- both in days from the first occasion's day; repeat_value is the mean value of the repeat occasions (the
-- Gamma-Gamma spend model's m). renewals counts renewal events; status is churned (a
-- cancellation with no renewal, purchase or signup after it), won_back (one after it) or active;
-- has_contract (renewed or cancelled at least once) selects the accounts of the sBG renewal
-- model; contract_value is the latest renewal's amount. first_seen and last_seen bound the
-- account's events.
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
WITH bounds AS (
    SELECT COALESCE({{as_of}}, (SELECT max(CAST(ts AS TIMESTAMP)) FROM events) + INTERVAL '1 millisecond') AS as_of
),
ev AS (
    SELECT e.account_id, CAST(e.ts AS TIMESTAMP) AS ts, CAST(e.kind AS VARCHAR) AS kind, e.amount
    FROM events e CROSS JOIN bounds b
    WHERE CAST(e.ts AS TIMESTAMP) < b.as_of
),
occasions AS (
    SELECT account_id, CAST(CAST(ts AS DATE) AS TIMESTAMP) AS day, sum(COALESCE(amount, 0.0)) AS value
    FROM ev
    WHERE kind IN ('purchase', 'renewal')
    GROUP BY account_id, CAST(CAST(ts AS DATE) AS TIMESTAMP)
),
numbered AS (
    SELECT account_id, day, value, row_number() OVER (PARTITION BY account_id ORDER BY day) AS k
    FROM occasions
),
buying AS (
    SELECT account_id, count(*) - 1 AS repeat_occasions, min(day) AS first_day, max(day) AS last_day,
           avg(CASE WHEN k > 1 THEN value END) AS repeat_value
    FROM numbered
    GROUP BY account_id
),
life AS (
    SELECT account_id, min(ts) AS first_seen, max(ts) AS last_seen,
           sum(CASE WHEN kind = 'renewal' THEN 1 ELSE 0 END) AS renewals,
           max(CASE WHEN kind = 'cancellation' THEN ts END) AS last_cancellation,
           max(CASE WHEN kind IN ('renewal', 'purchase', 'signup') THEN ts END) AS last_commitment
    FROM ev
    GROUP BY account_id
),
last_renewal AS (
    SELECT account_id, max(amount) AS contract_value
    FROM (
        SELECT account_id, amount, ts, max(ts) OVER (PARTITION BY account_id) AS last_ts
        FROM ev WHERE kind = 'renewal'
    ) r
    WHERE ts = last_ts
    GROUP BY account_id
)
SELECT l.account_id,
       bu.repeat_occasions,
       (date_part('epoch', bu.last_day) - date_part('epoch', bu.first_day)) / 86400.0 AS recency_days,
       (date_part('epoch', b.as_of) - date_part('epoch', bu.first_day)) / 86400.0 AS age_days,
       bu.repeat_value,
       CAST(l.renewals AS BIGINT) AS renewals,
       CASE
           WHEN l.last_cancellation IS NULL THEN 'active'
           WHEN l.last_commitment IS NOT NULL AND l.last_commitment > l.last_cancellation THEN 'won_back'
           ELSE 'churned'
       END AS status,
       (l.renewals > 0 OR l.last_cancellation IS NOT NULL) AS has_contract,
       lr.contract_value,
       l.first_seen, l.last_seen
FROM life l
CROSS JOIN bounds b
LEFT JOIN buying bu ON bu.account_id = l.account_id
LEFT JOIN last_renewal lr ON lr.account_id = l.account_id
ORDER BY l.account_id
