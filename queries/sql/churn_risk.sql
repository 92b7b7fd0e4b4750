-- Churn risk ranking from the live scoring state: accounts by churn risk, highest first, with
-- their account data, health score and band, P(alive), ARR at risk (churn_risk x arr) and top
-- factors.
--
-- top_factors: up to three health components with the most negative contribution to the score
-- (the scoring core's signed contributions, weight x (component score - 50)), worst first; NULL
-- when no component pulls the score down. tier = key gives the key accounts at risk. Ties are
-- broken by ARR at risk, then account id. Name, owner and ARR come from the accounts table, else
-- from the scoring core; an account is key when either says so (the core also counts ARR over
-- its threshold). Churned accounts (a cancellation with nothing since: status churned) have
-- left and are not at risk: they are left out unless include_churned = yes.
-- @param limit:int 20 Rows returned
-- @param tier:enum(all|key|standard) all Only accounts of this tier
-- @param min_risk:float 0.0 Only accounts with churn_risk at least this
-- @param include_churned:enum(no|yes) no Also rank accounts that have churned
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
joined AS (
    SELECT h.account_id, a.name,
           CASE WHEN h.tier = 'key' OR a.tier = 'key' THEN 'key' ELSE 'standard' END AS tier,
           COALESCE(a.owner, h.owner) AS owner, COALESCE(a.arr, h.arr) AS arr,
           h.churn_risk AS risk, h.churn_risk * COALESCE(a.arr, h.arr, 0.0) AS risk_arr,
           h.score, h.band, h.p_alive, h.status, t.top_factors
    FROM health h
    LEFT JOIN accounts a ON a.account_id = h.account_id
    LEFT JOIN top t ON t.account_id = h.account_id
),
ranking AS (
    SELECT * FROM joined
    WHERE risk >= {{min_risk}}
      AND ({{tier}} = 'all' OR tier = {{tier}})
      AND ({{include_churned}} = 'yes' OR status <> 'churned')
    ORDER BY risk DESC, risk_arr DESC, account_id
    LIMIT {{limit}}
)
SELECT account_id, name, tier, owner, arr, round(risk, 4) AS churn_risk, round(risk_arr, 2) AS arr_at_risk,
       score, band, round(p_alive, 4) AS p_alive, top_factors, status
FROM ranking
ORDER BY risk DESC, risk_arr DESC, account_id
