-- What each account is worth: the newest fit of each population model (the model_params table:
-- `vigil model fit`, or the fits of `vigil run` and `vigil replay`) applied to its history
-- (customer_summary, in days). p_alive: BG/NBD probability that the account still buys;
-- expected_purchases: purchase occasions expected in the next horizon_months months (30 days
-- each); expected_spend: Gamma-Gamma expected value per purchase (the population's mean for an
-- account without a repeat purchase); purchase_value: expected purchases of each coming month
-- times expected_spend, discounted at annual_discount a year (monthly compounding), summed
-- over the horizon. For accounts with a contract: renewal_probability, the sBG probability of
-- renewing once more, and contract_value_ahead, the sBG discounted expected residual lifetime
-- (in contract periods, taken as years, discounted at annual_discount) times the latest
-- renewal's amount. Churned accounts are worth 0 and have no renewal probability. Columns are
-- NULL where a model has not been fitted. model_version: the BG/NBD fit used.
-- @param horizon_months:int 12 Months of purchases counted in expected_purchases and purchase_value
-- @param annual_discount:float 0.1 Discount rate per year
WITH latest AS (
    SELECT model, max(version) AS version FROM model_params GROUP BY model
),
params AS (
    SELECT max(CASE WHEN p.model = 'bgnbd' AND p.name = 'r' THEN p.value END) AS r,
           max(CASE WHEN p.model = 'bgnbd' AND p.name = 'alpha' THEN p.value END) AS alpha,
           max(CASE WHEN p.model = 'bgnbd' AND p.name = 'a' THEN p.value END) AS a,
           max(CASE WHEN p.model = 'bgnbd' AND p.name = 'b' THEN p.value END) AS b,
           max(CASE WHEN p.model = 'gamma_gamma' AND p.name = 'p' THEN p.value END) AS gg_p,
           max(CASE WHEN p.model = 'gamma_gamma' AND p.name = 'q' THEN p.value END) AS gg_q,
           max(CASE WHEN p.model = 'gamma_gamma' AND p.name = 'gamma' THEN p.value END) AS gg_gamma,
           max(CASE WHEN p.model = 'sbg' AND p.name = 'alpha' THEN p.value END) AS sbg_alpha,
           max(CASE WHEN p.model = 'sbg' AND p.name = 'beta' THEN p.value END) AS sbg_beta,
           max(CASE WHEN p.model = 'bgnbd' THEN p.version END) AS model_version
    FROM model_params p JOIN latest l ON l.model = p.model AND l.version = p.version
),
base AS (
    SELECT s.account_id, s.status, s.has_contract, s.renewals, s.contract_value,
           CAST(s.repeat_occasions AS DOUBLE) AS x, s.recency_days AS t_x, s.age_days AS t,
           gg_expected_spend(CAST(COALESCE(s.repeat_occasions, 0) AS DOUBLE), COALESCE(s.repeat_value, 0.0),
                             pr.gg_p, pr.gg_q, pr.gg_gamma) AS expected_spend,
           pr.*
    FROM customer_summary s CROSS JOIN params pr
),
months AS (
    SELECT CAST(value AS DOUBLE) AS m FROM generate_series(1, {{horizon_months}})
),
flows AS (
    SELECT b.account_id,
           sum((bgnbd_expected(30.0 * m.m, b.x, b.t_x, b.t, b.r, b.alpha, b.a, b.b)
                - bgnbd_expected(30.0 * (m.m - 1.0), b.x, b.t_x, b.t, b.r, b.alpha, b.a, b.b))
               / power(1.0 + {{annual_discount}}, m.m / 12.0)) AS discounted_purchases
    FROM base b CROSS JOIN months m
    WHERE b.x IS NOT NULL
    GROUP BY b.account_id
)
SELECT b.account_id, b.status,
       round(CASE WHEN b.status = 'churned' THEN 0.0 ELSE p_alive(b.x, b.t_x, b.t, b.r, b.alpha, b.a, b.b) END, 4)
           AS p_alive,
       round(CASE WHEN b.status = 'churned' THEN 0.0
                  ELSE bgnbd_expected(30.0 * {{horizon_months}}, b.x, b.t_x, b.t, b.r, b.alpha, b.a, b.b) END, 4)
           AS expected_purchases,
       round(b.expected_spend, 2) AS expected_spend,
       round(CASE WHEN b.status = 'churned' THEN 0.0 ELSE f.discounted_purchases * b.expected_spend END, 2)
           AS purchase_value,
       round(CASE WHEN b.has_contract AND b.status <> 'churned'
                  THEN (b.sbg_beta + b.renewals) / (b.sbg_alpha + b.sbg_beta + b.renewals) END, 4)
           AS renewal_probability,
       round(CASE WHEN NOT b.has_contract THEN NULL
                  WHEN b.status = 'churned' THEN 0.0
                  ELSE sbg_residual_lifetime(CAST(b.renewals AS DOUBLE), b.sbg_alpha, b.sbg_beta, {{annual_discount}})
                       * b.contract_value END, 2)
           AS contract_value_ahead,
       b.model_version
FROM base b
LEFT JOIN flows f ON f.account_id = b.account_id
ORDER BY b.account_id
