-- Churn risk ranking from the live scoring state: accounts by churn risk, highest first, with
-- their account data, health score and band, P(alive), ARR at risk (churn_risk x arr) and top
-- factors.
--
-- top_factors: up to three health components with the most negative contribution to the score
-- (the scoring core's signed contributions, weight x (component score - 50)), worst first; NULL
-- when no component pulls the score down. tier = key gives the key accounts at risk. Ties are
-- broken by ARR at risk, then account id. Tier, owner and ARR are the scoring core's, else the
-- accounts table's; the name comes from accounts.
-- @param limit:int 20 Rows returned
-- @param tier:enum(all|key|standard) all Only accounts of this tier
-- @param min_risk:float 0.0 Only accounts with churn_risk at least this
WITH contributions AS (
    SELECT account_id, 'engagement' AS factor, engagement AS c FROM health
    UNION ALL SELECT account_id, 'recency', recency FROM health
    UNION ALL SELECT account_id, 'support', support FROM health
    UNION ALL SELECT account_id, 'sentiment', sentiment FROM health
    UNION ALL SELECT account_id, 'relationship', relationship FROM health
    UNION ALL SELECT account_id, 'commercial', commercial FROM health
    UNION ALL SELECT account_id, 'advocacy', advocacy FROM health
),
ranked AS (
    SELECT account_id, factor, row_number() OVER (PARTITION BY account_id ORDER BY c, factor) AS rn
    FROM contributions WHERE c < 0
),
top AS (
    SELECT account_id,
           NULLIF(concat_ws(', ',
               max(CASE WHEN rn = 1 THEN factor END),
               max(CASE WHEN rn = 2 THEN factor END),
               max(CASE WHEN rn = 3 THEN factor END)), '') AS top_factors
    FROM ranked GROUP BY account_id
),
ranking AS (
    SELECT h.account_id, a.name, h.tier, COALESCE(h.owner, a.owner) AS owner, COALESCE(h.arr, a.arr) AS arr,
           h.churn_risk AS risk, h.churn_risk * COALESCE(h.arr, a.arr, 0.0) AS risk_arr,
           h.score, h.band, h.p_alive, t.top_factors
    FROM health h
    LEFT JOIN accounts a ON a.account_id = h.account_id
    LEFT JOIN top t ON t.account_id = h.account_id
    WHERE h.churn_risk >= {{min_risk}}
      AND ({{tier}} = 'all' OR h.tier = {{tier}})
    ORDER BY risk DESC, risk_arr DESC, h.account_id
    LIMIT {{limit}}
)
SELECT account_id, name, tier, owner, arr, round(risk, 4) AS churn_risk, round(risk_arr, 2) AS arr_at_risk,
       score, band, round(p_alive, 4) AS p_alive, top_factors
FROM ranking
ORDER BY risk DESC, risk_arr DESC, account_id
