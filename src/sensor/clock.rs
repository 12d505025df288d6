//! Injected time source for the sensor scheduler.
//!
//! The window uses the wall clock, headless mode the wall clock sped up by `--speed`, and
//! tests a [`ManualClock`] that only moves when the test advances it.

use std::sync::Arc;
use std::time::Instant;

use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

/// Where the scheduler reads the time and how it waits.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The system clock, running `speed` times faster than real time when `speed > 1`.
    Wall(WallClock),
    /// Time that moves only when [`ManualClock::advance`] is called.
    Manual(ManualClock),
}

impl Clock {
    /// The system clock at normal speed.
    #[must_use]
    pub fn system() -> Self {
        Self::Wall(WallClock::new(1.0))
    }

    /// The system clock running `speed` times faster, starting now.
    #[must_use]
    pub fn scaled(speed: f64) -> Self {
        Self::Wall(WallClock::new(speed))
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Self::Wall(clock) => clock.now(),
            Self::Manual(clock) => clock.now(),
        }
    }

    /// Waits until the clock reads `deadline` or later.
    pub async fn sleep_until(&self, deadline: OffsetDateTime) {
        match self {
            Self::Wall(clock) => clock.sleep_until(deadline).await,
            Self::Manual(clock) => clock.sleep_until(deadline).await,
        }
    }
}

/// The system clock, optionally sped up. Sped-up time starts at the real time of creation
/// and runs ahead of it.
#[derive(Debug, Clone)]
pub struct WallClock {
    origin_wall: OffsetDateTime,
    origin: Instant,
    speed: f64,
}

impl WallClock {
    fn new(speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            origin_wall: OffsetDateTime::now_utc(),
            origin: Instant::now(),
            speed,
        }
    }

    fn now(&self) -> OffsetDateTime {
        if (self.speed - 1.0).abs() < f64::EPSILON {
            return OffsetDateTime::now_utc();
        }
        let elapsed = self.origin.elapsed().as_secs_f64() * self.speed;
        self.origin_wall + Duration::seconds_f64(elapsed)
    }

    async fn sleep_until(&self, deadline: OffsetDateTime) {
        let remaining = (deadline - self.now()).as_seconds_f64() / self.speed;
        if remaining > 0.0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(remaining)).await;
        }
    }
}

/// A clock for tests: it starts at a fixed time and moves only when advanced, waking
/// everything that waits on it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<OffsetDateTime>>,
}

impl ManualClock {
    /// Creates a clock reading `start`.
    #[must_use]
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        *self.now.borrow()
    }

    /// Moves the clock forward by `step`.
    pub fn advance(&self, step: Duration) {
        self.now.send_modify(|now| *now += step);
    }

    async fn sleep_until(&self, deadline: OffsetDateTime) {
        let mut changes = self.now.subscribe();
        // The sender lives as long as `self`, so `wait_for` only ends when the time is due.
        let _ = changes.wait_for(|now| *now >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleeper() {
        let manual = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
        let clock = Clock::Manual(manual.clone());
        let deadline = manual.now() + Duration::seconds(2);
        let sleeper = tokio::spawn(async move { clock.sleep_until(deadline).await });
        manual.advance(Duration::seconds(1));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        manual.advance(Duration::seconds(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("sleeper task ran");
    }

    #[tokio::test]
    async fn scaled_clock_runs_faster() {
        let clock = Clock::scaled(100.0);
        let start = clock.now();
        let began = Instant::now();
        clock.sleep_until(start + Duration::seconds(5)).await;
        assert!(clock.now() >= start + Duration::seconds(5));
        // Five simulated seconds at 100x take 50 ms; any real wait under five seconds shows
        // that the clock ran ahead of real time.
        assert!(began.elapsed() < std::time::Duration::from_secs(5));
    }
}
