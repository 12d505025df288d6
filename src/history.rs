//! Bounded time series of readings for the chart, with per-pixel min/max decimation so
//! that a long run draws as fast as a short one.

use std::collections::VecDeque;

/// One sample: time in seconds since the Unix epoch, and the value.
pub type Sample = [f64; 2];

/// Samples kept by default: 24 hours at one reading per second.
pub const DEFAULT_CAPACITY: usize = 86_400;

/// The most recent samples, oldest first. Times must not decrease.
#[derive(Debug, Clone)]
pub struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl Default for History {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl History {
    /// A history that keeps at most `capacity` samples, dropping the oldest.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            samples: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Appends a sample. One older than the newest is dropped, so times stay ordered.
    pub fn push(&mut self, time: f64, value: f64) {
        if self.samples.back().is_some_and(|last| time < last[0]) {
            return;
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back([time, value]);
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Returns the oldest sample kept.
    #[must_use]
    pub fn oldest(&self) -> Option<Sample> {
        self.samples.front().copied()
    }

    /// Returns the newest sample.
    #[must_use]
    pub fn latest(&self) -> Option<Sample> {
        self.samples.back().copied()
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// The samples from time `start` to `end`, thinned to at most about `2 * columns`
    /// points: each column keeps its lowest and highest sample, in time order, so peaks
    /// that cross the threshold stay visible however far the chart is zoomed out.
    #[must_use]
    pub fn decimated(&self, start: f64, end: f64, columns: usize) -> Vec<Sample> {
        let first = self.samples.partition_point(|s| s[0] < start);
        let last = self.samples.partition_point(|s| s[0] <= end);
        let visible = self.samples.range(first..last);
        let count = last.saturating_sub(first);
        let columns = columns.max(1);
        if count <= 2 * columns || end <= start {
            return visible.copied().collect();
        }
        let width = (end - start) / columns as f64;
        let mut out = Vec::with_capacity(2 * columns);
        let mut column: Option<(usize, Sample, Sample)> = None;
        for &sample in visible {
            let index = ((sample[0] - start) / width) as usize;
            match &mut column {
                Some((current, low, high)) if *current == index => {
                    if sample[1] < low[1] {
                        *low = sample;
                    }
                    if sample[1] > high[1] {
                        *high = sample;
                    }
                }
                _ => {
                    if let Some((_, low, high)) = column.take() {
                        push_ordered(&mut out, low, high);
                    }
                    column = Some((index, sample, sample));
                }
            }
        }
        if let Some((_, low, high)) = column {
            push_ordered(&mut out, low, high);
        }
        out
    }
}

/// Splits time-ordered samples wherever two neighbours are more than `max_gap` seconds
/// apart, so that a chart draws a pause as a gap.
#[must_use]
pub fn split_at_gaps(samples: &[Sample], max_gap: f64) -> Vec<&[Sample]> {
    let mut segments = Vec::new();
    let mut start = 0;
    for (index, pair) in samples.windows(2).enumerate() {
        if pair[1][0] - pair[0][0] > max_gap {
            segments.push(&samples[start..=index]);
            start = index + 1;
        }
    }
    if start < samples.len() {
        segments.push(&samples[start..]);
    }
    segments
}

fn push_ordered(out: &mut Vec<Sample>, low: Sample, high: Sample) {
    if low[0].to_bits() == high[0].to_bits() {
        out.push(low);
    } else if low[0] <= high[0] {
        out.extend([low, high]);
    } else {
        out.extend([high, low]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_drops_oldest() {
        let mut history = History::with_capacity(3);
        for t in 0..5 {
            history.push(f64::from(t), f64::from(t) * 10.0);
        }
        assert_eq!(history.len(), 3);
        assert_eq!(
            history.decimated(0.0, 10.0, 100),
            vec![[2.0, 20.0], [3.0, 30.0], [4.0, 40.0]]
        );
    }

    #[test]
    fn out_of_order_sample_is_dropped() {
        let mut history = History::default();
        history.push(5.0, 1.0);
        history.push(4.0, 2.0);
        assert_eq!(history.len(), 1);
        assert_eq!(history.latest(), Some([5.0, 1.0]));
    }

    #[test]
    fn decimation_keeps_spikes() {
        let mut history = History::default();
        for i in 0..10_000 {
            let value = if i == 4_321 {
                99.0
            } else if i == 7_000 {
                -50.0
            } else {
                25.0
            };
            history.push(f64::from(i), value);
        }
        let points = history.decimated(0.0, 10_000.0, 100);
        assert!(points.len() <= 200, "{} points", points.len());
        assert!(points.contains(&[4_321.0, 99.0]));
        assert!(points.contains(&[7_000.0, -50.0]));
        assert!(
            points.windows(2).all(|pair| pair[0][0] <= pair[1][0]),
            "time order kept"
        );
    }

    #[test]
    fn gaps_split_segments() {
        let samples = [
            [0.0, 1.0],
            [1.0, 1.0],
            [2.0, 1.0],
            [10.0, 1.0],
            [11.0, 1.0],
            [30.0, 1.0],
        ];
        let segments = split_at_gaps(&samples, 2.5);
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[0], &samples[0..3]);
        assert_eq!(segments[1], &samples[3..5]);
        assert_eq!(segments[2], &samples[5..]);
        assert_eq!(split_at_gaps(&samples, 100.0), vec![&samples[..]]);
        assert!(split_at_gaps(&[], 1.0).is_empty());
    }

    #[test]
    fn decimation_limits_to_range() {
        let mut history = History::default();
        for i in 0..100 {
            history.push(f64::from(i), 1.0);
        }
        let points = history.decimated(10.0, 19.0, 100);
        assert_eq!(points.len(), 10);
        assert_eq!(points[0][0], 10.0);
        assert_eq!(points[9][0], 19.0);
    }
}
