//! CF conventions shared by the netCDF reader and writer: time units, missing values
//! and packed data.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

/// The unit and epoch of a CF time axis such as `hours since 1996-01-05 00:00:00`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeUnits {
    /// Length of one unit in seconds.
    pub seconds_per_unit: f64,
    pub epoch: DateTime<Utc>,
}

impl TimeUnits {
    /// Parses `<unit> since <date>[ <time>][ <zone>]`.
    ///
    /// Units: seconds, minutes, hours or days (singular and common abbreviations).
    /// Dates: `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS]`,
    /// and by `Z`, `UTC` or a zero offset. Other time zones are rejected because
    /// every gridcast time is UTC.
    pub fn parse(units: &str) -> Result<TimeUnits, String> {
        let (unit, since) = units.trim().split_once(" since ").ok_or_else(|| {
            format!("time units {units:?} are not of the form `hours since YYYY-MM-DD HH:MM:SS`")
        })?;
        let seconds_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
            "seconds" | "second" | "secs" | "sec" | "s" => 1.0,
            "minutes" | "minute" | "mins" | "min" => 60.0,
            "hours" | "hour" | "hrs" | "hr" | "h" => 3600.0,
            "days" | "day" | "d" => 86400.0,
            other => {
                return Err(format!(
                    "time unit {other:?} in {units:?} is not supported; use seconds, \
                     minutes, hours or days"
                ));
            }
        };
        let epoch = parse_utc_datetime(since.trim())
            .ok_or_else(|| format!("reference date {since:?} in time units {units:?} is not a UTC date such as 1996-01-05 00:00:00"))?;
        Ok(TimeUnits {
            seconds_per_unit,
            epoch,
        })
    }

    /// Converts an offset in these units to a time, rounded to the nearest second.
    pub fn to_datetime(&self, offset: f64) -> Option<DateTime<Utc>> {
        let seconds = offset * self.seconds_per_unit;
        if !seconds.is_finite() || seconds.abs() > 1e14 {
            return None;
        }
        let delta = TimeDelta::try_seconds(seconds.round() as i64)?;
        self.epoch.checked_add_signed(delta)
    }
}

fn parse_utc_datetime(text: &str) -> Option<DateTime<Utc>> {
    let mut text = text.trim();
    for suffix in ["UTC", "Z", "+00:00", "+0000", "+00", "0:00"] {
        if let Some(stripped) = text.strip_suffix(suffix) {
            // `0:00` alone is an old-style zone only after a full time (`00:00:00 0:00`).
            if suffix == "0:00" && !stripped.ends_with(' ') {
                continue;
            }
            text = stripped.trim_end();
            break;
        }
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, t.trim()),
        None => (text, ""),
    };
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let naive = if time.is_empty() {
        date.and_hms_opt(0, 0, 0)?
    } else {
        ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"].iter().find_map(|f| {
            NaiveDateTime::parse_from_str(&format!("{date} {time}"), &format!("%Y-%m-%d {f}")).ok()
        })?
    };
    Some(naive.and_utc())
}

/// Missing-value and packing attributes of one variable, applied to raw values.
///
/// Masking compares the raw (packed) value, as CF requires: `_FillValue`, every
/// `missing_value`, values outside `valid_min`/`valid_max`/`valid_range`, NaN, and
/// for float variables without `_FillValue` the netCDF default fill. Unmasked values
/// become `raw * scale_factor + add_offset`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Packing {
    pub fill_value: Option<f64>,
    pub missing_values: Vec<f64>,
    pub valid_min: Option<f64>,
    pub valid_max: Option<f64>,
    pub scale_factor: Option<f64>,
    pub add_offset: Option<f64>,
    /// The netCDF default fill of the raw type (NC_FILL_FLOAT or NC_FILL_DOUBLE),
    /// masked when the variable has no `_FillValue`. None for integer types, whose
    /// default fill is a valid value in many packed files.
    pub default_fill: Option<f64>,
}

impl Packing {
    /// Converts one raw value to the physical value, or NaN when it is missing.
    pub fn unpack(&self, raw: f64) -> f32 {
        if raw.is_nan() || self.is_masked(raw) {
            return f32::NAN;
        }
        let scaled = raw * self.scale_factor.unwrap_or(1.0) + self.add_offset.unwrap_or(0.0);
        scaled as f32
    }

    fn is_masked(&self, raw: f64) -> bool {
        match self.fill_value {
            Some(fill) if raw == fill => return true,
            None if self.default_fill == Some(raw) => return true,
            _ => {}
        }
        if self.missing_values.contains(&raw) {
            return true;
        }
        self.valid_min.is_some_and(|min| raw < min) || self.valid_max.is_some_and(|max| raw > max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_units_forms() {
        let cases = [
            ("hours since 1996-01-05 00:00:00", 3600.0),
            ("hours since 1996-01-05T00:00:00Z", 3600.0),
            ("days since 1996-01-05", 86400.0),
            ("seconds since 1996-01-05 00:00", 1.0),
            ("hours since 1996-01-05 00:00:00 UTC", 3600.0),
        ];
        let epoch = Utc.with_ymd_and_hms(1996, 1, 5, 0, 0, 0).unwrap();
        for (text, seconds) in cases {
            let units = TimeUnits::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(units.epoch, epoch, "{text}");
            assert_eq!(units.seconds_per_unit, seconds, "{text}");
        }
        let units = TimeUnits::parse("hours since 1996-01-05 00:00:00").unwrap();
        assert_eq!(
            units.to_datetime(378.0),
            Some(Utc.with_ymd_and_hms(1996, 1, 20, 18, 0, 0).unwrap())
        );
    }

    #[test]
    fn time_units_rejected() {
        for text in [
            "hours",
            "fortnights since 1996-01-05",
            "hours since 1996-13-05",
            "hours since 1996-01-05 00:00:00 +05:00",
        ] {
            assert!(TimeUnits::parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn packing_masks_before_scaling() {
        let packing = Packing {
            fill_value: Some(-32767.0),
            missing_values: vec![-32766.0],
            scale_factor: Some(0.01),
            add_offset: Some(273.15),
            ..Packing::default()
        };
        assert!(packing.unpack(-32767.0).is_nan());
        assert!(packing.unpack(-32766.0).is_nan());
        assert!((packing.unpack(100.0) - 274.15).abs() < 1e-4);
        let fill = f64::from(netcdf3::NC_FILL_F32);
        let float = Packing {
            default_fill: Some(fill),
            ..Packing::default()
        };
        assert!(float.unpack(fill).is_nan());
        assert_eq!(float.unpack(1.5), 1.5);
    }
}
