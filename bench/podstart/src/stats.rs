//! Percentiles and the per-pod milestone arithmetic of the report (pure).

use std::time::Duration;

/// When the client saw each step of one pod, as offsets from the moment its
/// create request was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// The create call returned.
    pub created: Option<Duration>,
    /// First watch event with `spec.nodeName` set.
    pub scheduled: Option<Duration>,
    /// First watch event with `status.phase == Running`.
    pub running: Option<Duration>,
    /// First watch event with the `Ready` condition `True`.
    pub ready: Option<Duration>,
}

/// p50 / p99 / max of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Nearest-rank percentile summary; `None` for an empty sample.
pub fn summarize(mut v: Vec<Duration>) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let rank = |p: usize| {
        // Nearest rank: ceil(p/100 * n), 1-based.
        let r = (p * v.len()).div_ceil(100).max(1);
        v[r.min(v.len()) - 1]
    };
    Some(Summary {
        n: v.len(),
        p50: rank(50),
        p99: rank(99),
        max: v[v.len() - 1],
    })
}

/// The phases of one pod: create→Ready, sent→scheduled, scheduled→Running,
/// Running→Ready. A phase is missing when a milestone was not seen (a watch
/// event can carry two steps at once, then the later phase is zero).
pub fn phases(m: &Marks) -> [Option<Duration>; 4] {
    let gap = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    [
        m.ready,
        m.scheduled,
        gap(m.scheduled, m.running),
        gap(m.running, m.ready),
    ]
}

/// Formats a duration in milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = summarize((1..=100).map(d).collect()).unwrap();
        assert_eq!((s.n, s.p50, s.p99, s.max), (100, d(50), d(99), d(100)));
        let s = summarize(vec![d(7)]).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (d(7), d(7), d(7)));
        let s = summarize(vec![d(3), d(1), d(2)]).unwrap();
        assert_eq!((s.p50, s.p99), (d(2), d(3)));
        assert!(summarize(Vec::new()).is_none());
    }

    #[test]
    fn phases_split_the_path_to_ready() {
        let m = Marks {
            created: Some(d(5)),
            scheduled: Some(d(20)),
            running: Some(d(120)),
            ready: Some(d(150)),
        };
        assert_eq!(
            phases(&m),
            [Some(d(150)), Some(d(20)), Some(d(100)), Some(d(30))]
        );
        let partial = Marks {
            scheduled: Some(d(20)),
            ..Marks::default()
        };
        assert_eq!(phases(&partial), [None, Some(d(20)), None, None]);
        assert_eq!(ms(d(1500)), "1500.0 ms");
    }
}
