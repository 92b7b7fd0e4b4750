//! Customer summaries from raw transactions: purchase occasions, their values, repeat buying.
//!
//! The convention of Fader, Hardie & Lee: all transactions of one customer on one day are one
//! purchase occasion, worth their sum; `x` counts the occasions after the first, `t_x` is the
//! last one's time and `T` the end of observation, both from the first occasion; the spend
//! model reads the mean value of the repeat occasions (the first left out).

use std::collections::BTreeMap;

use super::CustomerSummary;
use super::bgnbd::Rfm;

/// Accumulates transactions `(customer, day, value)` into per-customer summaries.
#[derive(Debug, Default)]
pub struct Transactions {
    /// customer → day → value of that day's transactions.
    days: BTreeMap<String, BTreeMap<i32, f64>>,
}

impl Transactions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one transaction on `day` (days since any fixed origin) worth `value`.
    pub fn add(&mut self, customer: &str, day: i32, value: f64) {
        let days = match self.days.get_mut(customer) {
            Some(d) => d,
            None => self.days.entry(customer.to_string()).or_default(),
        };
        *days.entry(day).or_insert(0.0) += value;
    }

    /// Customers seen.
    pub fn customers(&self) -> usize {
        self.days.len()
    }

    /// The first and last day with a transaction.
    pub fn day_range(&self) -> Option<(i32, i32)> {
        let first = self.days.values().filter_map(|d| d.keys().next()).min()?;
        let last = self.days.values().filter_map(|d| d.keys().next_back()).max()?;
        Some((*first, *last))
    }

    /// Each customer's summary as of the end of `end_day` (transactions after it are left
    /// out; customers whose first one is after it are left out), in units of `unit_days` days,
    /// sorted by customer. No contract information: [`CustomerSummary::contract`] is `None`.
    pub fn summarise(&self, end_day: i32, unit_days: f64) -> Vec<(String, CustomerSummary)> {
        self.days
            .iter()
            .filter_map(|(id, days)| {
                let within: Vec<(i32, f64)> = days.range(..=end_day).map(|(d, v)| (*d, *v)).collect();
                let (&(first, _), &(last, _)) = (within.first()?, within.last()?);
                let x = within.len() - 1;
                let rfm = Rfm {
                    x: x as f64,
                    t_x: (last - first) as f64 / unit_days,
                    t: (end_day - first) as f64 / unit_days,
                };
                let repeat_value = (x > 0).then(|| within[1..].iter().map(|(_, v)| v).sum::<f64>() / x as f64);
                Some((
                    id.clone(),
                    CustomerSummary {
                        rfm: Some(rfm),
                        repeat_value,
                        contract: None,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occasions_are_days_and_the_first_is_left_out_of_the_value() {
        let mut t = Transactions::new();
        t.add("a", 10, 5.0);
        t.add("a", 10, 7.0); // same day: one occasion worth 12
        t.add("a", 17, 20.0);
        t.add("a", 31, 40.0);
        t.add("a", 50, 99.0); // after the end
        t.add("b", 20, 3.0);
        t.add("c", 45, 1.0); // starts after the end
        let s = t.summarise(38, 7.0);
        assert_eq!(s.len(), 2);
        let a = s[0].1;
        assert_eq!(
            a.rfm,
            Some(Rfm {
                x: 2.0,
                t_x: 3.0,
                t: 4.0
            })
        );
        assert_eq!(a.repeat_value, Some(30.0));
        assert_eq!(s[1].1.rfm.map(|r| r.x), Some(0.0));
        assert_eq!(s[1].1.repeat_value, None);
        assert_eq!(t.day_range(), Some((10, 50)));
    }
}
