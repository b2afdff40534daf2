//! Durations as the guide writes them (`5s`, `1m`, `24h`, also `250ms`), and Kubernetes
//! quantities (`100Mi`, `4Gi`, `500m` CPU).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A duration from the YAML; kept in milliseconds, the finest unit the guide's fields need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration {
    /// Length in milliseconds.
    pub millis: u64,
}

impl Duration {
    /// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d`, or several such parts (`1h30m`).
    pub fn parse(text: &str) -> Option<Self> {
        let mut millis: u64 = 0;
        let mut rest = text.trim();
        if rest.is_empty() {
            return None;
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit())?;
            if digits == 0 {
                return None;
            }
            let value: u64 = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return None,
            };
            millis = millis.checked_add(value.checked_mul(unit)?)?;
            rest = &rest[unit_len..];
        }
        Some(Self { millis })
    }

    /// Whole seconds, rounded down (for Envoy fields typed as seconds).
    pub fn whole_seconds(self) -> u64 {
        self.millis / 1_000
    }

    /// Envoy's JSON form of a `google.protobuf.Duration`: `"5s"`, `"0.250s"`.
    pub fn to_envoy(self) -> String {
        if self.millis.is_multiple_of(1_000) {
            format!("{}s", self.millis / 1_000)
        } else {
            format!("{}.{:03}s", self.millis / 1_000, self.millis % 1_000)
        }
    }

    /// A duration of whole seconds.
    pub const fn seconds(seconds: u64) -> Self {
        Self {
            millis: seconds * 1_000,
        }
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
            (1, "ms"),
        ];
        if self.millis == 0 {
            return f.write_str("0s");
        }
        for (size, unit) in units {
            if self.millis.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.millis / size);
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like 5s, 1m or 24h")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).ok_or_else(|| {
                    E::custom(format!(
                        "expected a duration like 5s, 1m or 24h, got {text:?}"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a duration like 5s, 1m or 24h, got {n} (a unit is required)"
                )))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a duration like 5s, 1m or 24h, got {n} (a unit is required)"
                )))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A Kubernetes quantity (`100Mi`, `1Gi`, `1000`, `500m`), kept as thousandths of the unit so
/// CPU millicores stay exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    /// Value ×1000 (bytes ×1000 for memory, millicores for CPU).
    pub milli: u128,
}

impl Quantity {
    /// Parses a plain number or one with a binary (`Ki`..`Ti`), decimal (`k`..`T`) or milli (`m`) suffix.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let multiplier_milli: u128 = match suffix {
            "" => 1_000,
            "m" => 1,
            "k" => 1_000_000,
            "M" => 1_000_000_000,
            "G" => 1_000_000_000_000,
            "T" => 1_000_000_000_000_000,
            "Ki" => 1_000 << 10,
            "Mi" => 1_000 << 20,
            "Gi" => 1_000 << 30,
            "Ti" => 1_000 << 40,
            _ => return None,
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.len() > 3 {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let fraction_thousandths: u128 = format!("{fraction:0<3}").parse().ok()?;
        let milli = whole
            .checked_mul(multiplier_milli)?
            .checked_add(fraction_thousandths * multiplier_milli / 1_000)?;
        Some(Self { milli })
    }

    /// The whole number of units (bytes for memory), rounded down.
    pub fn units(self) -> u128 {
        self.milli / 1_000
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity like 100Mi, 4Gi or 500m")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Quantity, E> {
                Quantity::parse(text).ok_or_else(|| {
                    E::custom(format!(
                        "expected a quantity like 100Mi, 4Gi or 500m, got {text:?}"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Quantity, E> {
                Ok(Quantity {
                    milli: u128::from(n) * 1_000,
                })
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Quantity, E> {
                u64::try_from(n)
                    .map(|n| Quantity {
                        milli: u128::from(n) * 1_000,
                    })
                    .map_err(|_| {
                        E::custom(format!(
                            "expected a quantity like 100Mi, 4Gi or 500m, got {n}"
                        ))
                    })
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_the_guide_writes_them() {
        let cases = [
            ("5s", 5_000),
            ("1m", 60_000),
            ("24h", 86_400_000),
            ("250ms", 250),
            ("1h30m", 5_400_000),
        ];
        for (text, millis) in cases {
            assert_eq!(Duration::parse(text), Some(Duration { millis }), "{text}");
        }
    }

    #[test]
    fn durations_without_a_known_unit_are_rejected() {
        for text in ["", "5", "s", "5x", "1.5s", "-1s", "5 s"] {
            assert_eq!(Duration::parse(text), None, "{text}");
        }
    }

    #[test]
    fn durations_print_in_envoy_and_guide_forms() {
        assert_eq!(Duration::parse("1m").unwrap().to_envoy(), "60s");
        assert_eq!(Duration::parse("250ms").unwrap().to_envoy(), "0.250s");
        assert_eq!(Duration::parse("60m").unwrap().to_string(), "1h");
    }

    #[test]
    fn quantities_parse_binary_decimal_and_milli_suffixes() {
        let cases = [
            ("100Mi", 100 << 20),
            ("4Gi", 4 << 30),
            ("1", 1),
            ("1000", 1000),
            ("2k", 2000),
        ];
        for (text, units) in cases {
            assert_eq!(
                Quantity::parse(text).map(Quantity::units),
                Some(units),
                "{text}"
            );
        }
        assert_eq!(Quantity::parse("500m").map(|q| q.milli), Some(500));
        assert_eq!(Quantity::parse("0.5").map(|q| q.milli), Some(500));
        assert_eq!(Quantity::parse("lots"), None);
    }
}
