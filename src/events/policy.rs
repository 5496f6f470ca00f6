//! The decisions of webhook delivery and failure tracking, as plain functions of their
//! inputs and `now`: which deliveries to claim, when to retry, when to give up, when an
//! endpoint is disabled, and when repeated provider failures become a notice. The worker
//! and the store apply them; nothing here reads the clock or does I/O.

use crate::time::UnixMs;

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubles with every further failure.
    pub first_delay_ms: i64,
    /// The longest delay between two attempts.
    pub max_delay_ms: i64,
    /// How long after its event a delivery keeps being retried before it is given up.
    pub window_ms: i64,
}

impl RetryPolicy {
    /// The production defaults: 10 s, doubling up to 1 h, for 24 h.
    pub const DEFAULT: Self = Self { first_delay_ms: 10_000, max_delay_ms: 3_600_000, window_ms: 86_400_000 };

    /// The wait after the `failures`-th failed attempt (1 for the first), with equal
    /// jitter: half the exponential delay, plus up to the other half chosen by `jitter`
    /// (in `[0, 1)`), so endpoints that failed together do not retry together.
    pub fn delay_ms(&self, failures: u32, jitter: f64) -> i64 {
        let exponent = failures.saturating_sub(1).min(40);
        let nominal = self.first_delay_ms.max(1).saturating_mul(1_i64 << exponent).min(self.max_delay_ms.max(1));
        let jitter = jitter.clamp(0.0, 1.0);
        nominal / 2 + ((nominal - nominal / 2) as f64 * jitter) as i64
    }
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered 2xx.
    Delivered,
    /// Anything else: another status, a timeout, a refused or unreachable destination.
    Failed,
}

impl AttemptResult {
    /// A response status: 2xx is delivered; redirects are not followed and count as failures.
    pub fn from_status(status: u16) -> Self {
        if (200..300).contains(&status) { Self::Delivered } else { Self::Failed }
    }
}

/// A delivery as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryState {
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// No retry is scheduled after this time (the event's time plus the retry window, or
    /// the time of a manual redelivery, which is attempted once).
    pub retry_until: UnixMs,
    /// An admin asked for this attempt (manual redelivery).
    pub manual: bool,
}

/// What becomes of the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    /// Done.
    Delivered,
    /// Try again at this time.
    Retry { at: UnixMs },
    /// Stop trying; the delivery is failed (an admin may redeliver it).
    GiveUp,
}

/// What becomes of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointNext {
    /// It answered: no longer failing.
    Healthy,
    /// Failing since this time (the first failure after the last success).
    Failing { since: UnixMs },
    /// Failing persistently: disable it, showing why.
    Disable { since: UnixMs },
}

/// The outcome of an attempt for the delivery and its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub delivery: DeliveryNext,
    pub endpoint: EndpointNext,
}

/// Decides what follows an attempt that ended at `now`. A failed delivery is retried
/// until `retry_until` (the last attempt falls on it), then given up. An endpoint is
/// disabled when an automatic delivery is given up: it could not take an event for the
/// whole retry window. A manual redelivery that fails never disables its endpoint.
pub fn decide(
    result: AttemptResult,
    delivery: DeliveryState,
    failing_since: Option<UnixMs>,
    now: UnixMs,
    jitter: f64,
    policy: &RetryPolicy,
) -> Decision {
    if result == AttemptResult::Delivered {
        return Decision { delivery: DeliveryNext::Delivered, endpoint: EndpointNext::Healthy };
    }
    let since = failing_since.unwrap_or(now).min(now);
    if now >= delivery.retry_until {
        let endpoint = if delivery.manual { EndpointNext::Failing { since } } else { EndpointNext::Disable { since } };
        return Decision { delivery: DeliveryNext::GiveUp, endpoint };
    }
    let at = (now + policy.delay_ms(delivery.attempts, jitter)).min(delivery.retry_until);
    Decision { delivery: DeliveryNext::Retry { at }, endpoint: EndpointNext::Failing { since } }
}

/// The oldest undelivered delivery of an enabled endpoint: the only one of that endpoint
/// that may be attempted, so each endpoint receives its events in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<Id> {
    pub delivery: Id,
    pub next_attempt_at: UnixMs,
    /// Another worker holds it until then.
    pub lease_until: Option<UnixMs>,
}

/// The heads to claim now: due, not leased by a live worker, most overdue first, at most
/// `capacity`. Claiming still goes through a compare-and-set on the lease, so two workers
/// that pick the same head never both send it.
pub fn pick_due<Id: Clone>(heads: &[Head<Id>], now: UnixMs, capacity: usize) -> Vec<Id> {
    let mut due: Vec<&Head<Id>> =
        heads.iter().filter(|h| h.next_attempt_at <= now && h.lease_until.is_none_or(|until| until < now)).collect();
    due.sort_by_key(|h| h.next_attempt_at);
    due.into_iter().take(capacity).map(|h| h.delivery.clone()).collect()
}

/// How long a claimed delivery is reserved for the worker that claimed it: the request
/// timeout plus a margin for the database writes around it. If the worker dies, another
/// takes the delivery over after this (hence at-least-once).
pub fn lease_until(now: UnixMs, request_timeout_ms: i64) -> UnixMs {
    now + request_timeout_ms + 30_000
}

/// "Persistent" provider failure: `threshold` failed calls within `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureWindow {
    pub threshold: usize,
    pub window_ms: i64,
}

impl FailureWindow {
    /// 3 failed calls in 10 minutes.
    pub const PROVIDER: Self = Self { threshold: 3, window_ms: 10 * 60 * 1000 };

    /// Whether the failures at `times` (any order) make the failure persistent at `now`.
    pub fn is_persistent(&self, times: &[UnixMs], now: UnixMs) -> bool {
        let recent = times.iter().filter(|&&t| t <= now && now - t < self.window_ms).count();
        self.threshold > 0 && recent >= self.threshold
    }

    /// The earliest failure time still relevant at `now` (what the store looks back to).
    pub fn since(&self, now: UnixMs) -> UnixMs {
        now - self.window_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy { first_delay_ms: 1000, max_delay_ms: 60_000, window_ms: 3_600_000 };

    #[test]
    fn back_off_doubles_from_the_first_delay_up_to_the_cap() {
        let full: Vec<i64> = (1..=9).map(|n| POLICY.delay_ms(n, 0.999_999)).collect();
        assert_eq!(full, vec![999, 1999, 3999, 7999, 15_999, 31_999, 59_999, 59_999, 59_999]);
        assert_eq!(POLICY.delay_ms(1000, 0.5), 45_000, "huge failure counts stay capped");
    }

    #[test]
    fn jitter_spreads_each_delay_over_its_upper_half() {
        assert_eq!(POLICY.delay_ms(3, 0.0), 2000);
        assert_eq!(POLICY.delay_ms(3, 0.5), 3000);
        assert_eq!(POLICY.delay_ms(3, 2.0), 4000, "jitter is clamped");
        assert_eq!(POLICY.delay_ms(3, -1.0), 2000);
    }

    #[test]
    fn the_default_policy_retries_for_a_day() {
        assert_eq!(RetryPolicy::DEFAULT.window_ms, 24 * 3600 * 1000);
        assert_eq!(RetryPolicy::DEFAULT.delay_ms(1, 0.0), 5000);
        assert_eq!(RetryPolicy::DEFAULT.delay_ms(30, 0.0), 1_800_000);
    }

    #[test]
    fn a_delivered_attempt_makes_the_endpoint_healthy() {
        let state = DeliveryState { attempts: 4, retry_until: 10_000, manual: false };
        let d = decide(AttemptResult::Delivered, state, Some(1), 5000, 0.3, &POLICY);
        assert_eq!(d, Decision { delivery: DeliveryNext::Delivered, endpoint: EndpointNext::Healthy });
    }

    #[test]
    fn a_failure_is_retried_after_the_back_off_and_remembers_when_failing_began() {
        let state = DeliveryState { attempts: 1, retry_until: 100_000, manual: false };
        let d = decide(AttemptResult::Failed, state, None, 5000, 0.0, &POLICY);
        assert_eq!(d.delivery, DeliveryNext::Retry { at: 5500 });
        assert_eq!(d.endpoint, EndpointNext::Failing { since: 5000 });
        let state = DeliveryState { attempts: 2, ..state };
        let d = decide(AttemptResult::Failed, state, Some(5000), 6000, 0.0, &POLICY);
        assert_eq!(
            d,
            Decision { delivery: DeliveryNext::Retry { at: 7000 }, endpoint: EndpointNext::Failing { since: 5000 } }
        );
    }

    #[test]
    fn the_last_retry_falls_on_the_end_of_the_window_then_the_endpoint_is_disabled() {
        let state = DeliveryState { attempts: 6, retry_until: 20_000, manual: false };
        let d = decide(AttemptResult::Failed, state, Some(1000), 19_000, 0.0, &POLICY);
        assert_eq!(d.delivery, DeliveryNext::Retry { at: 20_000 });
        let d = decide(AttemptResult::Failed, DeliveryState { attempts: 7, ..state }, Some(1000), 20_000, 0.0, &POLICY);
        assert_eq!(d, Decision { delivery: DeliveryNext::GiveUp, endpoint: EndpointNext::Disable { since: 1000 } });
    }

    #[test]
    fn a_failed_manual_redelivery_is_given_up_without_disabling_the_endpoint() {
        let state = DeliveryState { attempts: 9, retry_until: 50_000, manual: true };
        let d = decide(AttemptResult::Failed, state, None, 50_000, 0.0, &POLICY);
        assert_eq!(d, Decision { delivery: DeliveryNext::GiveUp, endpoint: EndpointNext::Failing { since: 50_000 } });
    }

    #[test]
    fn only_2xx_answers_count_as_delivered() {
        assert_eq!(AttemptResult::from_status(200), AttemptResult::Delivered);
        assert_eq!(AttemptResult::from_status(204), AttemptResult::Delivered);
        for status in [100, 301, 302, 400, 410, 429, 500, 503] {
            assert_eq!(AttemptResult::from_status(status), AttemptResult::Failed, "{status}");
        }
    }

    #[test]
    fn only_due_unleased_heads_are_claimed_most_overdue_first() {
        let head = |id: &'static str, next: UnixMs, lease: Option<UnixMs>| Head {
            delivery: id,
            next_attempt_at: next,
            lease_until: lease,
        };
        let heads = vec![
            head("later", 2000, None),
            head("due", 900, None),
            head("overdue", 100, None),
            head("leased", 50, Some(1500)),
            head("lease-expired", 500, Some(999)),
        ];
        assert_eq!(pick_due(&heads, 1000, 10), vec!["overdue", "lease-expired", "due"]);
        assert_eq!(pick_due(&heads, 1000, 2), vec!["overdue", "lease-expired"]);
        assert!(pick_due(&heads, 10, 10).is_empty());
    }

    #[test]
    fn a_lease_outlasts_the_request_timeout() {
        assert_eq!(lease_until(1000, 10_000), 41_000);
    }

    #[test]
    fn three_provider_failures_within_ten_minutes_are_persistent() {
        let w = FailureWindow::PROVIDER;
        let minute = 60_000;
        let now = 100 * minute;
        assert!(!w.is_persistent(&[now - minute, now - 2 * minute], now));
        assert!(w.is_persistent(&[now - minute, now - 2 * minute, now - 9 * minute], now));
        assert!(
            !w.is_persistent(&[now - minute, now - 2 * minute, now - 10 * minute], now),
            "the window is 10 minutes"
        );
        assert!(!w.is_persistent(&[now + minute, now - minute, now - 2 * minute], now), "future times do not count");
        assert_eq!(w.since(now), now - 10 * minute);
    }
}
