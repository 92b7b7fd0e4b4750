-- What complaints cost, per complaint category and overall (category '(all)').
--
-- complaints: complaint events in [from, as_of); handling_cost: cost on complaint and
-- complaint_resolved events in that window; cost_per_complaint = handling_cost / complaints.
-- revenue_at_risk: annual revenue of the complaining accounts x loyalty_drop (the share of
-- revenue expected to be lost when a complaint costs loyalty). realised_loss: revenue of the
-- complaining accounts that cancelled within window_days after one of their complaints (the
-- cancellation's amount, else their annual revenue), each account once. Annual revenue of an
-- account = accounts.arr, else its purchase and renewal amounts in the 365 days before as_of.
-- Category NULL is reported as '(none)'. The '(all)' row counts each account once.
-- @param from:date 1970-01-01 Start of the window (inclusive)
-- @param as_of:date latest End of the window, exclusive (latest = just after the last event)
-- @param loyalty_drop:float 0.25 Share of a complaining account's annual revenue at risk
-- @param window_days:int 90 Days after a complaint within which a cancellation is a realised loss
WITH ev AS (
    SELECT account_id, CAST(ts AS TIMESTAMP) AS ts, CAST(kind AS VARCHAR) AS kind, amount, cost,
           COALESCE(category, '(none)') AS category
    FROM events
    WHERE kind IN ('complaint', 'complaint_resolved', 'cancellation', 'purchase', 'renewal')
),
bounds AS (
    SELECT COALESCE({{as_of}}, (SELECT max(CAST(ts AS TIMESTAMP)) FROM events) + INTERVAL '1 millisecond') AS as_of
),
win AS (
    SELECT ev.* FROM ev CROSS JOIN bounds b WHERE ev.ts >= {{from}} AND ev.ts < b.as_of
),
complaints AS (
    SELECT account_id, ts, category FROM win WHERE kind = 'complaint'
),
annual AS (
    SELECT c.account_id, COALESCE(max(a.arr), max(t.revenue), 0.0) AS revenue
    FROM (SELECT DISTINCT account_id FROM complaints) c
    LEFT JOIN accounts a ON a.account_id = c.account_id
    LEFT JOIN (
        SELECT e.account_id, sum(e.amount) AS revenue
        FROM ev e CROSS JOIN bounds b
        WHERE e.kind IN ('purchase', 'renewal') AND e.ts < b.as_of
          AND date_part('epoch', b.as_of) - date_part('epoch', e.ts) <= 365 * 86400
        GROUP BY e.account_id
    ) t ON t.account_id = c.account_id
    GROUP BY c.account_id
),
losses AS (
    SELECT c.category, c.account_id, max(COALESCE(x.amount, an.revenue)) AS loss
    FROM complaints c
    JOIN ev x ON x.account_id = c.account_id AND x.kind = 'cancellation' AND x.ts >= c.ts
    CROSS JOIN bounds b
    JOIN annual an ON an.account_id = c.account_id
    WHERE x.ts < b.as_of AND date_part('epoch', x.ts) - date_part('epoch', c.ts) <= {{window_days}} * 86400
    GROUP BY c.category, c.account_id
),
per_category AS (
    SELECT category, count(*) AS complaints, count(DISTINCT account_id) AS complaining_accounts
    FROM complaints GROUP BY category
),
handling AS (
    SELECT category, sum(COALESCE(cost, 0)) AS cost
    FROM win WHERE kind IN ('complaint', 'complaint_resolved') GROUP BY category
),
at_risk AS (
    SELECT cc.category, sum(an.revenue) AS revenue
    FROM (SELECT DISTINCT category, account_id FROM complaints) cc
    JOIN annual an ON an.account_id = cc.account_id
    GROUP BY cc.category
),
realised AS (
    SELECT category, sum(loss) AS loss, count(*) AS accounts FROM losses GROUP BY category
),
categories AS (
    SELECT category FROM per_category UNION SELECT category FROM handling
),
rows_by_category AS (
    SELECT k.category,
           COALESCE(p.complaints, 0) AS complaints,
           COALESCE(p.complaining_accounts, 0) AS complaining_accounts,
           COALESCE(h.cost, 0.0) AS handling_cost,
           COALESCE(r.revenue, 0.0) AS revenue,
           COALESCE(l.loss, 0.0) AS realised_loss,
           COALESCE(l.accounts, 0) AS cancelled_accounts
    FROM categories k
    LEFT JOIN per_category p ON p.category = k.category
    LEFT JOIN handling h ON h.category = k.category
    LEFT JOIN at_risk r ON r.category = k.category
    LEFT JOIN realised l ON l.category = k.category
),
overall AS (
    SELECT '(all)' AS category,
           (SELECT count(*) FROM complaints) AS complaints,
           (SELECT count(DISTINCT account_id) FROM complaints) AS complaining_accounts,
           (SELECT COALESCE(sum(handling_cost), 0.0) FROM rows_by_category) AS handling_cost,
           (SELECT COALESCE(sum(revenue), 0.0) FROM annual) AS revenue,
           (SELECT COALESCE(sum(loss), 0.0) FROM (SELECT account_id, max(loss) AS loss FROM losses GROUP BY account_id) q) AS realised_loss,
           (SELECT count(DISTINCT account_id) FROM losses) AS cancelled_accounts
),
all_rows AS (
    SELECT * FROM rows_by_category UNION ALL SELECT * FROM overall
)
SELECT category, complaints, complaining_accounts,
       round(handling_cost, 2) AS handling_cost,
       CASE WHEN complaints > 0 THEN round(handling_cost / complaints, 2) END AS cost_per_complaint,
       round(revenue * {{loyalty_drop}}, 2) AS revenue_at_risk,
       round(realised_loss, 2) AS realised_loss,
       cancelled_accounts
FROM all_rows
ORDER BY category = '(all)', category
