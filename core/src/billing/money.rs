//! Currencies and rounding to what can actually be charged.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("currency must be a three-letter ISO 4217 code such as usd or eur (got {0:?})")]
pub struct CurrencyError(pub String);

/// An ISO 4217 code, lower case as Stripe spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Currencies without minor units (Stripe's zero-decimal list).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

impl Currency {
    pub const USD: Currency = Currency(*b"usd");

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("usd")
    }

    /// Digits after the decimal point an invoice carries.
    pub fn minor_digits(&self) -> u32 {
        if ZERO_DECIMAL.contains(&self.as_str()) {
            0
        } else {
            2
        }
    }

    /// An amount in the smallest unit (cents), as Stripe takes it. `None` if
    /// it does not fit.
    pub fn to_minor_units(&self, amount: Decimal) -> Option<i64> {
        let scaled = round_money(amount, *self) * Decimal::from(10i64.pow(self.minor_digits()));
        i64::try_from(scaled.trunc()).ok()
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(CurrencyError(s.chars().take(12).collect()));
        }
        Ok(Currency([
            b[0].to_ascii_lowercase(),
            b[1].to_ascii_lowercase(),
            b[2].to_ascii_lowercase(),
        ]))
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rounds to the currency's minor unit, half away from zero (commercial rounding).
pub fn round_money(amount: Decimal, currency: Currency) -> Decimal {
    amount.round_dp_with_strategy(
        currency.minor_digits(),
        RoundingStrategy::MidpointAwayFromZero,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn codes_are_three_letters_and_lower_cased() {
        assert_eq!("USD".parse::<Currency>().unwrap(), Currency::USD);
        assert_eq!("eur".parse::<Currency>().unwrap().as_str(), "eur");
        assert!("us".parse::<Currency>().is_err());
        assert!("us1".parse::<Currency>().is_err());
        assert!("euro".parse::<Currency>().is_err());
    }

    #[test]
    fn rounding_is_commercial_and_per_currency() {
        assert_eq!(round_money(d("1.005"), Currency::USD), d("1.01"));
        assert_eq!(round_money(d("-1.005"), Currency::USD), d("-1.01"));
        assert_eq!(round_money(d("1.0049"), Currency::USD), d("1.00"));
        let jpy: Currency = "jpy".parse().unwrap();
        assert_eq!(round_money(d("150.5"), jpy), d("151"));
        assert_eq!(Currency::USD.to_minor_units(d("12.345")), Some(1235));
        assert_eq!(jpy.to_minor_units(d("150.4")), Some(150));
    }
}
