-- Churned accounts and why, one row per account: accounts whose last cancellation (contractual
-- churn) is before as_of, and, for accounts that never cancelled but buy (non-contractual),
-- those whose BG/NBD P(alive) is below p_alive_below.
--
-- Cancelled rows: the account's last cancellation: when, revenue lost (its amount, else
-- accounts.arr), the reason (its category), the category of the last complaint at or before it,
-- returned_at (the first signup after it, for an account that came back), and the account's
-- current health score and component contributions (from the live health table).
-- Inactive rows: P(alive) from purchase occasions (distinct days); churned_at is the last
-- purchase; revenue lost is accounts.arr, else purchases in the 365 days up to the last purchase.
-- The BG/NBD parameters: with model = fitted, the newest fit in model_params (`vigil model fit`,
-- the fits of `vigil run` and `vigil replay`) when there is one; otherwise (and with model =
-- given) r, alpha, a, b in time units of unit_days days (defaults: the published CDNOW fit).
-- @param as_of:date latest End of observation, exclusive (latest = just after the last event)
-- @param p_alive_below:float 0.5 Inactive buyers below this P(alive) are churned
-- @param model:enum(fitted|given) fitted BG/NBD parameters: the newest fit, or the ones given here
-- @param unit_days:float 7 Days per time unit of the given parameters (7 = weeks)
-- @param r:float 0.243 BG/NBD r (given)
-- @param alpha:float 4.414 BG/NBD alpha in time units (given)
-- @param a:float 0.793 BG/NBD a (given)
-- @param b:float 2.426 BG/NBD b (given)
WITH ev AS (
    SELECT account_id, CAST(ts AS TIMESTAMP) AS ts, CAST(kind AS VARCHAR) AS kind, amount, category
    FROM events
    WHERE kind IN ('cancellation', 'complaint', 'signup', 'purchase')
),
bounds AS (
    SELECT COALESCE({{as_of}}, (SELECT max(CAST(ts AS TIMESTAMP)) FROM events) + INTERVAL '1 millisecond') AS as_of
),
obs AS (
    SELECT ev.* FROM ev CROSS JOIN bounds b WHERE ev.ts < b.as_of
),
cancels AS (
    SELECT account_id, churned_at, amount, reason
    FROM (
        SELECT account_id, ts AS churned_at, amount, COALESCE(category, '(none)') AS reason,
               row_number() OVER (PARTITION BY account_id ORDER BY ts DESC, category) AS rn
        FROM obs WHERE kind = 'cancellation'
    ) c
    WHERE rn = 1
),
fitted AS (
    SELECT max(CASE WHEN name = 'r' THEN value END) AS r, max(CASE WHEN name = 'alpha' THEN value END) AS alpha,
           max(CASE WHEN name = 'a' THEN value END) AS a, max(CASE WHEN name = 'b' THEN value END) AS b
    FROM model_params
    WHERE model = 'bgnbd' AND version = (SELECT max(version) FROM model_params WHERE model = 'bgnbd')
),
-- The parameters in days.
params AS (
    SELECT CASE WHEN use_fit THEN f.r ELSE {{r}} END AS r,
           CASE WHEN use_fit THEN f.alpha ELSE {{alpha}} * {{unit_days}} END AS alpha,
           CASE WHEN use_fit THEN f.a ELSE {{a}} END AS a,
           CASE WHEN use_fit THEN f.b ELSE {{b}} END AS b
    FROM (SELECT fitted.*, ({{model}} = 'fitted' AND fitted.r IS NOT NULL) AS use_fit FROM fitted) f
),
last_complaint AS (
    SELECT c.account_id, c.churned_at, max(p.ts) AS complaint_ts
    FROM cancels c JOIN obs p ON p.account_id = c.account_id AND p.kind = 'complaint' AND p.ts <= c.churned_at
    GROUP BY c.account_id, c.churned_at
),
complaint_category AS (
    SELECT l.account_id, l.churned_at, max(COALESCE(p.category, '(none)')) AS category
    FROM last_complaint l JOIN obs p ON p.account_id = l.account_id AND p.kind = 'complaint' AND p.ts = l.complaint_ts
    GROUP BY l.account_id, l.churned_at
),
comebacks AS (
    SELECT c.account_id, c.churned_at, min(s.ts) AS returned_at
    FROM cancels c JOIN obs s ON s.account_id = c.account_id AND s.kind = 'signup' AND s.ts > c.churned_at
    GROUP BY c.account_id, c.churned_at
),
cancelled AS (
    SELECT c.account_id, 'cancelled' AS churn_type, c.churned_at,
           COALESCE(c.amount, a.arr) AS revenue_lost, c.reason, cc.category AS last_complaint_category,
           cb.returned_at, CAST(NULL AS DOUBLE) AS p_alive
    FROM cancels c
    LEFT JOIN accounts a ON a.account_id = c.account_id
    LEFT JOIN complaint_category cc ON cc.account_id = c.account_id AND cc.churned_at = c.churned_at
    LEFT JOIN comebacks cb ON cb.account_id = c.account_id AND cb.churned_at = c.churned_at
),
buyers AS (
    SELECT account_id, count(DISTINCT day) - 1 AS x, min(day) AS first_day, max(day) AS last_day,
           max(ts) AS last_purchase
    FROM (
        SELECT o.account_id, o.ts, CAST(CAST(o.ts AS DATE) AS TIMESTAMP) AS day
        FROM obs o
        WHERE o.kind = 'purchase'
          AND NOT EXISTS (SELECT 1 FROM cancels c WHERE c.account_id = o.account_id)
    ) p
    GROUP BY account_id
),
scored AS (
    SELECT bu.account_id, bu.last_purchase,
           p_alive(bu.x,
                   (date_part('epoch', bu.last_day) - date_part('epoch', bu.first_day)) / 86400.0,
                   (date_part('epoch', b.as_of) - date_part('epoch', bu.first_day)) / 86400.0,
                   p.r, p.alpha, p.a, p.b) AS p_alive
    FROM buyers bu CROSS JOIN bounds b CROSS JOIN params p
),
recent_revenue AS (
    SELECT s.account_id, sum(o.amount) AS revenue
    FROM scored s JOIN obs o ON o.account_id = s.account_id AND o.kind = 'purchase'
    WHERE date_part('epoch', s.last_purchase) - date_part('epoch', o.ts) <= 365 * 86400
    GROUP BY s.account_id
),
inactive AS (
    SELECT s.account_id, 'inactive' AS churn_type, s.last_purchase AS churned_at,
           COALESCE(a.arr, rr.revenue) AS revenue_lost, CAST(NULL AS VARCHAR) AS reason,
           CAST(NULL AS VARCHAR) AS last_complaint_category, CAST(NULL AS TIMESTAMP) AS returned_at,
           s.p_alive
    FROM scored s
    LEFT JOIN accounts a ON a.account_id = s.account_id
    LEFT JOIN recent_revenue rr ON rr.account_id = s.account_id
    WHERE s.p_alive < {{p_alive_below}}
),
churned AS (
    SELECT * FROM cancelled UNION ALL SELECT * FROM inactive
)
SELECT c.account_id, a.name, c.churn_type, c.churned_at, round(c.revenue_lost, 2) AS revenue_lost,
       c.reason, c.last_complaint_category, c.returned_at, round(c.p_alive, 4) AS p_alive,
       h.score AS health_score, h.engagement, h.recency, h.support, h.sentiment, h.relationship,
       h.commercial, h.advocacy
FROM churned c
LEFT JOIN accounts a ON a.account_id = c.account_id
LEFT JOIN health h ON h.account_id = c.account_id
ORDER BY c.churned_at, c.account_id
