//! Mean and standard deviation with missing values (NaN) skipped.

use rayon::prelude::*;

/// Chunk length for the parallel sums. Fixed, so the summation order and therefore the
/// result do not depend on the number of threads.
const CHUNK_LEN: usize = 4096;

/// Mean and population standard deviation (divisor `count`) of the valid values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
    /// Number of non-NaN values the statistics were computed from.
    pub count: usize,
}

/// Computes the mean and population standard deviation of the non-NaN values, in two
/// passes for accuracy. Returns `None` when every value is NaN or the slice is empty.
pub fn nan_mean_std(values: &[f32]) -> Option<MeanStd> {
    let (sum, count) = values
        .par_chunks(CHUNK_LEN)
        .map(|chunk| {
            chunk
                .iter()
                .filter(|x| !x.is_nan())
                .fold((0.0f64, 0usize), |(s, n), &x| (s + x as f64, n + 1))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0.0, 0), |(s, n), (cs, cn)| (s + cs, n + cn));
    if count == 0 {
        return None;
    }
    let mean = sum / count as f64;
    let squares: f64 = values
        .par_chunks(CHUNK_LEN)
        .map(|chunk| {
            chunk
                .iter()
                .filter(|x| !x.is_nan())
                .map(|&x| (x as f64 - mean).powi(2))
                .sum::<f64>()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .sum();
    Some(MeanStd {
        mean,
        std: (squares / count as f64).sqrt(),
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn mean_std_hand_case() {
        // Values 2, 4, 4, 4, 5, 5, 7, 9: mean 5, population std 2 (textbook example).
        let values = [2.0, 4.0, f32::NAN, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, f32::NAN];
        let stats = nan_mean_std(&values).unwrap();
        assert_eq!(stats.count, 8);
        assert_relative_eq!(stats.mean, 5.0, epsilon = 1e-12);
        assert_relative_eq!(stats.std, 2.0, epsilon = 1e-12);
    }

    #[test]
    fn mean_std_all_missing_is_none() {
        assert_eq!(nan_mean_std(&[f32::NAN, f32::NAN]), None);
        assert_eq!(nan_mean_std(&[]), None);
    }

    #[test]
    fn mean_std_matches_naive_on_long_slice() {
        // Spans many chunks; relative tolerance 1e-9 covers the different f64
        // summation order of the naive loop.
        let values: Vec<f32> = (0..50_001)
            .map(|i| {
                if i % 13 == 0 {
                    f32::NAN
                } else {
                    ((i * 7919) % 1000) as f32 * 0.37
                }
            })
            .collect();
        let valid: Vec<f64> = values
            .iter()
            .filter(|x| !x.is_nan())
            .map(|&x| x as f64)
            .collect();
        let mean = valid.iter().sum::<f64>() / valid.len() as f64;
        let var = valid.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / valid.len() as f64;
        let stats = nan_mean_std(&values).unwrap();
        assert_eq!(stats.count, valid.len());
        assert_relative_eq!(stats.mean, mean, max_relative = 1e-9);
        assert_relative_eq!(stats.std, var.sqrt(), max_relative = 1e-9);
    }
}
