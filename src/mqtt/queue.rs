//! The offline queue and the publish rate limit of the transport. Both are plain data
//! structures with time passed in, so they are tested without a broker.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A FIFO queue of bounded length that drops its oldest items when full and counts them.
#[derive(Debug, Clone)]
pub struct OfflineQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> OfflineQueue<T> {
    /// A queue of at most `capacity` items (at least one).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Appends an item, dropping the oldest one when the queue is full. Returns whether one
    /// was dropped.
    pub fn push_back(&mut self, item: T) -> bool {
        let full = self.items.len() >= self.capacity;
        if full {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
        full
    }

    /// Puts items that were sent but not acknowledged back at the front, oldest first, so
    /// that they go out again before everything queued after them. Beyond the capacity the
    /// oldest are dropped.
    pub fn requeue_front(&mut self, items: impl DoubleEndedIterator<Item = T>) {
        for item in items.rev() {
            self.items.push_front(item);
        }
        while self.items.len() > self.capacity {
            self.items.pop_front();
            self.dropped += 1;
        }
    }

    pub fn pop_front(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Puts back one item taken with [`pop_front`](Self::pop_front) that could not be sent.
    pub fn unpop(&mut self, item: T) {
        self.items.push_front(item);
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items dropped because the queue was full, since it was created.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// A token bucket: at most `rate` publishes per second on average, in bursts of at most
/// `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A full bucket.
    #[must_use]
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: f64::from(per_second.max(1)),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    /// Takes one token, or returns how long to wait for the next one.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_oldest() {
        let mut queue = OfflineQueue::new(3);
        for item in 1..=5 {
            queue.push_back(item);
        }
        assert_eq!(queue.dropped(), 2);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.pop_front(), Some(3));
    }

    #[test]
    fn requeued_items_go_first_in_order() {
        let mut queue = OfflineQueue::new(10);
        queue.push_back(4);
        queue.push_back(5);
        queue.requeue_front([1, 2, 3].into_iter());
        let order: Vec<_> = std::iter::from_fn(|| queue.pop_front()).collect();
        assert_eq!(order, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn requeue_beyond_capacity_drops_oldest() {
        let mut queue = OfflineQueue::new(3);
        queue.push_back(3);
        queue.push_back(4);
        queue.requeue_front([1, 2].into_iter());
        assert_eq!(queue.dropped(), 1);
        let order: Vec<_> = std::iter::from_fn(|| queue.pop_front()).collect();
        assert_eq!(order, [2, 3, 4]);
    }

    #[test]
    fn rate_limiter_allows_burst_then_paces() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(100, 10, start);
        for _ in 0..10 {
            assert!(limiter.try_take(start).is_ok());
        }
        let wait = limiter.try_take(start).unwrap_err();
        assert!(
            wait > Duration::from_millis(9) && wait <= Duration::from_millis(10),
            "{wait:?}"
        );
        assert!(limiter.try_take(start + Duration::from_millis(10)).is_ok());
    }

    #[test]
    fn rate_limiter_holds_the_average_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(100, 10, start);
        let mut now = start;
        let mut sent = 0;
        // One simulated second, asking every millisecond.
        for _ in 0..1000 {
            now += Duration::from_millis(1);
            if limiter.try_take(now).is_ok() {
                sent += 1;
            }
        }
        assert!((100..=110).contains(&sent), "{sent}");
    }
}
