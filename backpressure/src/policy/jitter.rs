//! Where a breaker's random spread of open periods comes from, injected so that the state
//! machine stays pure and tests (or a seeded breaker) get the same periods every run.

use std::fmt;
use std::time::Duration;

/// A source of uniform random numbers in `[0, 1)`.
pub(crate) trait Jitter: Send + fmt::Debug {
    /// The next number, uniform in `[0, 1)`.
    fn unit(&mut self) -> f64;

    /// `base` spread uniformly by ±`share` (`base` itself, drawing nothing, for `share <= 0`).
    fn spread(&mut self, base: Duration, share: f64) -> Duration {
        if share <= 0.0 {
            return base;
        }
        let factor = 1.0 + share * (2.0 * self.unit() - 1.0);
        // `base.mul_f64(factor)`, saturating: a spread beyond what `Duration` holds (a
        // `Duration::MAX` backoff) is the longest duration, not a panic.
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    }
}

/// The default source: fastrand's thread-local generator.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ThreadLocal;

impl Jitter for ThreadLocal {
    fn unit(&mut self) -> f64 {
        fastrand::f64()
    }
}

/// A seeded source (`Breaker::jitter_seed`): the same seed draws the same numbers.
impl Jitter for fastrand::Rng {
    fn unit(&mut self) -> f64 {
        self.f64()
    }
}

/// The source a breaker configured with `seed` draws from.
pub(crate) fn source(seed: Option<u64>) -> Box<dyn Jitter> {
    match seed {
        Some(seed) => Box::new(fastrand::Rng::with_seed(seed)),
        None => Box::new(ThreadLocal),
    }
}

/// A source that always draws the same number (tests).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Fixed(pub(crate) f64);

#[cfg(test)]
impl Jitter for Fixed {
    fn unit(&mut self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_reaches_both_ends_and_zero_draws_nothing() {
        let base = Duration::from_secs(100);
        assert_eq!(Fixed(0.0).spread(base, 0.15), Duration::from_secs(85));
        assert_eq!(Fixed(0.5).spread(base, 0.15), base);
        assert!(Fixed(1.0).spread(base, 0.15) <= Duration::from_secs(115));
        assert_eq!(
            Fixed(f64::NAN).spread(base, 0.0),
            base,
            "no draw without jitter"
        );
    }

    #[test]
    fn a_seed_repeats_its_spreads() {
        let base = Duration::from_secs(30);
        let draw = |seed| {
            let mut source = source(Some(seed));
            (0..5)
                .map(|_| source.spread(base, 0.15))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert!(draw(7)
            .iter()
            .all(|d| (25.5..=34.5).contains(&d.as_secs_f64())));
    }
}
