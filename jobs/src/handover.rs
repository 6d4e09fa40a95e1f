//! What the forecast job hands the allocation tick in the same worker: each
//! series' allocation-horizon forecast it just stored, with the demand of the
//! step it was made from (the step the tick measures). A tick takes what it
//! finds for the current step and reads from the database only the series
//! that are missing (another process forecast them, the job has not reached
//! them yet, or the worker restarted), so handed-over inputs are never older
//! than the stored ones: an entry is used only when its origin is the last
//! closed step, and no newer forecast than that can exist. The demand is the
//! step's mean as the job read it: a minute that arrives after the job's run
//! is not in it (the kept engines miss it likewise; see [`crate::warm`]).

use std::collections::HashMap;
use std::sync::Mutex;

use headroom_store::forecasts::StoredForecast;

use crate::warm::SeriesKey;

/// One series' inputs for the tick of the step after its forecast's origin.
#[derive(Debug, Clone)]
pub struct Handed {
    /// Mean of the series over the step at the forecast's origin.
    pub demand: Option<f64>,
    pub forecast: StoredForecast,
}

/// By organisation, workload, then metric: a tick looks each of its
/// workloads up by its names, without building a key (100,000 lookups a
/// tick).
type Entries = HashMap<String, HashMap<String, HashMap<String, Handed>>>;

#[derive(Debug, Default)]
pub struct Handover {
    entries: Mutex<Entries>,
}

impl Handover {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere leaves a consistent map: entries are whole.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The series' newest stored forecast, made from the step whose mean
    /// was `demand`.
    pub fn put(&self, key: SeriesKey, handed: Handed) {
        let (organization, workload, metric) = key;
        self.lock()
            .entry(organization)
            .or_default()
            .entry(workload)
            .or_default()
            .insert(metric, handed);
    }

    /// Drops what is held for the series (its newest stored forecast is not
    /// this process's).
    pub fn forget(&self, (organization, workload, metric): &SeriesKey) {
        if let Some(w) = self
            .lock()
            .get_mut(organization)
            .and_then(|o| o.get_mut(workload))
        {
            w.remove(metric);
        }
    }

    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .flat_map(HashMap::values)
            .map(HashMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything held, leaving nothing: a tick decides each slot once, and
    /// what it does not use is older than the next tick's step.
    pub fn take_all(&self) -> Taken {
        Taken(std::mem::take(&mut *self.lock()))
    }
}

/// What a tick took from the [`Handover`].
#[derive(Debug, Default)]
pub struct Taken(Entries);

impl Taken {
    /// The inputs of the series (organisation id, workload, metric) if its
    /// forecast was made from the step starting at `origin_ms`.
    pub fn take(
        &mut self,
        (organization, workload, metric): (&str, &str, &str),
        origin_ms: i64,
    ) -> Option<Handed> {
        self.0
            .get_mut(organization)?
            .get_mut(workload)?
            .remove(metric)
            .filter(|h| h.forecast.origin_ms == origin_ms)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use headroom_core::forecast::{PackedSteps, Step};

    /// An allocation forecast of web's cpu made from the step starting at
    /// `origin_ms`, version "v", whose step h (from 1) has median h.
    pub(crate) fn forecast(origin_ms: i64) -> StoredForecast {
        StoredForecast {
            workload: "web".into(),
            metric: "cpu".into(),
            horizon: "allocation".into(),
            origin_ms,
            step_secs: 300,
            made_at_ms: origin_ms + 330_000,
            model_version: "v".into(),
            steps: PackedSteps::pack((1..=12).map(|h| {
                let v = f64::from(h);
                (Step::ordered(v, v, v), "ets")
            }))
            .unwrap(),
        }
    }

    fn handed(origin_ms: i64) -> Handed {
        Handed {
            demand: Some(2.0),
            forecast: forecast(origin_ms),
        }
    }

    fn key(w: &str) -> SeriesKey {
        ("org".into(), w.into(), "cpu".into())
    }

    fn at(w: &str) -> (&str, &str, &str) {
        ("org", w, "cpu")
    }

    #[test]
    fn a_tick_takes_only_entries_of_its_step_and_leaves_nothing() {
        let h = Handover::new();
        h.put(key("a"), handed(600_000));
        h.put(key("b"), handed(300_000));
        h.put(key("c"), handed(600_000));
        h.put(("org".into(), "a".into(), "memory".into()), handed(600_000));
        assert_eq!(h.len(), 4);
        h.forget(&key("c"));
        assert_eq!(h.len(), 3);
        let mut taken = h.take_all();
        assert!(h.is_empty());
        assert_eq!(
            taken.take(at("a"), 600_000).map(|x| x.forecast.origin_ms),
            Some(600_000)
        );
        // Older than the step the tick measures: read from the database.
        assert!(taken.take(at("b"), 600_000).is_none());
        assert!(taken.take(at("c"), 600_000).is_none());
        assert!(taken.take(("org", "a", "disk"), 600_000).is_none());
        assert!(taken.take(("other", "a", "cpu"), 600_000).is_none());
        // Taken once; the workload's other metric is its own series.
        assert!(taken.take(at("a"), 600_000).is_none());
        assert!(taken.take(("org", "a", "memory"), 600_000).is_some());
    }
}
