//! Billable-unit readiness: the probability that at least one event of a kind
//! happens within the next N seconds.
//!
//! Arrivals are treated as a Poisson process whose rate blends two estimates:
//! the recent rate (exponentially decayed count, half-life `recent_half_life`)
//! and the usual rate for this hour of the week (decayed counts over decayed
//! exposure, like the behavioural profile). The recent rate reacts within
//! minutes; the profile knows that 09:00 on a Monday is busy before the first
//! event of the morning arrives. P(at least one in N s) = 1 − exp(−λ·N).

use serde::{Deserialize, Serialize};

const HOURS_PER_WEEK: usize = 168;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReadinessConfig {
    /// Half-life of the recent-rate estimate, seconds.
    pub recent_half_life: f64,
    /// Weight a week-old hour keeps in the hour-of-week profile.
    pub weekly_keep: f64,
    /// How much the profile counts against the recent rate (0: recent only).
    pub profile_weight: f64,
    /// Exposure an hour-of-week bucket needs before it is trusted, seconds.
    pub min_exposure: f64,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            // Chosen by replaying the six NAB traces as event rates
            // (`headroom backtest readiness --from-series`, in the accuracy report).
            recent_half_life: 150.0,
            weekly_keep: 0.5,
            profile_weight: 0.25,
            min_exposure: 1800.0,
        }
    }
}

/// Online readiness estimate for one organisation and billable unit type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    cfg: ReadinessConfig,
    /// Decayed event count as of `now`.
    recent: f64,
    /// Decayed exposure matching `recent` (seconds), so the estimate is honest
    /// before a full half-life has been observed.
    recent_exposure: f64,
    counts: Vec<f64>,
    exposure: Vec<f64>,
    /// Last hour (unix hours) each bucket was touched, for its weekly decay.
    touched: Vec<i64>,
    now: Option<f64>,
}

impl Readiness {
    pub fn new(cfg: ReadinessConfig) -> Self {
        Self {
            cfg,
            recent: 0.0,
            recent_exposure: 0.0,
            counts: vec![0.0; HOURS_PER_WEEK],
            exposure: vec![0.0; HOURS_PER_WEEK],
            touched: vec![i64::MIN; HOURS_PER_WEEK],
            now: None,
        }
    }

    fn bucket(ts: f64) -> (usize, i64) {
        let hour = (ts / 3600.0).floor() as i64;
        // 1970-01-01 was a Thursday; buckets start on Monday 00:00.
        let b = (hour + 3 * 24).rem_euclid(HOURS_PER_WEEK as i64) as usize;
        (b, hour)
    }

    fn touch(&mut self, b: usize, hour: i64) {
        if self.touched[b] != hour {
            if self.touched[b] != i64::MIN {
                let weeks = (hour - self.touched[b]) as f64 / HOURS_PER_WEEK as f64;
                let keep = self.cfg.weekly_keep.clamp(0.0, 1.0).powf(weeks.max(0.0));
                self.counts[b] *= keep;
                self.exposure[b] *= keep;
            }
            self.touched[b] = hour;
        }
    }

    /// Moves the clock to `ts` (seconds), accruing exposure; time never goes back.
    pub fn advance(&mut self, ts: f64) {
        if !ts.is_finite() {
            return;
        }
        let Some(mut t) = self.now else {
            self.now = Some(ts);
            return;
        };
        if ts <= t {
            return;
        }
        let decay = 0.5f64.powf((ts - t) / self.cfg.recent_half_life.max(1e-9));
        self.recent *= decay;
        self.recent_exposure = self.recent_exposure * decay
            + (1.0 - decay) * self.cfg.recent_half_life / std::f64::consts::LN_2;
        // Exposure per hour bucket, hour by hour (bounded: a gap of a week or
        // more covers every bucket once).
        let mut steps = 0;
        while t < ts && steps <= HOURS_PER_WEEK + 1 {
            let next = ((t / 3600.0).floor() + 1.0) * 3600.0;
            let end = next.min(ts);
            let (b, hour) = Self::bucket(t);
            self.touch(b, hour);
            self.exposure[b] += end - t;
            t = end;
            steps += 1;
        }
        self.now = Some(ts);
    }

    /// An event (or `count` of them) at `ts`.
    pub fn observe(&mut self, ts: f64, count: f64) {
        if !(ts.is_finite() && count.is_finite() && count > 0.0) {
            return;
        }
        self.advance(ts);
        self.recent += count;
        let (b, hour) = Self::bucket(ts);
        self.touch(b, hour);
        self.counts[b] += count;
    }

    /// Estimated events per second at the current time.
    pub fn rate(&self) -> f64 {
        let Some(now) = self.now else { return 0.0 };
        let recent = if self.recent_exposure > 0.0 {
            self.recent / self.recent_exposure
        } else {
            0.0
        };
        let (b, _) = Self::bucket(now);
        if self.exposure[b] < self.cfg.min_exposure {
            return recent;
        }
        let usual = self.counts[b] / self.exposure[b];
        let w = self.cfg.profile_weight.max(0.0);
        (recent + w * usual) / (1.0 + w)
    }

    /// P(at least one event within the next `within_secs` seconds).
    pub fn probability(&self, within_secs: f64) -> f64 {
        let lambda = self.rate() * within_secs.max(0.0);
        1.0 - (-lambda).exp()
    }
}

/// Brier score: mean squared difference between predicted probabilities and
/// what happened (1 or 0). Lower is better; 0.25 is a coin toss at 50 %.
pub fn brier(pairs: &[(f64, bool)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs
        .iter()
        .map(|(p, o)| (p - f64::from(u8::from(*o))).powi(2))
        .sum::<f64>()
        / pairs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: f64 = 4.0 * 86_400.0;

    #[test]
    fn a_steady_stream_gives_its_rate() {
        let mut r = Readiness::new(ReadinessConfig::default());
        // One event every 10 s for two hours.
        for i in 0..720 {
            r.observe(MONDAY + i as f64 * 10.0, 1.0);
        }
        r.advance(MONDAY + 7195.0);
        assert!((r.rate() - 0.1).abs() < 0.02, "rate {}", r.rate());
        let p = r.probability(10.0);
        assert!((p - (1.0 - (-1.0f64).exp())).abs() < 0.1, "p {p}");
    }

    #[test]
    fn silence_lowers_the_probability() {
        let mut r = Readiness::new(ReadinessConfig {
            profile_weight: 0.0,
            ..ReadinessConfig::default()
        });
        for i in 0..360 {
            r.observe(MONDAY + i as f64 * 10.0, 1.0);
        }
        let busy = r.probability(10.0);
        r.advance(MONDAY + 3600.0 + 3600.0);
        let quiet = r.probability(10.0);
        assert!(quiet < busy / 10.0, "busy {busy} quiet {quiet}");
    }

    #[test]
    fn the_profile_expects_the_usual_busy_hour() {
        let mut r = Readiness::new(ReadinessConfig::default());
        // Two weeks: busy 09:00-10:00 every day (an event every 5 s), idle otherwise.
        for day in 0..14 {
            let start = MONDAY + day as f64 * 86_400.0 + 9.0 * 3600.0;
            for i in 0..720 {
                r.observe(start + i as f64 * 5.0, 1.0);
            }
        }
        // Day 15, 09:00:30, before any event today: the recent rate is ~0 but
        // the profile knows this hour.
        r.advance(MONDAY + 14.0 * 86_400.0 + 9.0 * 3600.0 + 30.0);
        let p = r.probability(10.0);
        assert!(p > 0.2, "p {p}");
        // At 03:00 nothing usually happens.
        let mut r2 = r.clone();
        r2.advance(MONDAY + 15.0 * 86_400.0 + 3.0 * 3600.0);
        assert!(r2.probability(10.0) < 0.01);
    }

    #[test]
    fn bad_input_is_ignored_and_brier_is_right() {
        let mut r = Readiness::new(ReadinessConfig::default());
        r.observe(f64::NAN, 1.0);
        r.observe(MONDAY, -3.0);
        r.observe(MONDAY, f64::INFINITY);
        assert_eq!(r.rate(), 0.0);
        assert_eq!(r.probability(10.0), 0.0);
        assert_eq!(brier(&[(1.0, true), (0.0, false)]), 0.0);
        assert_eq!(brier(&[(0.5, true), (0.5, false)]), 0.25);
        assert_eq!(brier(&[]), 0.0);
    }
}
