//! What customers tell the forecaster about the future: external events that
//! multiply demand in a window, and workload profiles that stand in for
//! history a new series does not have yet.

use serde::{Deserialize, Serialize};

use super::Step;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> InputError {
    InputError::Invalid(msg.into())
}

/// A known future event, e.g. a marketing campaign expected to double traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalEvent {
    pub name: String,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub multiplier: f64,
}

impl ExternalEvent {
    pub fn new(
        name: &str,
        starts_ms: i64,
        ends_ms: i64,
        multiplier: f64,
    ) -> Result<Self, InputError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("name must be 1 to 200 characters"));
        }
        if ends_ms <= starts_ms {
            return Err(invalid("end must be after start"));
        }
        if ends_ms - starts_ms > 366 * 86_400_000 {
            return Err(invalid("an event may last at most a year"));
        }
        if !(multiplier.is_finite() && multiplier > 0.0 && multiplier <= 100.0) {
            return Err(invalid(
                "expected_multiplier must be above 0 and at most 100",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            starts_ms,
            ends_ms,
            multiplier,
        })
    }
}

/// Scales the forecast steps that start inside an event's window by its
/// multiplier (overlapping events multiply) and names the events in the step's
/// model label. Step `h` (1-based) starts at `origin_ms + h × step_ms`.
pub fn apply_events(
    steps: &mut [Step],
    labels: &mut [String],
    origin_ms: i64,
    step_ms: i64,
    events: &[ExternalEvent],
) {
    for (i, (step, label)) in steps.iter_mut().zip(labels.iter_mut()).enumerate() {
        let at = origin_ms + (i as i64 + 1) * step_ms;
        for e in events
            .iter()
            .filter(|e| e.starts_ms <= at && at < e.ends_ms)
        {
            *step = Step::ordered(
                step.p10 * e.multiplier,
                step.p50 * e.multiplier,
                step.p90 * e.multiplier,
            );
            label.push_str(&format!(" x{} ({})", e.multiplier, e.name));
        }
    }
}

/// What kind of workload a profile describes; sets how much quieter it is
/// outside its peak hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Web,
    Database,
    Batch,
    Other,
}

impl Category {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "web" => Some(Self::Web),
            "database" => Some(Self::Database),
            "batch" => Some(Self::Batch),
            "other" => Some(Self::Other),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Database => "database",
            Self::Batch => "batch",
            Self::Other => "other",
        }
    }

    /// Demand outside peak hours relative to inside them (typical shapes: web
    /// traffic halves at night, databases keep background work, batch jobs
    /// mostly stop).
    fn off_peak(self) -> f64 {
        match self {
            Self::Web => 0.5,
            Self::Database => 0.7,
            Self::Batch => 0.2,
            Self::Other => 0.8,
        }
    }
}

/// The customer's description of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadProfile {
    pub category: Category,
    /// UTC hours (0–23) of peak demand.
    pub peak_hours: Vec<u8>,
    /// Expected growth per 30 days (0.1 = +10 %).
    pub expected_growth: f64,
}

impl WorkloadProfile {
    pub fn new(
        category: Category,
        mut peak_hours: Vec<u8>,
        expected_growth: f64,
    ) -> Result<Self, InputError> {
        if peak_hours.iter().any(|h| *h > 23) {
            return Err(invalid("peak_hours must be UTC hours from 0 to 23"));
        }
        peak_hours.sort_unstable();
        peak_hours.dedup();
        if !(expected_growth.is_finite() && (-0.9..=10.0).contains(&expected_growth)) {
            return Err(invalid(
                "expected_growth must be between -0.9 and 10 (per 30 days)",
            ));
        }
        Ok(Self {
            category,
            peak_hours,
            expected_growth,
        })
    }

    /// The profile's relative demand at a time (1 in peak hours).
    fn shape(&self, ts_ms: i64) -> f64 {
        let hour = ts_ms.div_euclid(3_600_000).rem_euclid(24) as u8;
        if self.peak_hours.is_empty() || self.peak_hours.contains(&hour) {
            1.0
        } else {
            self.category.off_peak()
        }
    }

    /// A forecast from the profile alone, scaled to what little was observed:
    /// `observed` are (start ms, value) of the steps seen so far.
    pub fn prior(
        &self,
        observed: &[(i64, f64)],
        origin_ms: i64,
        step_ms: i64,
        horizon: usize,
    ) -> Option<Vec<Step>> {
        if observed.is_empty() {
            return None;
        }
        // The level the profile's shape implies, from each observation.
        let mut levels: Vec<f64> = observed.iter().map(|(t, v)| v / self.shape(*t)).collect();
        levels.sort_by(f64::total_cmp);
        let level = levels[levels.len() / 2];
        let spread = levels.iter().map(|l| (l - level).abs()).sum::<f64>() / levels.len() as f64;
        // Little history says little about spread: at least ±25 % of the level.
        let spread = spread.max(0.25 * level.abs());
        let month_ms = 30.0 * 86_400_000.0;
        Some(
            (1..=horizon)
                .map(|h| {
                    let at = origin_ms + h as i64 * step_ms;
                    let growth =
                        (1.0 + self.expected_growth).powf((at - origin_ms) as f64 / month_ms);
                    let f = self.shape(at) * growth;
                    Step::ordered(
                        (level - 1.28 * spread) * f,
                        level * f,
                        (level + 1.28 * spread) * f,
                    )
                })
                .collect(),
        )
    }
}

/// Blends the model's forecast with the profile's prior by how much of a day
/// has been observed: all prior with no history, all model from a day on.
pub fn blend_with_prior(model: &[Step], prior: &[Step], observed_share_of_day: f64) -> Vec<Step> {
    let w = observed_share_of_day.clamp(0.0, 1.0);
    model
        .iter()
        .zip(prior)
        .map(|(m, p)| {
            let mix = |a: f64, b: f64| w * a + (1.0 - w) * b;
            Step::ordered(mix(m.p10, p.p10), mix(m.p50, p.p50), mix(m.p90, p.p90))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn events_scale_only_the_steps_in_their_window() {
        let mut steps = vec![Step::ordered(8.0, 10.0, 12.0); 4];
        let mut labels = vec!["naive".to_owned(); 4];
        let e = ExternalEvent::new("launch", 2 * H, 4 * H, 2.0).unwrap();
        // Steps start at 1h, 2h, 3h, 4h: the 2nd and 3rd are inside [2h, 4h).
        apply_events(&mut steps, &mut labels, 0, H, &[e]);
        let p50: Vec<f64> = steps.iter().map(|s| s.p50).collect();
        assert_eq!(p50, vec![10.0, 20.0, 20.0, 10.0]);
        assert_eq!(steps[1].p90, 24.0);
        assert_eq!(labels[1], "naive x2 (launch)");
        assert_eq!(labels[0], "naive");
    }

    #[test]
    fn events_and_profiles_reject_nonsense() {
        assert!(ExternalEvent::new(" ", 0, 1, 2.0).is_err());
        assert!(ExternalEvent::new("x", 5, 5, 2.0).is_err());
        assert!(ExternalEvent::new("x", 0, 1, 0.0).is_err());
        assert!(ExternalEvent::new("x", 0, 1, f64::NAN).is_err());
        assert!(ExternalEvent::new("x", 0, 400 * 86_400_000, 2.0).is_err());
        assert!(WorkloadProfile::new(Category::Web, vec![24], 0.0).is_err());
        assert!(WorkloadProfile::new(Category::Web, vec![9], -1.0).is_err());
        let p = WorkloadProfile::new(Category::Web, vec![10, 9, 9], 0.1).unwrap();
        assert_eq!(p.peak_hours, vec![9, 10]);
        assert_eq!(Category::parse("web"), Some(Category::Web));
        assert_eq!(Category::parse("mainframe"), None);
    }

    #[test]
    fn the_prior_follows_peak_hours_from_little_history() {
        let p = WorkloadProfile::new(Category::Web, (9..17).collect(), 0.0).unwrap();
        // Two hours observed at night (off-peak) at 30: the implied level is 60.
        let observed: Vec<(i64, f64)> = (0..24).map(|i| (i * 300_000, 30.0)).collect();
        let prior = p.prior(&observed, 2 * H, H, 10).unwrap();
        // Steps at 03:00..12:00: off-peak until 09:00, then peak.
        assert_eq!(prior[0].p50, 30.0); // 03:00
        assert_eq!(prior[6].p50, 60.0); // 09:00
        assert!(prior.iter().all(|s| s.p10 < s.p50 && s.p50 < s.p90));
        assert!(p.prior(&[], 0, H, 3).is_none());
        let model = vec![Step::ordered(0.0, 10.0, 20.0)];
        let prior = vec![Step::ordered(10.0, 30.0, 50.0)];
        assert_eq!(blend_with_prior(&model, &prior, 0.25)[0].p50, 25.0);
        assert_eq!(blend_with_prior(&model, &prior, 2.0)[0].p50, 10.0);
    }
}
