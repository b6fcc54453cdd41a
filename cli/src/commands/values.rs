//! Parsers of the numeric flags. Each states the range its flag allows, so that a value out of
//! range, negative ones included, is refused by clap with one message naming the flag, the value
//! and that range: `invalid value '-1' for '--temperature <TEMPERATURE>': must be a number ≥ 0`.
//! (The commands let clap take `-1` for a value rather than a flag: `allow_negative_numbers`.)

use std::fmt::Display;
use std::str::FromStr;

/// A whole number from `min` on: `--n`, `--steps`, `--seed`, ….
pub(crate) fn at_least<T>(min: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |text| whole(text, min, None)
}

/// A whole number from `min` to `max`: `--levels`.
pub(crate) fn between<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |text| whole(text, min, Some(max))
}

fn whole<T>(text: &str, min: T, max: Option<T>) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    let range = match max {
        Some(max) => format!("must be a whole number from {min} to {max}"),
        None => format!("must be a whole number ≥ {min}"),
    };
    match text.parse::<T>() {
        Ok(value) if value >= min && max.is_none_or(|max| value <= max) => Ok(value),
        // All digits but not a `T`: too large for it.
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("{range}, and this one is too large"))
        }
        _ => Err(range),
    }
}

/// A finite number of at least 0: `--temperature`.
pub(crate) fn non_negative<T>(text: &str) -> Result<T, String>
where
    T: FromStr + Into<f64> + Copy,
{
    real(text, |value| value >= 0.0, "must be a number ≥ 0")
}

/// A finite number above 0: `--lr`.
pub(crate) fn positive<T>(text: &str) -> Result<T, String>
where
    T: FromStr + Into<f64> + Copy,
{
    real(text, |value| value > 0.0, "must be a number > 0")
}

/// A number in `[0, 1)`: `--ema`.
pub(crate) fn fraction(text: &str) -> Result<f64, String> {
    real(
        text,
        |value| (0.0..1.0).contains(&value),
        "must be a number ≥ 0 and < 1",
    )
}

fn real<T>(text: &str, allowed: impl Fn(f64) -> bool, range: &str) -> Result<T, String>
where
    T: FromStr + Into<f64> + Copy,
{
    match text.parse::<T>() {
        Ok(value) if value.into().is_finite() && allowed(value.into()) => Ok(value),
        _ => Err(range.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_in_range_pass_and_others_name_the_range() {
        let n = at_least(1usize);
        assert_eq!(n("16"), Ok(16));
        for bad in ["0", "-3", "1.5", "abc", ""] {
            assert_eq!(n(bad), Err("must be a whole number ≥ 1".into()), "{bad}");
        }
        assert_eq!(
            n("99999999999999999999999"),
            Err("must be a whole number ≥ 1, and this one is too large".into())
        );
        let levels = between(2usize, 256);
        assert_eq!(levels("256"), Ok(256));
        assert_eq!(
            levels("257"),
            Err("must be a whole number from 2 to 256".into())
        );
    }

    #[test]
    fn real_numbers_must_be_finite_and_in_range() {
        assert_eq!(non_negative::<f32>("0"), Ok(0.0));
        assert_eq!(positive::<f64>("3e-3"), Ok(3e-3));
        for bad in ["-1", "nan", "inf", "1e40", "x"] {
            assert_eq!(
                non_negative::<f32>(bad),
                Err("must be a number ≥ 0".into()),
                "{bad}"
            );
        }
        assert_eq!(positive::<f64>("0"), Err("must be a number > 0".into()));
        assert_eq!(fraction("0.999"), Ok(0.999));
        for bad in ["1", "-0.1", "nan"] {
            assert_eq!(fraction(bad), Err("must be a number ≥ 0 and < 1".into()));
        }
    }
}
