//! How well a score predicts an outcome: AUC, lift in the top decile and a calibration table.
//! Pure functions over `(score, outcome)` pairs, a higher score meaning "more likely".

use serde::Serialize;

/// The area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (the Mann-Whitney statistic over average ranks). `None`
/// without both a positive and a negative.
pub fn auc(pairs: &[(f64, bool)]) -> Option<f64> {
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' ranks (1-based), tied scores sharing their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += average_rank * sorted[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The share of positives among the highest-scoring tenth (rounded up) over the share among
/// all. Ties at the boundary are broken by the order of `pairs`. `None` without a positive.
pub fn top_decile_lift(pairs: &[(f64, bool)]) -> Option<f64> {
    let positives = pairs.iter().filter(|p| p.1).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&a, &b| pairs[b].0.total_cmp(&pairs[a].0).then(a.cmp(&b)));
    let top = pairs.len().div_ceil(10);
    let hits = order[..top].iter().filter(|&&i| pairs[i].1).count();
    Some((hits as f64 / top as f64) / (positives as f64 / pairs.len() as f64))
}

/// One bin of a calibration table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// 1 = the lowest scores.
    pub bin: usize,
    pub count: usize,
    /// Lowest and highest score in the bin.
    pub min_score: f64,
    pub max_score: f64,
    /// Mean score (the predicted probability, for a score that is one).
    pub mean_score: f64,
    /// Share of positives.
    pub observed_rate: f64,
}

/// The pairs sorted by score and cut into `bins` bins of (nearly) equal count, lowest first;
/// each bin's mean score against its observed share of positives. Fewer bins when there are
/// fewer pairs.
pub fn calibration(pairs: &[(f64, bool)], bins: usize) -> Vec<CalibrationBin> {
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bins = bins.min(sorted.len()).max(1);
    let n = sorted.len();
    (0..bins)
        .filter_map(|b| {
            let (lo, hi) = (b * n / bins, (b + 1) * n / bins);
            let part = &sorted[lo..hi];
            let first = part.first()?;
            let count = part.len();
            Some(CalibrationBin {
                bin: b + 1,
                count,
                min_score: first.0,
                max_score: part[count - 1].0,
                mean_score: part.iter().map(|p| p.0).sum::<f64>() / count as f64,
                observed_rate: part.iter().filter(|p| p.1).count() as f64 / count as f64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.8, 0.3, 0.1: of the 6 pairs the positive wins 0.9>all
        // three, 0.4>0.3, 0.4>0.1: 5 of 6.
        let pairs = [(0.9, true), (0.8, false), (0.4, true), (0.3, false), (0.1, false)];
        assert!((auc(&pairs).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // A tie between a positive and a negative counts one half: 0.5 (tie) + 1 (0.5 > 0.2).
        let ties = [(0.5, true), (0.5, false), (0.2, false)];
        assert!((auc(&ties).unwrap() - 0.75).abs() < 1e-12);
        // Perfect, reversed, constant.
        assert_eq!(auc(&[(1.0, true), (0.0, false)]), Some(1.0));
        assert_eq!(auc(&[(0.0, true), (1.0, false)]), Some(0.0));
        assert_eq!(auc(&[(0.3, true), (0.3, false), (0.3, true)]), Some(0.5));
        assert_eq!(auc(&[(0.3, true)]), None);
    }

    #[test]
    fn lift_by_hand() {
        // 20 accounts, 4 positives (base rate 0.2); the top 2 are one positive and one negative:
        // 0.5 / 0.2 = 2.5.
        let mut pairs: Vec<(f64, bool)> = (0..20).map(|i| (i as f64 / 100.0, false)).collect();
        pairs[19] = (0.99, true);
        pairs[18] = (0.98, false);
        pairs[0] = (0.0, true);
        pairs[1] = (0.01, true);
        pairs[2] = (0.02, true);
        assert!((top_decile_lift(&pairs).unwrap() - 2.5).abs() < 1e-12);
        // 11 accounts: the top tenth is 2 (rounded up).
        let eleven: Vec<(f64, bool)> = (0..11).map(|i| (i as f64, i >= 9)).collect();
        assert!((top_decile_lift(&eleven).unwrap() - 1.0 / (2.0 / 11.0)).abs() < 1e-12);
        assert_eq!(top_decile_lift(&[(1.0, false)]), None);
    }

    #[test]
    fn calibration_by_hand() {
        // Scores 0.1..1.0; positives at 0.7, 0.9, 1.0; five bins of two.
        let pairs: Vec<(f64, bool)> = (1..=10).map(|i| (i as f64 / 10.0, [7, 9, 10].contains(&i))).collect();
        let t = calibration(&pairs, 5);
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].count, 2);
        assert!((t[0].mean_score - 0.15).abs() < 1e-12);
        assert_eq!(t[0].observed_rate, 0.0);
        assert_eq!(t[3].observed_rate, 0.5); // 0.7, 0.8
        assert_eq!(t[4].observed_rate, 1.0); // 0.9, 1.0
        assert!((t[4].min_score - 0.9).abs() < 1e-12 && (t[4].max_score - 1.0).abs() < 1e-12);
        assert_eq!(calibration(&pairs[..3], 10).len(), 3);
    }
}
