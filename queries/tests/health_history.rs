//! The `health_history` table against scores worked out by hand: one account's daily health
//! from its only event on, and the accounts a `WHERE` names are the ones replayed.

mod common;

/// Account r: one referral on 2024-01-01 12:00 (day 0), nothing after. Two components have data:
/// recency (weight 0.10; default cadence 7 days: 100 while the days since its last interaction,
/// d + 0.5 at the end of day d (less a millisecond), are at most 7, then 100·2^(−(d + 0.5 − 7)/7)) and
/// advocacy (weight 0.05; 50 + 50·min(1, referrals in the 90 days ending day d)). Normalised
/// weights 2/3 and 1/3.
#[tokio::test]
async fn a_silent_referrer_day_by_day() {
    let (_dir, analyst) = common::analyst("history").await;
    let got = common::sql_csv(
        &analyst,
        "SELECT CAST(day AS VARCHAR) AS day, round(score, 4) AS score, band, round(recency, 4) AS recency, \
                advocacy, engagement \
         FROM health_history WHERE account_id = 'r' AND day IN \
           (DATE '2024-01-01', DATE '2024-01-07', DATE '2024-01-08', DATE '2024-03-30', DATE '2024-03-31') \
         ORDER BY day",
    )
    .await;
    // Day 0 and 6: 0.5 and 6.5 days since: recency 100, advocacy 100 -> 100, healthy.
    // Day 7: 7.5 days: recency 100·2^(−0.5/7) = 95.1695; score 2/3·95.1695 + 1/3·100 = 96.7797.
    // Day 89 (2024-03-30): 89.5 days: recency 100·2^(−82.5/7) = 0.0283; the referral is still
    //   in the 90 days (days 0..=89): advocacy 100; score 2/3·0.0283 + 33.3333 = 33.3522 -> at_risk.
    // Day 90 (2024-03-31): recency 100·2^(−83.5/7) = 0.0257; the referral left the window:
    //   advocacy 50; score 0.0171 + 16.6667 = 16.6838.
    let recency = |d: f64| 100.0 * 2f64.powf(-(d + 0.5 - 7.0) / 7.0);
    let score = |d: f64, advocacy: f64| 2.0 / 3.0 * recency(d) + advocacy / 3.0;
    let r4 = |x: f64| (x * 1e4).round() / 1e4;
    assert_eq!(r4(recency(7.0)), 95.1695);
    let want = format!(
        "day,score,band,recency,advocacy,engagement\n\
         2024-01-01,100.0,healthy,100.0,100.0,\n\
         2024-01-07,100.0,healthy,100.0,100.0,\n\
         2024-01-08,{},healthy,{},100.0,\n\
         2024-03-30,{},at_risk,{},100.0,\n\
         2024-03-31,{},at_risk,{},50.0,\n",
        r4(score(7.0, 100.0)),
        r4(recency(7.0)),
        r4(score(89.0, 100.0)),
        r4(recency(89.0)),
        r4(score(90.0, 50.0)),
        r4(recency(90.0)),
    );
    assert_eq!(got, want);
    assert_eq!(r4(score(7.0, 100.0)), 96.7797);
}

#[tokio::test]
async fn rows_run_from_each_accounts_first_day_and_contributions_sum_to_the_score() {
    let (_dir, analyst) = common::analyst("history").await;
    // r: days 0..=100 (the history's last day) = 101 rows; z: day 100 only.
    let got = common::sql_csv(
        &analyst,
        "SELECT account_id, count(*) AS days, CAST(min(day) AS VARCHAR) AS first, CAST(max(day) AS VARCHAR) AS last \
         FROM health_history GROUP BY account_id ORDER BY account_id",
    )
    .await;
    assert_eq!(
        got,
        "account_id,days,first,last\nr,101,2024-01-01,2024-04-10\nz,1,2024-04-10,2024-04-10\n"
    );
    // Every row: the contributions of the components with data sum to score − 50.
    let got = common::sql_csv(
        &analyst,
        "SELECT count(*) AS off FROM health_history WHERE abs(score - 50 - ( \
           COALESCE(engagement_contribution, 0) + COALESCE(recency_contribution, 0) + \
           COALESCE(support_contribution, 0) + COALESCE(sentiment_contribution, 0) + \
           COALESCE(relationship_contribution, 0) + COALESCE(commercial_contribution, 0) + \
           COALESCE(advocacy_contribution, 0))) > 1e-9",
    )
    .await;
    assert_eq!(got, "off\n0\n");
    // A filter naming an account replays only it.
    let got = common::sql_csv(
        &analyst,
        "SELECT DISTINCT account_id FROM health_history WHERE account_id IN ('z')",
    )
    .await;
    assert_eq!(got, "account_id\nz\n");
}
