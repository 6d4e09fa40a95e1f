//! Rolling-origin backtests: the series is fed one value at a time and a
//! forecast is taken at each origin before the next value is seen, so no model
//! can look at the future it is judged on.

use super::engine::{EngineConfig, SeriesForecaster};
use super::{ForecastError, Step};

/// Which origins a backtest forecasts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origins {
    pub horizon: usize,
    pub every: usize,
    /// Values observed before the first forecast: the first origin is `min_train - 1`.
    pub min_train: usize,
}

impl Origins {
    /// Origin row indices: `N-1, N-1+E, …` while `origin + H` is inside the series.
    pub fn list(&self, len: usize) -> Result<Vec<usize>, ForecastError> {
        if self.horizon == 0 {
            return Err(ForecastError::ZeroHorizon);
        }
        if self.every == 0 || self.min_train == 0 {
            return Err(ForecastError::BadRequest(
                "--every and --min-train must be at least 1".into(),
            ));
        }
        let first = self.min_train - 1;
        if first + self.horizon >= len {
            return Err(ForecastError::TooShort {
                have: len,
                need: self.min_train + self.horizon,
            });
        }
        Ok((first..len - self.horizon).step_by(self.every).collect())
    }
}

/// The forecast made at one origin.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginForecast {
    pub origin: usize,
    pub models: Vec<String>,
    pub steps: Vec<Step>,
}

/// Runs the engine over `values` and forecasts at every origin.
pub fn rolling_origin(
    values: &[Option<f64>],
    origins: Origins,
    cfg: EngineConfig,
) -> Result<Vec<OriginForecast>, ForecastError> {
    rolling_origin_offered(values, origins, cfg, &[])
}

/// As [`rolling_origin`], with LSTM forecasts made outside the engine:
/// `lstm[i]`, when present, is the forecast made from rows `..=i` (the caller
/// must not use later rows for it) and is offered right after row `i`.
pub fn rolling_origin_offered(
    values: &[Option<f64>],
    origins: Origins,
    cfg: EngineConfig,
    lstm: &[Option<Vec<f64>>],
) -> Result<Vec<OriginForecast>, ForecastError> {
    let list = origins.list(values.len())?;
    let mut engine = SeriesForecaster::new(EngineConfig {
        horizon: origins.horizon,
        ..cfg
    })?;
    let mut out = Vec::with_capacity(list.len());
    let mut next = list.iter().copied().peekable();
    for (i, v) in values.iter().enumerate() {
        engine.observe(*v);
        if let Some(Some(f)) = lstm.get(i) {
            engine.offer(super::ModelSpec::Lstm, f.clone());
        }
        if next.peek() == Some(&i) {
            next.next();
            let f = engine.forecast().map_err(|e| match e {
                ForecastError::TooShort { have, need } => ForecastError::BadRequest(format!(
                    "at origin {i}: {have} usable values, at least {need} needed"
                )),
                other => other,
            })?;
            out.push(OriginForecast {
                origin: i,
                models: f.models,
                steps: f.steps,
            });
        }
        if next.peek().is_none() {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::{Family, ModelSpec};

    #[test]
    fn origins_follow_the_protocol() {
        let o = Origins {
            horizon: 3,
            every: 2,
            min_train: 4,
        };
        // len 10: last row 9; origins 3,5 (5+3=8<=9), 7 would need row 10.
        assert_eq!(o.list(10).unwrap(), vec![3, 5]);
        assert_eq!(o.list(11).unwrap(), vec![3, 5, 7]);
        assert!(matches!(o.list(6), Err(ForecastError::TooShort { .. })));
    }

    #[test]
    fn forecasts_never_depend_on_the_future() {
        let base: Vec<Option<f64>> = (0..600)
            .map(|t| Some(10.0 + (t as f64 / 7.0).sin() * 3.0 + (t % 5) as f64))
            .collect();
        let origins = Origins {
            horizon: 6,
            every: 6,
            min_train: 200,
        };
        let cfg = EngineConfig::for_step(6, 300, Family::Auto);
        let a = rolling_origin(&base, origins, cfg.clone()).unwrap();
        // Rewrite everything after row 400: forecasts from origins <= 400 must not move.
        let mut changed = base.clone();
        for v in changed.iter_mut().skip(401) {
            *v = Some(1e6);
        }
        let b = rolling_origin(&changed, origins, cfg).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            if x.origin <= 400 {
                assert_eq!(x, y, "origin {}", x.origin);
            }
        }
        assert!(
            a.iter().zip(&b).any(|(x, y)| x != y),
            "later origins do see the change"
        );
    }

    #[test]
    fn gaps_are_tolerated() {
        let values: Vec<Option<f64>> = (0..100)
            .map(|t| if t % 7 == 0 { None } else { Some(t as f64) })
            .collect();
        let out = rolling_origin(
            &values,
            Origins {
                horizon: 2,
                every: 10,
                min_train: 20,
            },
            EngineConfig::for_step(2, 300, Family::Auto),
        )
        .unwrap();
        assert_eq!(out.first().unwrap().origin, 19);
        assert!(
            out.iter()
                .all(|o| o.steps.iter().all(|s| s.p50.is_finite()))
        );
    }

    #[test]
    fn an_all_missing_series_is_a_clear_error() {
        let values = vec![None; 50];
        let err = rolling_origin(
            &values,
            Origins {
                horizon: 2,
                every: 1,
                min_train: 10,
            },
            EngineConfig::for_step(2, 300, Family::Snaive),
        )
        .unwrap_err();
        assert!(err.to_string().contains("at origin 9"), "{err}");
        let _ = ModelSpec::Naive;
    }
}
