//! Fixed-interval summaries of a metric series. Buckets merge associatively, so
//! they can be maintained incrementally: new points are rolled up per batch and
//! merged into what is stored, and queries regroup stored buckets into any step.

/// The stored bucket widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::Minute, Resolution::Hour];

    pub fn millis(self) -> i64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// As stored in the database.
    pub fn seconds(self) -> i32 {
        (self.millis() / 1000) as i32
    }

    pub fn bucket_start(self, ts_ms: i64) -> i64 {
        ts_ms - ts_ms.rem_euclid(self.millis())
    }

    /// The coarsest stored resolution that divides `step_ms` (queries read fewer rows).
    pub fn for_step(step_ms: i64) -> Option<Resolution> {
        [Resolution::Hour, Resolution::Minute]
            .into_iter()
            .find(|r| step_ms >= r.millis() && step_ms % r.millis() == 0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start_ms: i64,
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The value with the latest timestamp in the bucket.
    pub last: f64,
    pub last_ts_ms: i64,
}

impl Bucket {
    pub fn single(start_ms: i64, ts_ms: i64, value: f64) -> Self {
        Self {
            start_ms,
            count: 1,
            sum: value,
            min: value,
            max: value,
            last: value,
            last_ts_ms: ts_ms,
        }
    }

    /// Combines two summaries of the same window.
    pub fn merge(&mut self, other: &Bucket) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.last_ts_ms >= self.last_ts_ms {
            self.last = other.last;
            self.last_ts_ms = other.last_ts_ms;
        }
    }

    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Rolls one series' points `(timestamp ms, value)` into buckets, by start time.
pub fn buckets_for(res: Resolution, points: impl IntoIterator<Item = (i64, f64)>) -> Vec<Bucket> {
    let mut out: std::collections::BTreeMap<i64, Bucket> = Default::default();
    for (ts, v) in points {
        let start = res.bucket_start(ts);
        let b = Bucket::single(start, ts, v);
        out.entry(start).and_modify(|e| e.merge(&b)).or_insert(b);
    }
    out.into_values().collect()
}

/// Regroups stored buckets into windows of `step_ms` aligned on `from_ms`; windows
/// without data are left out (the caller shows gaps as gaps).
pub fn regroup(buckets: &[Bucket], from_ms: i64, step_ms: i64) -> Vec<Bucket> {
    let mut out: std::collections::BTreeMap<i64, Bucket> = Default::default();
    for b in buckets {
        let start = from_ms + (b.start_ms - from_ms).div_euclid(step_ms) * step_ms;
        let mut moved = b.clone();
        moved.start_ms = start;
        out.entry(start)
            .and_modify(|e| e.merge(&moved))
            .or_insert(moved);
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_fall_in_their_minute() {
        let b = buckets_for(
            Resolution::Minute,
            [(59_999, 1.0), (0, 3.0), (60_000, 5.0), (30_000, 2.0)],
        );
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].start_ms, b[0].count, b[0].sum, b[0].min, b[0].max),
            (0, 3, 6.0, 1.0, 3.0)
        );
        assert_eq!(
            (b[0].last, b[0].last_ts_ms),
            (1.0, 59_999),
            "last by time, not by arrival"
        );
        assert_eq!((b[1].start_ms, b[1].count), (60_000, 1));
    }

    #[test]
    fn incremental_equals_all_at_once() {
        let points: Vec<(i64, f64)> = (0..500)
            .map(|i| ((i * 7_919) % 7_200_000, (i % 13) as f64 - 4.0))
            .collect();
        let whole = buckets_for(Resolution::Minute, points.iter().copied());
        let mut stored = buckets_for(Resolution::Minute, points[..200].iter().copied());
        for b in buckets_for(Resolution::Minute, points[200..].iter().copied()) {
            match stored.iter_mut().find(|s| s.start_ms == b.start_ms) {
                Some(s) => s.merge(&b),
                None => stored.push(b),
            }
        }
        stored.sort_by_key(|b| b.start_ms);
        assert_eq!(stored.len(), whole.len());
        for (a, b) in stored.iter().zip(&whole) {
            assert_eq!(
                (a.start_ms, a.count, a.min, a.max, a.last_ts_ms),
                (b.start_ms, b.count, b.min, b.max, b.last_ts_ms)
            );
            assert!((a.sum - b.sum).abs() < 1e-9);
        }
    }

    #[test]
    fn queries_regroup_minutes_into_steps() {
        let minutes = buckets_for(Resolution::Minute, (0..10).map(|m| (m * 60_000, m as f64)));
        let five = regroup(&minutes, 0, 300_000);
        assert_eq!(five.len(), 2);
        assert_eq!(
            (five[0].count, five[0].sum, five[0].max, five[0].last),
            (5, 10.0, 4.0, 4.0)
        );
        assert_eq!(five[1].mean(), 7.0);
        assert_eq!(Resolution::for_step(300_000), Some(Resolution::Minute));
        assert_eq!(Resolution::for_step(7_200_000), Some(Resolution::Hour));
        assert_eq!(Resolution::for_step(90_000), None);
    }
}
