//! Cycle rules: cron expressions evaluated in UTC.
//!
//! The `cron` crate (0.17) expects 6 or 7 fields: seconds, minutes, hours, day of month,
//! month, day of week and an optional year, or a shorthand such as `@daily`. The
//! common 5-field form (minutes first) is accepted and normalised by prepending a `0`
//! seconds field. `cron` numbers the days of the week 1 (Sunday) to 7 (Saturday), while
//! Unix cron numbers them 0 (Sunday) to 6. A 5-field rule with a numeric day of week is
//! therefore rejected rather than shifted by a day. Names such as `Mon-Fri` work in both.

use std::str::FromStr;

use chrono::{DateTime, Timelike, Utc};

/// An invalid cycle rule, with the expression and what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid cron expression {expression:?}: {message}")]
pub struct CronError {
    /// The expression, cut by [`crate::error::shorten`] so that messages stay short.
    pub expression: String,
    pub message: String,
    /// The rule names a time zone (`CRON_TZ=`, `TZ=`), which is not supported.
    pub names_time_zone: bool,
}

/// A parsed cycle rule. Cycle times are the rule's fire times in UTC.
#[derive(Debug, Clone)]
pub struct CycleRule {
    /// The expression as given, before normalisation.
    expression: String,
    schedule: cron::Schedule,
}

impl PartialEq for CycleRule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl CycleRule {
    /// Parses a 5-, 6- or 7-field cron expression or an `@` shorthand.
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let error = |message: String| CronError {
            expression: crate::error::shorten(expression),
            message,
            names_time_zone: false,
        };
        let trimmed = expression.trim();
        let first = trimmed.split_whitespace().next().unwrap_or_default();
        if first.starts_with("CRON_TZ=") || first.starts_with("TZ=") {
            return Err(CronError {
                names_time_zone: true,
                ..error(
                    "time zone prefixes are not supported; cycle rules are always in UTC".into(),
                )
            });
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let normalised = match fields.len() {
            _ if trimmed.starts_with('@') => trimmed.to_string(),
            5 => {
                if fields[4].chars().any(|c| c.is_ascii_digit()) {
                    return Err(error(format!(
                        "numeric day of week {:?} in a 5-field rule is ambiguous (Unix cron \
                         counts Sunday as 0, the 6-field form as 1); use names such as Mon-Fri",
                        fields[4]
                    )));
                }
                format!("0 {}", fields.join(" "))
            }
            6 | 7 => fields.join(" "),
            count => {
                return Err(error(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), 6 with \
                     seconds first, or 7 with a trailing year; found {count}"
                )));
            }
        };
        let schedule =
            cron::Schedule::from_str(&normalised).map_err(|err| error(err.to_string()))?;
        Ok(Self {
            expression: expression.to_string(),
            schedule,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// First cycle time strictly after `time`.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // `cron` works in whole seconds and may return the second `time` falls in.
        self.schedule.after(&time).find(|cycle| *cycle > time)
    }

    /// Latest cycle time at or before `time`.
    pub fn latest_at_or_before(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole_second = time.with_nanosecond(0).unwrap_or(time);
        if self.schedule.includes(whole_second) {
            return Some(whole_second);
        }
        self.schedule.after(&whole_second).next_back()
    }

    /// Cycle times in `after < t <= until`, oldest first, at most `limit` of them.
    pub fn cycles_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        self.schedule
            .after(&after)
            .skip_while(|time| *time <= after)
            .take_while(|time| *time <= until)
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(1996, 1, day, hour, minute, 0).unwrap()
    }

    #[test]
    fn six_field_rule_fires_at_synoptic_hours() {
        let rule = CycleRule::parse("0 0 0,6,12,18 * * *").unwrap();
        assert_eq!(rule.next_after(at(5, 0, 0)), Some(at(5, 6, 0)));
        assert_eq!(rule.next_after(at(5, 5, 59)), Some(at(5, 6, 0)));
        let cycles = rule.cycles_between(at(5, 0, 0), at(6, 0, 0), 100);
        assert_eq!(
            cycles,
            vec![at(5, 6, 0), at(5, 12, 0), at(5, 18, 0), at(6, 0, 0)]
        );
    }

    #[test]
    fn five_field_rule_equals_six_field() {
        let five = CycleRule::parse("0 */6 * * *").unwrap();
        let six = CycleRule::parse("0 0 */6 * * *").unwrap();
        let from = at(5, 1, 0);
        assert_eq!(
            five.cycles_between(from, at(7, 0, 0), 50),
            six.cycles_between(from, at(7, 0, 0), 50)
        );
        assert_eq!(five.next_after(from), Some(at(5, 6, 0)));
    }

    #[test]
    fn five_field_weekday_names_are_accepted() {
        // 1996-01-05 was a Friday, so the next weekday 00 UTC cycle is Monday the 8th.
        let rule = CycleRule::parse("0 0 * * Mon-Fri").unwrap();
        assert_eq!(rule.next_after(at(5, 0, 0)), Some(at(8, 0, 0)));
    }

    #[test]
    fn latest_cycle_at_or_before() {
        let rule = CycleRule::parse("0 0 */6 * * *").unwrap();
        assert_eq!(rule.latest_at_or_before(at(5, 6, 0)), Some(at(5, 6, 0)));
        assert_eq!(rule.latest_at_or_before(at(5, 11, 59)), Some(at(5, 6, 0)));
        let fractional = at(5, 6, 0) + chrono::Duration::milliseconds(500);
        assert_eq!(rule.latest_at_or_before(fractional), Some(at(5, 6, 0)));
    }

    #[test]
    fn invalid_rules_are_rejected() {
        let cases = [
            ("", "found 0"),
            ("0 0 * *", "found 4"),
            ("0 0 0 * * * * *", "found 8"),
            ("0 61 * * * *", ""),
            ("banana * * * *", ""),
            ("0 0 * * 1-5", "numeric day of week"),
            ("CRON_TZ=Europe/Berlin 0 0 * * *", "always in UTC"),
            ("TZ=UTC 0 0 * * *", "always in UTC"),
        ];
        for (expression, expected) in cases {
            let err = CycleRule::parse(expression).unwrap_err();
            assert_eq!(err.expression, expression);
            assert!(err.message.contains(expected), "{expression:?}: {err}");
            let names_time_zone = expected == "always in UTC";
            assert_eq!(err.names_time_zone, names_time_zone, "{expression:?}");
        }
    }
}
