//! Usage and forecasts: one series (workload and metric) at a time, what was
//! measured with the forecast after it and its p10–p90 interval, and the
//! steps that deviated from the workload's profile.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use leptos::prelude::*;
use leptos_chartistry::{
    AspectRatio, AxisMarker, Chart, IntoInner, Legend, Line, Series, TickLabels, Tooltip,
    XGridLine, XGuideLine, YGridLine,
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{RequireLogin, listing, when};
use crate::api::{
    Allocation, AnomalyInfo, Decision, Method, MetricForecast, SeriesInfo, SeriesWindow,
    WorkloadForecast, call,
};

/// Series offered in the picker (the API pages further).
const SERIES_SHOWN: u32 = 500;
/// Workloads under allocation settings read for their sizing (the API's most
/// a page; a workload past them is charted without its capacity).
const SETTINGS_READ: u32 = 200;
/// Decisions asked for at a time (the API's most).
const DECISION_PAGE: usize = 1000;

#[component]
pub fn UsagePage() -> impl IntoView {
    view! {
        <RequireLogin>
            <Usage />
        </RequireLogin>
    }
}

/// How much of a series the chart shows, and which forecast follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// The last 7 days hour by hour, then the planning forecast (7 days).
    Week,
    /// The last 6 hours in 5-minute steps, then the allocation forecast (1 hour).
    Hours,
}

impl Span {
    fn parse(s: &str) -> Self {
        if s == "hours" {
            Span::Hours
        } else {
            Span::Week
        }
    }

    fn step_seconds(self) -> i64 {
        match self {
            Span::Week => 3600,
            Span::Hours => 300,
        }
    }

    fn history(self) -> Duration {
        match self {
            Span::Week => Duration::days(7),
            Span::Hours => Duration::hours(6),
        }
    }

    fn horizon(self) -> &'static str {
        match self {
            Span::Week => "planning",
            Span::Hours => "allocation",
        }
    }
}

/// One point of the chart: what was measured, or what was forecast (NaN
/// where a line has no value, which the chart leaves as a gap).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    t: DateTime<Utc>,
    measured: f64,
    p10: f64,
    p50: f64,
    p90: f64,
    /// Demand the fleet the controller decided serves (instances × units per
    /// instance), from the newest decision at or before `t` (for forecast
    /// steps: the newest decision).
    capacity: f64,
}

/// The chart's rows: measured means, then the forecast's steps after the last
/// of them, in time order. The forecast starts at the last measured point so
/// the lines join.
pub(crate) fn rows(
    measured: &[(DateTime<Utc>, f64)],
    forecast: Option<&MetricForecast>,
    capacity: &[(DateTime<Utc>, f64)],
) -> Vec<Row> {
    // Capacity in force at `t`: the newest decision at or before it
    // (`capacity` is oldest first).
    let in_force = |t: DateTime<Utc>| {
        let i = capacity.partition_point(|&(at, _)| at <= t);
        i.checked_sub(1).map_or(f64::NAN, |i| capacity[i].1)
    };
    let mut out: Vec<Row> = measured
        .iter()
        .map(|&(t, v)| Row {
            t,
            measured: v,
            p10: f64::NAN,
            p50: f64::NAN,
            p90: f64::NAN,
            capacity: in_force(t),
        })
        .collect();
    let Some(f) = forecast else {
        return out;
    };
    let last = out.last().map(|r| r.t);
    if let Some(r) = out.last_mut() {
        (r.p10, r.p50, r.p90) = (r.measured, r.measured, r.measured);
    }
    for s in &f.steps {
        let Ok(t) = s.t.parse::<DateTime<Utc>>() else {
            continue;
        };
        if last.is_some_and(|l| t <= l) {
            continue;
        }
        out.push(Row {
            t,
            measured: f64::NAN,
            p10: s.p10,
            p50: s.p50,
            p90: s.p90,
            // The fleet decided last, against what is coming.
            capacity: in_force(t),
        });
    }
    out
}

#[component]
fn Usage() -> impl IntoView {
    let series = RwSignal::new(None::<Vec<SeriesInfo>>);
    let chosen = RwSignal::new(None::<(String, String)>);
    let span = RwSignal::new(Span::Week);
    let data = RwSignal::new(Vec::<Row>::new());
    let forecast = RwSignal::new(None::<MetricForecast>);
    let anomalies = RwSignal::new(Vec::<AnomalyInfo>::new());
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Workloads under allocation settings: (metric, units per instance).
    let sized = RwSignal::new(HashMap::<String, (String, f64)>::new());

    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            let path = format!("/allocations?limit={SETTINGS_READ}");
            if let Ok(list) = call::<Vec<Allocation>>(Method::Get, &path, None, None).await {
                sized.set(
                    list.into_iter()
                        .map(|a| (a.workload, (a.metric, a.units_per_instance)))
                        .collect(),
                );
            }
            let path = format!("/series?limit={SERIES_SHOWN}");
            match call::<Vec<SeriesInfo>>(Method::Get, &path, None, None).await {
                Ok(list) => {
                    if let Some(first) = list.first() {
                        chosen.set(Some((first.workload.clone(), first.metric.clone())));
                    }
                    series.set(Some(list));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    });

    // Reads the chosen series again whenever the choice or the span changes;
    // an answer to an earlier choice that arrives late is dropped.
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        let (Some((workload, metric)), span) = (chosen.get(), span.get()) else {
            return;
        };
        loading.set(true);
        asked.update_value(|n| *n += 1);
        let this = asked.get_value();
        leptos::task::spawn_local(async move {
            let now = Utc::now();
            let step = span.step_seconds();
            // Whole steps, so every window is complete but the last.
            let to = now.timestamp() - now.timestamp().rem_euclid(step) + step;
            let from = to - span.history().num_seconds();
            let w = utf8_percent_encode(&workload, NON_ALPHANUMERIC).to_string();
            let m = utf8_percent_encode(&metric, NON_ALPHANUMERIC).to_string();
            let path =
                format!("/metrics/query?workload={w}&metric={m}&from={from}&to={to}&step={step}");
            let measured = match call::<SeriesWindow>(Method::Get, &path, None, None).await {
                Ok(s) => s
                    .points
                    .iter()
                    .filter_map(|p| Some((p.t.parse::<DateTime<Utc>>().ok()?, p.mean)))
                    .collect::<Vec<_>>(),
                Err(e) => {
                    error.set(Some(e));
                    Vec::new()
                }
            };
            // Asked only where the catalogue lists one (no forecast is a 404).
            let forecast_stored = series.with_untracked(|list| {
                list.iter().flatten().any(|s| {
                    s.workload == workload
                        && s.metric == metric
                        && s.forecasts.iter().any(|h| h == span.horizon())
                })
            });
            let f = if forecast_stored {
                let path = format!(
                    "/workloads/{w}/forecast?metric={m}&horizon={}",
                    span.horizon()
                );
                call::<WorkloadForecast>(Method::Get, &path, None, None)
                    .await
                    .ok()
                    .and_then(|f| f.forecasts.into_iter().next())
            } else {
                None
            };
            // What the controller sized the workload for, when it decides it
            // from this metric: one decision a tick (five minutes).
            let units = sized.with_untracked(|m| {
                m.get(&workload)
                    .filter(|(on, _)| *on == metric)
                    .map(|&(_, u)| u)
            });
            let mut capacity = Vec::new();
            if let Some(units) = units {
                // The window's decisions, a page at a time (a week is two).
                let mut cursor = String::new();
                loop {
                    let path = format!(
                        "/allocation-decisions?workload={w}&since={from}&limit={DECISION_PAGE}{cursor}"
                    );
                    let Ok(page) = call::<Vec<Decision>>(Method::Get, &path, None, None).await
                    else {
                        break;
                    };
                    capacity.extend(page.iter().filter_map(|d| {
                        let at = d.decided_at.parse::<DateTime<Utc>>().ok()?;
                        Some((at, f64::from(d.after) * units))
                    }));
                    match page.last() {
                        Some(last) if page.len() == DECISION_PAGE => cursor = last.page_after(),
                        _ => break,
                    }
                }
                capacity.sort_by_key(|&(at, _)| at);
            }
            let path = format!("/anomalies?workload={w}&limit=20");
            let found = call::<Vec<AnomalyInfo>>(Method::Get, &path, None, None)
                .await
                .map(|list| list.into_iter().filter(|a| a.metric == metric).collect())
                .unwrap_or_default();
            if asked.get_value() != this {
                return;
            }
            data.set(rows(&measured, f.as_ref(), &capacity));
            forecast.set(f);
            anomalies.set(found);
            loading.set(false);
        });
    });

    let pick = move |ev: leptos::ev::Event| {
        let v = event_target_value(&ev);
        if let Some((w, m)) = v.split_once('\u{1f}') {
            chosen.set(Some((w.to_owned(), m.to_owned())));
        }
    };
    let chart_series = Series::new(|r: &Row| r.t)
        .line(Line::new(|r: &Row| r.measured).with_name("measured (mean)"))
        .line(Line::new(|r: &Row| r.p50).with_name("forecast p50"))
        .line(Line::new(|r: &Row| r.p10).with_name("p10"))
        .line(Line::new(|r: &Row| r.p90).with_name("p90"))
        .line(Line::new(|r: &Row| r.capacity).with_name("capacity decided"));

    view! {
        <section class="card" data-testid="usage">
            <h2>"Usage and forecasts"</h2>
            {listing(series, || view! {
                    <p class="notice" data-testid="no-series">
                        "No series reported in the last 30 days. Send metrics with an API key "
                        "(" <code>"POST /api/v1/metrics"</code> ") or run the agent."
                    </p>
                }.into_any(), move |list| view! {
                    <form class="row" on:submit=|ev| ev.prevent_default()>
                        <select name="series" aria-label="series" on:change=pick data-testid="series-picker">
                            {list.into_iter().map(|s| {
                                let value = format!("{}\u{1f}{}", s.workload, s.metric);
                                view! { <option value=value>{format!("{} · {}", s.workload, s.metric)}</option> }
                            }).collect_view()}
                        </select>
                        <select name="span" aria-label="span" data-testid="span-picker"
                            on:change=move |ev| span.set(Span::parse(&event_target_value(&ev)))>
                            <option value="week">"7 days hourly, then the 7-day forecast"</option>
                            <option value="hours">"6 hours in 5 minutes, then the next hour"</option>
                        </select>
                    </form>
                }.into_any())}
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="error">{e}</p> })}
            {move || (chosen.with(Option::is_some)).then(|| view! {
                <div class="chart" data-testid="chart" data-points=move || data.with(|d| d.iter().filter(|r| !r.measured.is_nan()).count().to_string())>
                    <Chart
                        aspect_ratio=AspectRatio::from_env_width(320.0)
                        left=TickLabels::aligned_floats()
                        bottom=TickLabels::timestamps()
                        right=Legend::end()
                        inner=[
                            AxisMarker::left_edge().into_inner(),
                            AxisMarker::bottom_edge().into_inner(),
                            XGridLine::default().into_inner(),
                            YGridLine::default().into_inner(),
                            XGuideLine::over_data().into_inner(),
                        ]
                        tooltip=Tooltip::left_cursor()
                        series=chart_series.clone()
                        data=data
                    />
                </div>
                <p class="notice" data-testid="forecast-note">{move || match forecast.get() {
                    _ if loading.get() => "Loading…".to_owned(),
                    None => "No forecast of this series yet: the forecast job makes one once enough \
                        of it has been seen.".to_owned(),
                    Some(f) => format!("Forecast made {} from data up to {} by {}; steps of {} s.",
                        when(&f.made_at), when(&f.origin), f.model_version, f.step_seconds),
                }}</p>
            })}
        </section>
        <section class="card">
            <h2>"Deviations from the workload's profile"</h2>
            {move || anomalies.with(Vec::is_empty).then(|| view! {
                <p class="notice">"None in the last 7 days."</p>
            })}
            <table data-testid="anomalies">
                <tbody>
                    <For each=move || anomalies.get() key=|a| (a.t.clone(), a.metric.clone()) let:a>
                        <tr>
                            <td><time datetime=a.t.clone()>{when(&a.t)}</time></td>
                            <td>{format!("{:.3} where {:.3} was expected ({:.1} spreads)", a.value, a.expected, a.score)}</td>
                            <td>{a.reason.clone()}</td>
                        </tr>
                    </For>
                </tbody>
            </table>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ForecastStep;

    fn at(h: u32) -> DateTime<Utc> {
        format!("2026-12-06T{h:02}:00:00Z").parse().unwrap()
    }

    #[test]
    fn the_forecast_follows_the_last_measured_point() {
        let measured = [(at(1), 2.0), (at(2), 4.0)];
        let step = |h: u32, p50: f64| ForecastStep {
            t: at(h).to_rfc3339(),
            p10: p50 - 1.0,
            p50,
            p90: p50 + 1.0,
        };
        let f = MetricForecast {
            metric: "cpu".into(),
            horizon: "planning".into(),
            step_seconds: 3600,
            origin: at(1).to_rfc3339(),
            made_at: at(2).to_rfc3339(),
            model_version: "v1".into(),
            // A step at or before the last measured point is not drawn twice.
            steps: vec![step(2, 9.0), step(3, 5.0), step(4, 6.0)],
        };
        let r = rows(&measured, Some(&f), &[]);
        assert_eq!(r.len(), 4);
        assert!(r[0].p50.is_nan() && r[0].measured == 2.0);
        assert_eq!(
            (r[1].measured, r[1].p10, r[1].p50, r[1].p90),
            (4.0, 4.0, 4.0, 4.0)
        );
        assert!(r[2].measured.is_nan());
        assert_eq!(
            (r[2].t, r[2].p10, r[2].p50, r[2].p90),
            (at(3), 4.0, 5.0, 6.0)
        );
        assert_eq!(r[3].t, at(4));
        assert_eq!(rows(&measured, None, &[]).len(), 2);
    }

    #[test]
    fn capacity_is_the_newest_decision_at_or_before_each_point() {
        let measured = [(at(1), 2.0), (at(2), 4.0), (at(3), 3.0)];
        let decided = [(at(1) + Duration::minutes(30), 10.0), (at(2), 20.0)];
        let r = rows(&measured, None, &decided);
        assert!(r[0].capacity.is_nan(), "nothing decided yet");
        assert_eq!((r[1].capacity, r[2].capacity), (20.0, 20.0));
        let f = MetricForecast {
            metric: "cpu".into(),
            horizon: "allocation".into(),
            step_seconds: 3600,
            origin: at(3).to_rfc3339(),
            made_at: at(3).to_rfc3339(),
            model_version: "v1".into(),
            steps: vec![ForecastStep {
                t: at(4).to_rfc3339(),
                p10: 1.0,
                p50: 2.0,
                p90: 3.0,
            }],
        };
        let r = rows(&measured, Some(&f), &decided);
        assert_eq!(
            r[3].capacity, 20.0,
            "the last fleet decided, against the forecast"
        );
    }
}
