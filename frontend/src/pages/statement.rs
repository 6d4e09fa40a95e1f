//! A month's statement on the Billing page: each priced line, the
//! adjustments, the total, and the usage no rule prices. The current month
//! is rated up to now; earlier ones are what was charged.

use chrono::{DateTime, Datelike, Utc};
use leptos::prelude::*;

use super::billing::money;
use super::{ErrorNote, when};
use crate::api::{Method, Statement, call};

/// Months offered: this one and the twelve before.
const MONTHS: u32 = 13;

/// `n` month labels (`YYYY-MM`), the month of `now` first, then back.
pub fn months_back(now: DateTime<Utc>, n: u32) -> Vec<String> {
    let (mut year, mut month) = (now.year(), now.month());
    (0..n)
        .map(|_| {
            let label = format!("{year:04}-{month:02}");
            (year, month) = if month == 1 {
                (year - 1, 12)
            } else {
                (year, month - 1)
            };
            label
        })
        .collect()
}

/// The adjustments that apply (non-zero), as (what, signed amount): credits
/// and discounts are taken off the total.
pub fn adjustments(s: &Statement) -> Vec<(&'static str, String)> {
    let nonzero = |v: &str| {
        v.trim_start_matches('-')
            .chars()
            .any(|c| c.is_ascii_digit() && c != '0')
    };
    let off = |v: &str| match v.strip_prefix('-') {
        Some(abs) => abs.to_owned(),
        None => format!("-{v}"),
    };
    [
        ("Tier premium", s.tier_premium.clone()),
        ("Demand adjustment", s.demand_adjustment.clone()),
        ("SLA credit", off(&s.sla_credit)),
        ("Profile discount", off(&s.profile_discount)),
    ]
    .into_iter()
    .filter(|(_, v)| nonzero(v))
    .collect()
}

#[component]
pub fn StatementCard() -> impl IntoView {
    let months = months_back(Utc::now(), MONTHS);
    let period = RwSignal::new(months[0].clone());
    let statement = RwSignal::new(None::<Statement>);
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let p = period.get();
        statement.set(None);
        leptos::task::spawn_local(async move {
            let path = format!("/billing/statement?period={p}");
            match call::<Statement>(Method::Get, &path, None, None).await {
                // A late answer to an earlier choice is dropped.
                Ok(s) if period.get_untracked() == p => {
                    error.set(None);
                    statement.set(Some(s));
                }
                Ok(_) => {}
                Err(e) => error.set(Some(e)),
            }
        });
    });
    view! {
        <section class="card" data-testid="statement">
            <h2>"Statement "
                <select aria-label="month" name="period" on:change=move |ev| period.set(event_target_value(&ev))>
                    {months.into_iter().map(|m| view! { <option value=m.clone()>{m.clone()}</option> }).collect_view()}
                </select>
            </h2>
            <ErrorNote error=error />
            {move || match statement.get() {
                None => view! { <p class="notice">"Loading…"</p> }.into_any(),
                Some(s) => {
                    let cur = s.currency.to_uppercase();
                    let adjustments = adjustments(&s);
                    view! {
                        <p class="notice">{format!("Rated from {} to {}, each hour at the prices of that hour.", when(&s.from), when(&s.to))}</p>
                        {if s.lines.is_empty() {
                            view! { <p class="notice" data-testid="statement-empty">"Nothing priced was used in this period."</p> }.into_any()
                        } else {
                            view! {
                                <table data-testid="statement-lines">
                                    <thead><tr><th>"What"</th><th>"Quantity"</th><th>"Unit price"</th><th>"Amount"</th></tr></thead>
                                    <tbody>
                                        {s.lines.into_iter().map(|l| view! {
                                            <tr>
                                                <td><code>{l.dimension}</code></td>
                                                <td>{format!("{} {}", l.quantity, l.unit)}</td>
                                                <td>{format!("{} {}", l.unit_price, cur)}</td>
                                                <td>{money(&l.amount)}</td>
                                            </tr>
                                        }).collect_view()}
                                        {adjustments.into_iter().map(|(what, v)| view! {
                                            <tr><td colspan="3">{what}</td><td>{money(&v)}</td></tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                        <p class="figure">"Total " <span data-testid="statement-total">{money(&s.total)}</span> " " {cur}</p>
                        {(!s.unpriced.is_empty()).then(|| view! {
                            <p class="notice" data-testid="unpriced">"Used, with no price set (not charged): "
                                {s.unpriced.iter().map(|u| format!("{} {}", u.dimension, u.quantity)).collect::<Vec<_>>().join(", ")}
                            </p>
                        })}
                    }.into_any()
                }
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_go_back_across_the_new_year() {
        let now = "2026-02-10T12:00:00Z".parse().unwrap();
        assert_eq!(
            months_back(now, 4),
            ["2026-02", "2026-01", "2025-12", "2025-11"]
        );
    }

    fn statement(premium: &str, demand: &str, credit: &str, discount: &str) -> Statement {
        Statement {
            period: "2026-11".into(),
            from: "2026-11-01T00:00:00Z".into(),
            to: "2026-12-01T00:00:00Z".into(),
            currency: "usd".into(),
            lines: Vec::new(),
            tier_premium: premium.into(),
            demand_adjustment: demand.into(),
            sla_credit: credit.into(),
            profile_discount: discount.into(),
            total: "0".into(),
            unpriced: Vec::new(),
        }
    }

    #[test]
    fn only_adjustments_that_apply_are_shown_credits_taken_off() {
        assert!(adjustments(&statement("0", "0.00", "0", "-0.00")).is_empty());
        assert_eq!(
            adjustments(&statement("1.50", "-0.20", "2.00", "0.30")),
            [
                ("Tier premium", "1.50".to_owned()),
                ("Demand adjustment", "-0.20".to_owned()),
                ("SLA credit", "-2.00".to_owned()),
                ("Profile discount", "-0.30".to_owned()),
            ]
        );
    }
}
