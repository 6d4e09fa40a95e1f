//! Which forecasting version serves: versions are scored on the same recent
//! data (rolling origins, every series of a sample), and a version goes live
//! only when it beats the live one by a margin — never on a tie, so the live
//! version does not flap between equals.

use super::accuracy::Accuracy;

/// A version must beat the live one's MASE by this share to replace it.
pub const PROMOTION_MARGIN: f64 = 0.02;
/// Recent accuracy this much worse than the live version's registered score
/// calls for re-scoring every version now rather than at the weekly run.
pub const DROP_TOLERANCE: f64 = 1.25;

/// A version's accuracy over a sample of series.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    /// Mean of the series' MASE, weighted by the steps each contributed.
    pub mase: f64,
    /// Share of actual values inside [p10, p90] over every step judged.
    pub coverage: f64,
    pub steps: usize,
    pub series: usize,
}

/// Pools per-series accuracies (each against its own MASE scale). `None`
/// when nothing was judged.
pub fn pool(per_series: &[Accuracy]) -> Option<Score> {
    let judged: Vec<&Accuracy> = per_series
        .iter()
        .filter(|a| a.n > 0 && a.mase.is_finite() && a.coverage.is_finite())
        .collect();
    let steps: usize = judged.iter().map(|a| a.n).sum();
    if steps == 0 {
        return None;
    }
    let weighted = |f: fn(&Accuracy) -> f64| {
        judged.iter().map(|a| f(a) * a.n as f64).sum::<f64>() / steps as f64
    };
    Some(Score {
        mase: weighted(|a| a.mase),
        coverage: weighted(|a| a.coverage),
        steps,
        series: judged.len(),
    })
}

/// What to do with a scored candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing is live yet: the best scored version goes live.
    FirstLive {
        reason: String,
    },
    Promote {
        reason: String,
    },
    KeepLive {
        reason: String,
    },
}

/// Whether `candidate` should replace `live`, both scored on the same data.
pub fn judge(live: Option<(&str, &Score)>, candidate: (&str, &Score)) -> Verdict {
    let (name, c) = candidate;
    let Some((live_name, l)) = live else {
        return Verdict::FirstLive {
            reason: format!("no version was live; {name} scored MASE {:.3}", c.mase),
        };
    };
    if live_name == name {
        return Verdict::KeepLive {
            reason: format!("{name} is the live version"),
        };
    }
    let bar = l.mase * (1.0 - PROMOTION_MARGIN);
    if c.mase < bar {
        Verdict::Promote {
            reason: format!(
                "{name} scored MASE {:.3} against {live_name}'s {:.3} on the same {} steps of {} series (coverage {:.2} vs {:.2})",
                c.mase, l.mase, c.steps, c.series, c.coverage, l.coverage
            ),
        }
    } else {
        Verdict::KeepLive {
            reason: format!(
                "{name} scored MASE {:.3}, not below {bar:.3} ({live_name}'s {:.3} less {:.0} %)",
                c.mase,
                l.mase,
                PROMOTION_MARGIN * 100.0
            ),
        }
    }
}

/// Of several versions scored on the same data, the one to keep or make
/// live, and why. `live` names the version live now, if any.
pub fn choose(live: Option<&str>, scored: &[(&str, Score)]) -> Option<(String, Verdict)> {
    let best = scored.iter().min_by(|a, b| a.1.mase.total_cmp(&b.1.mase))?;
    let live_scored = live.and_then(|l| scored.iter().find(|(n, _)| *n == l));
    match (live, live_scored) {
        // The live version could not be scored (e.g. the LSTM is missing in
        // this process): nothing is decided without it.
        (Some(l), None) => Some((
            l.to_owned(),
            Verdict::KeepLive {
                reason: format!("{l} could not be scored here; nothing changes"),
            },
        )),
        (_, Some((l, ls))) => {
            let verdict = judge(Some((l, ls)), (best.0, &best.1));
            let name = match verdict {
                Verdict::Promote { .. } => best.0,
                _ => l,
            };
            Some((name.to_owned(), verdict))
        }
        (None, None) => Some((best.0.to_owned(), judge(None, (best.0, &best.1)))),
    }
}

/// Whether recent accuracy of the live version has fallen enough below its
/// registered score to re-score now.
pub fn accuracy_dropped(registered_mase: f64, recent_mase: f64) -> bool {
    registered_mase.is_finite()
        && recent_mase.is_finite()
        && recent_mase > registered_mase * DROP_TOLERANCE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(mase: f64, coverage: f64, n: usize) -> Accuracy {
        Accuracy { mase, coverage, n }
    }

    fn score(mase: f64) -> Score {
        Score {
            mase,
            coverage: 0.8,
            steps: 100,
            series: 3,
        }
    }

    #[test]
    fn pooling_weights_by_steps_and_skips_empty_series() {
        let s = pool(&[
            acc(1.0, 1.0, 30),
            acc(0.5, 0.5, 10),
            acc(f64::NAN, 0.0, 5),
            acc(9.0, 0.0, 0),
        ])
        .unwrap();
        assert!((s.mase - 0.875).abs() < 1e-12, "{s:?}");
        assert!((s.coverage - 0.875).abs() < 1e-12);
        assert_eq!((s.steps, s.series), (40, 2));
        assert_eq!(pool(&[acc(1.0, 1.0, 0)]), None);
    }

    #[test]
    fn a_candidate_must_beat_the_live_version_by_the_margin() {
        let live = score(1.0);
        assert!(matches!(
            judge(Some(("a", &live)), ("b", &score(0.97))),
            Verdict::Promote { .. }
        ));
        // A tie, or better by less than the margin, keeps the live version.
        for c in [1.0, 0.99, 1.2] {
            assert!(
                matches!(
                    judge(Some(("a", &live)), ("b", &score(c))),
                    Verdict::KeepLive { .. }
                ),
                "{c}"
            );
        }
        assert!(matches!(
            judge(None, ("b", &score(3.0))),
            Verdict::FirstLive { .. }
        ));
    }

    #[test]
    fn choosing_among_versions() {
        let scored = [("stat", score(1.0)), ("stat+lstm", score(0.9))];
        let (name, v) = choose(None, &scored).unwrap();
        assert_eq!(name, "stat+lstm");
        assert!(matches!(v, Verdict::FirstLive { .. }));
        let (name, v) = choose(Some("stat"), &scored).unwrap();
        assert_eq!(name, "stat+lstm");
        assert!(matches!(v, Verdict::Promote { .. }), "{v:?}");
        let close = [("stat", score(1.0)), ("stat+lstm", score(0.995))];
        let (name, v) = choose(Some("stat"), &close).unwrap();
        assert_eq!(name, "stat");
        assert!(matches!(v, Verdict::KeepLive { .. }));
        // The live version is the best: kept.
        let (name, _) = choose(Some("stat+lstm"), &scored).unwrap();
        assert_eq!(name, "stat+lstm");
        // The live version was not scored here: nothing changes.
        let only = [("stat", score(2.0))];
        let (name, v) = choose(Some("stat+lstm"), &only).unwrap();
        assert_eq!(name, "stat+lstm");
        assert!(matches!(v, Verdict::KeepLive { .. }));
        assert_eq!(choose(None, &[]), None);
    }

    #[test]
    fn a_drop_is_a_quarter_worse() {
        assert!(accuracy_dropped(0.8, 1.01));
        assert!(!accuracy_dropped(0.8, 0.99));
        assert!(!accuracy_dropped(f64::NAN, 5.0));
    }
}
