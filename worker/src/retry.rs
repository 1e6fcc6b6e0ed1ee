//! Exponential backoff with jitter between attempts of a job.

use std::time::Duration;

/// Delays between attempts. The attempt limit itself is stored on each job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt, before jitter.
    pub base_delay: Duration,
    /// Upper bound of the delay before jitter, however many attempts failed.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Delay after failed attempt number `attempt` (1-based): `base * 2^(attempt - 1)`,
    /// capped at `max_delay`, then scaled into `[delay / 2, delay)` by `jitter` in
    /// `[0, 1)`. Jitter keeps jobs that failed together from retrying together.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// [`RetryPolicy::delay`] with jitter from the thread-local random generator.
    pub fn delay_with_random_jitter(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn delay_doubles_per_attempt() {
        assert_eq!(policy().delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(policy().delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(policy().delay(3, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn delay_caps_at_max() {
        assert_eq!(policy().delay(10, 1.0), Duration::from_secs(60));
        assert_eq!(policy().delay(u32::MAX, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_spans_upper_half() {
        assert_eq!(policy().delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(policy().delay(3, 0.5), Duration::from_secs(6));
        for _ in 0..100 {
            let delay = policy().delay_with_random_jitter(3);
            assert!(delay >= Duration::from_secs(4), "{delay:?}");
            assert!(delay <= Duration::from_secs(8), "{delay:?}");
        }
    }
}
