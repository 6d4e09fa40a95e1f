//! Billable-unit readiness: the probability that at least one event of a kind
//! happens within the next N seconds.
//!
//! What matters is not how many events arrive but in how many seconds some
//! do: a burst of five events in one second is one arrival, and counting it
//! as five would promise an event five times as often as one comes. So the
//! estimator learns the share `q` of seconds holding at least one event, and
//! P(at least one within N s) = 1 − (1 − q)^N (for a Poisson stream of rate
//! λ, q = 1 − e^(−λ) and this is exactly 1 − e^(−λN)).
//!
//! `q` blends two estimates: the recent share (exponentially decayed,
//! half-life `recent_half_life`) and the usual share for this hour of the
//! week (decayed counts over decayed exposure, like the behavioural profile).
//! The recent share reacts within minutes; the profile knows that 09:00 on a
//! Monday is busy before the first event of the morning arrives. Events per
//! second are estimated alongside, the same way, for people to read.

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

/// Decayed counts of arrivals (seconds holding an event) and of events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Counts {
    arrivals: f64,
    events: f64,
}

impl Counts {
    fn scale(&mut self, keep: f64) {
        self.arrivals *= keep;
        self.events *= keep;
    }
}

/// Online readiness estimate for one organisation and billable unit type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    cfg: ReadinessConfig,
    /// Decayed counts as of `now`.
    recent: Counts,
    /// Decayed exposure matching `recent` (seconds), so the estimate is honest
    /// before a full half-life has been observed.
    recent_exposure: f64,
    counts: Vec<Counts>,
    exposure: Vec<f64>,
    /// Last hour (unix hours) each bucket was touched, for its weekly decay.
    touched: Vec<i64>,
    now: Option<f64>,
}

impl Readiness {
    pub fn new(cfg: ReadinessConfig) -> Self {
        Self {
            cfg,
            recent: Counts::default(),
            recent_exposure: 0.0,
            counts: vec![Counts::default(); HOURS_PER_WEEK],
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
                self.counts[b].scale(keep);
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
        self.recent.scale(decay);
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

    /// `events` events at `ts`, falling in `arrivals` distinct seconds (1 for
    /// events at one instant; for a bucket of several seconds, how many of
    /// its seconds held one).
    pub fn observe(&mut self, ts: f64, events: f64, arrivals: f64) {
        if !(ts.is_finite() && events.is_finite() && events > 0.0 && arrivals.is_finite()) {
            return;
        }
        let arrivals = arrivals.clamp(0.0, events);
        self.advance(ts);
        self.recent.arrivals += arrivals;
        self.recent.events += events;
        let (b, hour) = Self::bucket(ts);
        self.touch(b, hour);
        self.counts[b].arrivals += arrivals;
        self.counts[b].events += events;
    }

    /// The recent and usual values of `of` per second of exposure, blended.
    fn blend(&self, of: impl Fn(&Counts) -> f64) -> f64 {
        let Some(now) = self.now else { return 0.0 };
        let recent = if self.recent_exposure > 0.0 {
            of(&self.recent) / self.recent_exposure
        } else {
            0.0
        };
        let (b, _) = Self::bucket(now);
        if self.exposure[b] < self.cfg.min_exposure {
            return recent;
        }
        let usual = of(&self.counts[b]) / self.exposure[b];
        let w = self.cfg.profile_weight.max(0.0);
        (recent + w * usual) / (1.0 + w)
    }

    /// Estimated events per second at the current time.
    pub fn rate(&self) -> f64 {
        self.blend(|c| c.events)
    }

    /// Estimated share of seconds in which at least one event arrives.
    pub fn arrival_share(&self) -> f64 {
        self.blend(|c| c.arrivals).clamp(0.0, 1.0)
    }

    /// P(at least one event within the next `within_secs` seconds).
    pub fn probability(&self, within_secs: f64) -> f64 {
        let q = self.arrival_share();
        if q >= 1.0 {
            return if within_secs > 0.0 { 1.0 } else { 0.0 };
        }
        // 1 − (1 − q)^N, computed without losing a small q.
        -(within_secs.max(0.0) * (-q).ln_1p()).exp_m1()
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
            r.observe(MONDAY + i as f64 * 10.0, 1.0, 1.0);
        }
        r.advance(MONDAY + 7195.0);
        assert!((r.rate() - 0.1).abs() < 0.02, "rate {}", r.rate());
        let p = r.probability(10.0);
        assert!((p - (1.0 - 0.9f64.powi(10))).abs() < 0.1, "p {p}");
    }

    #[test]
    fn a_burst_is_one_arrival() {
        // The same arrivals, one event each or five at once: the same chance
        // that something arrives, five times the events.
        let (mut single, mut bursts) = (
            Readiness::new(ReadinessConfig::default()),
            Readiness::new(ReadinessConfig::default()),
        );
        for i in 0..720 {
            single.observe(MONDAY + i as f64 * 10.0, 1.0, 1.0);
            bursts.observe(MONDAY + i as f64 * 10.0, 5.0, 1.0);
        }
        for r in [&mut single, &mut bursts] {
            r.advance(MONDAY + 7195.0);
        }
        assert_eq!(single.probability(10.0), bursts.probability(10.0));
        assert!((bursts.rate() / single.rate() - 5.0).abs() < 1e-9);
        // A bucket of a minute with 30 events in 3 seconds: 3 arrivals.
        let mut minute = Readiness::new(ReadinessConfig::default());
        minute.observe(MONDAY, 30.0, 3.0);
        minute.advance(MONDAY + 60.0);
        assert!(minute.arrival_share() < minute.rate() / 5.0);
        // More arrivals than events cannot be.
        let mut odd = Readiness::new(ReadinessConfig::default());
        odd.observe(MONDAY, 1.0, 9.0);
        odd.advance(MONDAY + 60.0);
        assert!((odd.arrival_share() - odd.rate()).abs() < 1e-12);
    }

    #[test]
    fn the_probability_is_the_poisson_one_for_a_poisson_share() {
        // q = 1 − e^(−λ): 1 − (1 − q)^N = 1 − e^(−λN).
        let mut r = Readiness::new(ReadinessConfig {
            profile_weight: 0.0,
            recent_half_life: 1e9,
            ..ReadinessConfig::default()
        });
        let lambda: f64 = 0.05;
        let q = 1.0 - (-lambda).exp();
        r.advance(MONDAY);
        r.observe(MONDAY + 1000.0, q * 1000.0, q * 1000.0);
        let p = r.probability(30.0);
        assert!((p - (1.0 - (-lambda * 30.0).exp())).abs() < 1e-3, "p {p}");
    }

    #[test]
    fn silence_lowers_the_probability() {
        let mut r = Readiness::new(ReadinessConfig {
            profile_weight: 0.0,
            ..ReadinessConfig::default()
        });
        for i in 0..360 {
            r.observe(MONDAY + i as f64 * 10.0, 1.0, 1.0);
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
                r.observe(start + i as f64 * 5.0, 1.0, 1.0);
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
        r.observe(f64::NAN, 1.0, 1.0);
        r.observe(MONDAY, -3.0, 1.0);
        r.observe(MONDAY, f64::INFINITY, 1.0);
        r.observe(MONDAY, 1.0, f64::NAN);
        assert_eq!(r.rate(), 0.0);
        assert_eq!(r.probability(10.0), 0.0);
        assert_eq!(brier(&[(1.0, true), (0.0, false)]), 0.0);
        assert_eq!(brier(&[(0.5, true), (0.5, false)]), 0.25);
        assert_eq!(brier(&[]), 0.0);
    }
}
