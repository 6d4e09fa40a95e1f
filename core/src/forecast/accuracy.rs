//! Accuracy measures for forecasts judged on the values that followed them.

use super::backtest::OriginForecast;

/// The MASE scale: mean absolute seasonal-naive error (season `m`) over the
/// first `n` values; falls back to the one-step naive error when that is zero
/// (a series that is flat day over day), and to 1 when both are.
pub fn mase_scale(values: &[f64], m: usize, n: usize) -> f64 {
    let head = &values[..n.min(values.len())];
    let mean_abs_diff = |lag: usize| {
        if lag == 0 || head.len() <= lag {
            return 0.0;
        }
        let diffs: Vec<f64> = head
            .windows(lag + 1)
            .map(|w| (w[lag] - w[0]).abs())
            .filter(|d| d.is_finite())
            .collect();
        if diffs.is_empty() {
            0.0
        } else {
            diffs.iter().sum::<f64>() / diffs.len() as f64
        }
    };
    [mean_abs_diff(m), mean_abs_diff(1)]
        .into_iter()
        .find(|s| *s > 0.0)
        .unwrap_or(1.0)
}

/// Accuracy of a set of origin forecasts against the actual values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Mean absolute p50 error divided by the scale.
    pub mase: f64,
    /// Share of actual values inside [p10, p90].
    pub coverage: f64,
    /// Forecast steps judged.
    pub n: usize,
}

pub fn evaluate(actual: &[f64], forecasts: &[OriginForecast], scale: f64) -> Accuracy {
    let (mut abs, mut inside, mut n) = (0.0, 0usize, 0usize);
    for f in forecasts {
        for (i, s) in f.steps.iter().enumerate() {
            let Some(&y) = actual.get(f.origin + i + 1) else {
                continue;
            };
            if !y.is_finite() {
                continue;
            }
            abs += (y - s.p50).abs();
            inside += usize::from(s.p10 <= y && y <= s.p90);
            n += 1;
        }
    }
    let n_f = n.max(1) as f64;
    Accuracy {
        mase: abs / n_f / scale,
        coverage: inside as f64 / n_f,
        n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::Step;

    #[test]
    fn scale_is_the_seasonal_naive_error() {
        let v = [1.0, 2.0, 4.0, 7.0, 11.0];
        // m=2 over all: |4-1|, |7-2|, |11-4| -> 5
        assert_eq!(mase_scale(&v, 2, 5), 5.0);
        // flat day over day falls back to the one-step error
        assert_eq!(mase_scale(&[1.0, 3.0, 1.0, 3.0], 2, 4), 2.0);
        assert_eq!(mase_scale(&[2.0; 6], 2, 6), 1.0);
    }

    #[test]
    fn evaluates_error_and_coverage() {
        let actual = [0.0, 10.0, 12.0, 20.0];
        let f = OriginForecast {
            origin: 1,
            models: vec!["x".into(); 2],
            steps: vec![
                Step::ordered(9.0, 11.0, 13.0),
                Step::ordered(14.0, 15.0, 16.0),
            ],
        };
        let a = evaluate(&actual, &[f], 2.0);
        assert_eq!(a.n, 2);
        assert_eq!(a.mase, (1.0 + 5.0) / 2.0 / 2.0);
        assert_eq!(a.coverage, 0.5);
    }
}
