-- Why an account's health moved: for each health component, its contribution to the score on
-- the day `since` and on the history's last day, and the change. Contributions sum to the score
-- minus 50, so the changes sum to the change of the score: the most negative are what pulled
-- it down. A component without data on a day contributes 0 that day (its weight went to the
-- others). Scores come from the health_history table (the history replayed day by day); an
-- account without a score on `since` (it had not started) has no rows.
-- @param account:account all An account id, or all (every account: a replay of the whole history)
-- @param since:date latest The earlier day, YYYY-MM-DD (latest = 30 days before the last day)
WITH h AS (
    SELECT * FROM health_history WHERE {{account}} IS NULL OR account_id = {{account}}
),
last_day AS (
    SELECT max(day) AS d FROM h
),
since_day AS (
    SELECT COALESCE(CAST({{since}} AS DATE), d - INTERVAL '30 days') AS d FROM last_day
),
then_day AS (
    SELECT h.* FROM h JOIN since_day s ON h.day = s.d
),
now_day AS (
    SELECT h.* FROM h JOIN last_day l ON h.day = l.d
),
parts AS (
SELECT t.account_id, 'engagement' AS component, t.score AS score_then, n.score AS score_now,
       COALESCE(t.engagement_contribution, 0.0) AS contribution_then, COALESCE(n.engagement_contribution, 0.0) AS contribution_now
FROM then_day t JOIN now_day n ON n.account_id = t.account_id
UNION ALL
SELECT t.account_id, 'recency' AS component, t.score AS score_then, n.score AS score_now,
       COALESCE(t.recency_contribution, 0.0) AS contribution_then, COALESCE(n.recency_contribution, 0.0) AS contribution_now
FROM then_day t JOIN now_day n ON n.account_id = t.account_id
UNION ALL
SELECT t.account_id, 'support' AS component, t.score AS score_then, n.score AS score_now,
       COALESCE(t.support_contribution, 0.0) AS contribution_then, COALESCE(n.support_contribution, 0.0) AS contribution_now
FROM then_day t JOIN now_day n ON n.account_id = t.account_id
UNION ALL
SELECT t.account_id, 'sentiment' AS component, t.score AS score_then, n.score AS score_now,
       COALESCE(t.sentiment_contribution, 0.0) AS contribution_then, COALESCE(n.sentiment_contribution, 0.0) AS contribution_now
FROM then_day t JOIN now_day n ON n.account_id = t.account_id
UNION ALL
SELECT t.account_id, 'relationship' AS component, t.score AS score_then, n.score AS score_now,
       COALESCE(t.relationship_contribution, 0.0) AS contribution_then, COALESCE(n.relationship_contribution, 0.0) AS contribution_now
FROM then_day t JOIN now_day n ON n.account_id = t.account_id
UNION ALL
SELECT t.account_id, 'commercial' AS component, t.score AS score_then, n.score AS score_now,
       COALESCE(t.commercial_contribution, 0.0) AS contribution_then, COALESCE(n.commercial_contribution, 0.0) AS contribution_now
FROM then_day t JOIN now_day n ON n.account_id = t.account_id
UNION ALL
SELECT t.account_id, 'advocacy' AS component, t.score AS score_then, n.score AS score_now,
       COALESCE(t.advocacy_contribution, 0.0) AS contribution_then, COALESCE(n.advocacy_contribution, 0.0) AS contribution_now
FROM then_day t JOIN now_day n ON n.account_id = t.account_id
)
SELECT account_id, component,
       round(contribution_then, 4) AS contribution_then,
       round(contribution_now, 4) AS contribution_now,
       round(contribution_now - contribution_then, 4) AS change,
       round(score_then, 4) AS score_then,
       round(score_now, 4) AS score_now
FROM parts
ORDER BY account_id, contribution_now - contribution_then, component
