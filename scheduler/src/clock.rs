//! Injectable time. The scheduler reads the current UTC time from a [`Clock`] and sleeps
//! with `tokio::time`, so tests drive it with `tokio::time::pause` and `advance`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::time::Instant;

/// Source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at a given UTC time and advances with tokio's clock, optionally
/// faster than real time. Under `tokio::time::pause` it moves only on `advance`.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start_time: DateTime<Utc>,
    start_instant: Instant,
    /// Simulated seconds per second of tokio time.
    speed: f64,
}

impl TokioClock {
    pub fn starting_at(start_time: DateTime<Utc>) -> Self {
        Self::with_speed(start_time, 1.0)
    }

    /// Creates a clock at which `speed` simulated seconds pass per second of tokio time.
    pub fn with_speed(start_time: DateTime<Utc>, speed: f64) -> Self {
        Self {
            start_time,
            start_instant: Instant::now(),
            speed,
        }
    }

    /// Tokio time that passes while this clock advances by `simulated`.
    pub fn real_duration(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.speed)
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.start_instant.elapsed().mul_f64(self.speed);
        let elapsed = chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX);
        self.start_time + elapsed
    }
}

/// First analysis time of the storm-1996 dataset (`reftime` plus `timestep` 0).
pub fn storm_1996_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1996, 1, 5, 0, 0, 0).unwrap()
}

/// Last analysis time of the storm-1996 dataset: 64 steps of 6 h after the start.
pub fn storm_1996_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1996, 1, 20, 18, 0, 0).unwrap()
}

/// A clock that replays a past period: `replay_seconds` of tokio time cover
/// `start..=end`, after which the clock stays at `end`. The storm-1996 analyses are 63
/// steps of 6 h apart, so a 63 s replay brings one cycle due about every second.
#[derive(Debug, Clone)]
pub struct ReplayClock {
    inner: TokioClock,
    end: DateTime<Utc>,
}

impl ReplayClock {
    /// Replays `start..=end` in `replay` of tokio time. `start` should sit just before
    /// the first cycle so that the first cycle is on time when it comes due.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>, replay: Duration) -> Self {
        let span = (end - start).to_std().unwrap_or_default();
        let speed = span.as_secs_f64() / replay.as_secs_f64().max(1e-9);
        Self {
            inner: TokioClock::with_speed(start, speed.max(1e-9)),
            end,
        }
    }

    /// Replays the storm-1996 analyses, 1996-01-05 00Z to 1996-01-20 18Z, starting one
    /// simulated minute before the first analysis.
    pub fn storm_1996(replay: Duration) -> Self {
        let start = storm_1996_start() - chrono::Duration::minutes(1);
        Self::new(start, storm_1996_end(), replay)
    }

    /// Tokio time per simulated `duration`; use it to size the scheduler's tick.
    pub fn real_duration(&self, simulated: Duration) -> Duration {
        self.inner.real_duration(simulated)
    }

    pub fn is_finished(&self) -> bool {
        self.inner.now() >= self.end
    }
}

impl Clock for ReplayClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now().min(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn replay_maps_seconds_onto_storm_cycles() {
        // 63 s of replay for 63 steps of 6 h plus the 1 minute lead-in.
        let clock = ReplayClock::storm_1996(Duration::from_secs(63));
        assert_eq!(
            clock.now(),
            storm_1996_start() - chrono::Duration::minutes(1)
        );
        let six_hours = clock.real_duration(Duration::from_secs(6 * 3600));
        tokio::time::advance(Duration::from_secs(1)).await;
        let after_one_second = clock.now();
        assert!(after_one_second > storm_1996_start(), "{after_one_second}");
        assert!(after_one_second < storm_1996_start() + chrono::Duration::hours(6));
        assert!(
            (six_hours.as_secs_f64() - 0.9999).abs() < 0.01,
            "{six_hours:?}"
        );
        assert!(!clock.is_finished());

        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(clock.now(), storm_1996_end());
        assert!(clock.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::starting_at(storm_1996_start());
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(
            clock.now(),
            storm_1996_start() + chrono::Duration::seconds(90)
        );
    }
}
