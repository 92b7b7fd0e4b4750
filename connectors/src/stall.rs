//! When a source is stalled: the rules behind `/healthz` (with the health bound) and the
//! Kafka source's watchdog (with the rebuild bound), one function of what the source reports.

use std::time::{Duration, Instant};

/// What a source reports about itself at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceView {
    /// Partitions assigned now.
    pub assigned: u64,
    /// Messages read so far (any counter that moves when the source reads).
    pub messages: u64,
    /// Messages between the source's position and the partitions' ends.
    pub behind: i64,
    /// The consumer group's state when it is not up and steady ("query-coord",
    /// "up/wait-join", ...) and for how long it has been so; `None` when it is, or the source
    /// has no group.
    pub group_down: Option<(String, Duration)>,
    /// Why consumption is held on purpose (a dead-letter topic that cannot be written), if it is.
    pub held: Option<String>,
}

/// Remembers since when a source has read nothing, to say whether it is stalled: its group has
/// not been up and steady for the bound (it cannot get or keep partitions: broker or
/// coordinator unreachable, a rebalance that does not end); it has read nothing for the bound
/// while behind; or it holds consumption (at once: the reason is known). Holding no partition
/// in a steady group is not a stall: the group may have more members than partitions.
#[derive(Debug, Default)]
pub struct StallWatch {
    messages: u64,
    progress_at: Option<Instant>,
}

impl StallWatch {
    /// The reason the source is stalled at `now`, if it is.
    pub fn check(&mut self, now: Instant, view: &SourceView, bound: Duration) -> Option<String> {
        if view.messages != self.messages || self.progress_at.is_none() || view.behind <= 0 {
            self.messages = view.messages;
            self.progress_at = Some(now);
        }
        if let Some(why) = &view.held {
            return Some(why.clone());
        }
        if let Some((state, for_)) = view.group_down.as_ref().filter(|(_, d)| *d >= bound) {
            return Some(format!(
                "the consumer group has not been up and steady for {} s (state {state}: is the broker or the group coordinator reachable?)",
                for_.as_secs()
            ));
        }
        match self.progress_at {
            Some(at) if view.behind > 0 && now.duration_since(at) >= bound => Some(format!(
                "nothing read for {} s while {} messages behind",
                now.duration_since(at).as_secs(),
                view.behind
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(assigned: u64, messages: u64, behind: i64) -> SourceView {
        SourceView {
            assigned,
            messages,
            behind,
            ..SourceView::default()
        }
    }

    #[test]
    fn stalled_after_the_bound_without_progress_while_behind_and_back_on_reading() {
        let bound = Duration::from_secs(30);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = StallWatch::default();
        // No partition in a steady group (more members than partitions): not stalled.
        assert_eq!(w.check(at(0), &view(0, 0, 0), bound), None);
        assert_eq!(w.check(at(100), &view(0, 0, 0), bound), None);
        // Assigned and behind, reading nothing: stalled after the bound; reading again: fine.
        assert_eq!(w.check(at(140), &view(4, 10, 500), bound), None);
        assert_eq!(w.check(at(169), &view(4, 10, 500), bound), None);
        let why = w.check(at(170), &view(4, 10, 500), bound).expect("stalled");
        assert!(why.contains("nothing read for 30 s while 500 messages behind"), "{why}");
        assert_eq!(w.check(at(171), &view(4, 11, 499), bound), None);
        // Caught up and idle for long: not stalled.
        assert_eq!(w.check(at(500), &view(4, 11, 0), bound), None);
    }

    #[test]
    fn a_group_down_past_the_bound_or_a_hold_is_a_stall_even_with_partitions() {
        let bound = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut w = StallWatch::default();
        let mut v = view(4, 10, 0);
        v.group_down = Some(("query-coord".into(), Duration::from_secs(9)));
        assert_eq!(w.check(t0, &v, bound), None);
        v.group_down = Some(("query-coord".into(), Duration::from_secs(10)));
        let why = w.check(t0, &v, bound).expect("stalled");
        assert!(why.contains("state query-coord"), "{why}");
        v.group_down = None;
        assert_eq!(w.check(t0, &v, bound), None);
        v.held = Some("dead-letter topic cannot be written".into());
        assert_eq!(
            w.check(t0, &v, bound).as_deref(),
            Some("dead-letter topic cannot be written")
        );
    }
}
