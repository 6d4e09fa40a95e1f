//! Allocation-horizon engines and behavioural profiles kept in the worker
//! between forecast runs.
//!
//! Without them every run replays three days of five-minute steps into a new
//! engine per series (about 7 ms of CPU each, and 4,320 minute rollups read),
//! to forecast from one new step. A kept engine is fed only the steps that
//! closed since its last one, which is what the engine is built for: every
//! observation updates its errors, model scores and interval corrections.
//! Likewise each series' anomaly detector (its decayed hour-of-week profile),
//! which a replay rebuilds from eight days of steps (11,520 minute rollups).
//!
//! Bounded: an engine holds about 0.8 MB of error windows, so at most
//! `capacity` are kept and the other series stay on the replay path. Kept
//! engines are per process (a restarted worker replays once), drop out when
//! their series goes quiet, and are rebuilt when the LSTM joins or leaves the
//! live model version. A minute that arrives after its step was fed is not
//! learned by the kept engine (a replay would see it); rollups of closed steps
//! rarely change.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use headroom_core::forecast::{Grid, SeriesForecaster};
use headroom_core::profile::AnomalyDetector;

/// (organisation id, workload, metric).
pub type SeriesKey = (String, String, String);

/// One series' engine and where it stands.
pub struct WarmEngine {
    pub engine: SeriesForecaster,
    /// Whether the LSTM is among its candidates.
    pub with_lstm: bool,
    /// Start of the last step it observed.
    pub last_ms: i64,
    /// The last values it observed, gaps filled with the one before, as many
    /// as the LSTM reads (its window at the newest step).
    pub recent: VecDeque<f64>,
    keep: usize,
}

impl WarmEngine {
    /// An engine that has observed `grid` (whose values it was fed in order),
    /// keeping the last `keep` values for the LSTM's window.
    pub fn after(
        engine: SeriesForecaster,
        with_lstm: bool,
        grid: &Grid,
        keep: usize,
    ) -> Option<Self> {
        let last_ms = grid.last_start_ms()?;
        let mut warm = Self {
            engine,
            with_lstm,
            last_ms,
            recent: VecDeque::with_capacity(keep + 1),
            keep,
        };
        let filled = crate::lstm::fill_gaps(&grid.values);
        for v in &filled[filled.len().saturating_sub(keep)..] {
            warm.remember(*v);
        }
        Some(warm)
    }

    fn remember(&mut self, v: f64) {
        if self.keep == 0 {
            return;
        }
        if self.recent.len() == self.keep {
            self.recent.pop_front();
        }
        self.recent.push_back(v);
    }

    /// Feeds the steps of `grid` that start after `last_ms`, a missing step as
    /// a gap; returns how many steps were fed.
    pub fn catch_up(&mut self, grid: &Grid) -> usize {
        let Some(end) = grid.last_start_ms() else {
            return 0;
        };
        let step = grid.step_ms.max(1);
        let mut fed = 0;
        let mut at = self.last_ms + step;
        while at <= end {
            let value = if at >= grid.start_ms && (at - grid.start_ms) % step == 0 {
                grid.values[((at - grid.start_ms) / step) as usize]
            } else {
                None
            };
            self.engine.observe(value);
            let filled = value.or_else(|| self.recent.back().copied()).unwrap_or(0.0);
            self.remember(filled);
            self.last_ms = at;
            fed += 1;
            at += step;
        }
        fed
    }
}

/// A series' anomaly detector and the last step it scored.
pub struct WarmDetector {
    pub detector: AnomalyDetector,
    /// Start of the last step it saw (observed or not).
    pub last_ms: i64,
}

/// What one worker process keeps between forecast runs.
#[derive(Debug)]
pub struct Warm {
    pub engines: Kept<WarmEngine>,
    pub detectors: Kept<WarmDetector>,
}

impl Warm {
    /// Keeps up to `capacity` engines and as many detectors (0: every run
    /// replays).
    pub fn new(capacity: usize) -> Self {
        Self {
            engines: Kept::new(capacity),
            detectors: Kept::new(capacity),
        }
    }

    /// Forgets what belongs to series that are no longer active.
    pub fn retain(&self, active: &HashSet<SeriesKey>) {
        self.engines.retain(active);
        self.detectors.retain(active);
    }
}

/// Per-series state kept by one worker process, up to a capacity.
pub struct Kept<T> {
    capacity: usize,
    kept: Mutex<HashMap<SeriesKey, T>>,
}

impl<T> std::fmt::Debug for Kept<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("capacity", &self.capacity)
            .field("kept", &self.len())
            .finish()
    }
}

impl<T> Kept<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            kept: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SeriesKey, T>> {
        // A panic while the lock was held leaves whole entries or none.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a series' state out (it is put back after the run).
    pub fn take(&self, key: &SeriesKey) -> Option<T> {
        self.map().remove(key)
    }

    /// Keeps a series' state, unless the capacity is reached.
    pub fn put(&self, key: SeriesKey, value: T) {
        let mut map = self.map();
        if map.len() < self.capacity || map.contains_key(&key) {
            map.insert(key, value);
        }
    }

    /// Forgets the state of series that are no longer active.
    pub fn retain(&self, active: &HashSet<SeriesKey>) {
        self.map().retain(|k, _| active.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_core::forecast::{EngineConfig, Family};

    fn engine() -> SeriesForecaster {
        SeriesForecaster::new(EngineConfig::for_step(3, 300, Family::Auto)).unwrap()
    }

    fn grid(start_ms: i64, values: Vec<Option<f64>>) -> Grid {
        Grid {
            start_ms,
            step_ms: 300_000,
            values,
        }
    }

    #[test]
    fn catching_up_is_the_same_as_replaying() {
        let values: Vec<Option<f64>> = (0..400)
            .map(|i| (i % 37 != 5).then_some(((i * 7919) % 101) as f64))
            .collect();
        let first = grid(0, values[..300].to_vec());
        let mut warm = engine();
        for v in &first.values {
            warm.observe(*v);
        }
        let mut warm = WarmEngine::after(warm, false, &first, 4).unwrap();
        // The rest arrives as two later grids; the second starts after a
        // missing step (a gap the grid does not show).
        let step = 300_000;
        assert_eq!(
            warm.catch_up(&grid(300 * step, values[300..350].to_vec())),
            50
        );
        let later = grid(351 * step, values[351..].to_vec());
        assert_eq!(
            warm.catch_up(&later),
            50,
            "the missing step is fed as a gap"
        );
        assert_eq!(warm.last_ms, 399 * step);
        // Nothing new: nothing fed.
        assert_eq!(warm.catch_up(&later), 0);
        let mut expected = values.clone();
        expected[350] = None;
        let mut replayed_with_gap = engine();
        for v in &expected {
            replayed_with_gap.observe(*v);
        }
        assert_eq!(
            warm.engine.forecast().unwrap(),
            replayed_with_gap.forecast().unwrap()
        );
        assert_eq!(warm.engine.observed(), replayed_with_gap.observed());
        // The LSTM's window: the last values, gaps filled.
        let tail: Vec<f64> = crate::lstm::fill_gaps(&expected)[396..].to_vec();
        assert_eq!(warm.recent.iter().copied().collect::<Vec<_>>(), tail);
    }

    #[test]
    fn keeps_at_most_its_capacity_and_forgets_quiet_series() {
        let cache = Kept::new(1);
        let key = |w: &str| ("org".to_owned(), w.to_owned(), "cpu".to_owned());
        let g = grid(0, vec![Some(1.0), Some(2.0)]);
        let make = || {
            let mut e = engine();
            e.observe(Some(1.0));
            e.observe(Some(2.0));
            WarmEngine::after(e, false, &g, 2).unwrap()
        };
        cache.put(key("a"), make());
        cache.put(key("b"), make());
        assert_eq!(cache.len(), 1, "full: b is not kept");
        // Taken out and put back: still kept.
        let a = cache.take(&key("a")).unwrap();
        assert!(cache.take(&key("a")).is_none());
        cache.put(key("a"), a);
        assert_eq!(cache.len(), 1);
        cache.retain(&HashSet::from([key("b")]));
        assert!(cache.is_empty());
        // Capacity 0: nothing is ever kept.
        let none = Kept::new(0);
        none.put(key("a"), make());
        assert!(none.is_empty());
    }
}
