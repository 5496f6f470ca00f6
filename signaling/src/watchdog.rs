//! Dead-peer detection as a pure state machine.
//!
//! Input: the peer connection's state changes and the current time. Output: at most one
//! `Connected` and at most one `Lost` verdict. No clock, no timers, no sockets: the
//! supervisor task feeds it and sleeps until [`Watchdog::poll_timeout`].

use std::time::{Duration, Instant};

/// The link state as the watchdog sees it: webrtc's `RTCPeerConnectionState`, which already
/// combines ICE and DTLS (connected = ICE connected *and* DTLS up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not yet connected: ICE checking or the DTLS handshake under way.
    Connecting,
    /// ICE connected and DTLS up.
    Connected,
    /// ICE has heard nothing from the peer for a while; it may come back.
    Disconnected,
    /// ICE or DTLS gave up for good.
    Failed,
    /// Closed locally.
    Closed,
}

/// Why a call's peer was declared lost. The call session ends the call with
/// [`LostReason::END_REASON`] whatever the variant; the variant is for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// Never reached `Connected` within `connect_timeout`.
    ConnectTimeout,
    /// Connected once, then unreachable for longer than `disconnected_timeout`.
    Disconnected,
    /// ICE or DTLS reported failure.
    Failed,
}

impl LostReason {
    /// The `end_reason` a call gets when its peer is lost, whatever the detail.
    pub const END_REASON: &'static str = "network_lost";

    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectTimeout => "connect_timeout",
            Self::Disconnected => "disconnected_timeout",
            Self::Failed => "ice_failed",
        }
    }
}

/// What the watchdog concluded from an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// First time the link is up: audio may flow.
    Connected,
    /// The peer is gone; end the call.
    Lost(LostReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first `Connected`, until `deadline`.
    Connecting {
        deadline: Instant,
    },
    Connected,
    /// Disconnected since some time; lost at `deadline` unless it recovers.
    Disconnected {
        deadline: Instant,
    },
    /// Terminal: a verdict `Lost` was given, or the peer was closed.
    Done,
}

/// Turns link-state changes into `Connected` / `Lost` verdicts.
#[derive(Debug, Clone)]
pub struct Watchdog {
    /// Extra time a `Disconnected` link gets to recover (the ICE agent already waited its
    /// part of the budget before saying `Disconnected`).
    grace: Duration,
    phase: Phase,
}

impl Watchdog {
    /// Starts watching at `now`: the peer must connect within `connect_timeout`, and a
    /// disconnected peer gets `grace` to come back.
    pub fn new(now: Instant, connect_timeout: Duration, grace: Duration) -> Self {
        Self { grace, phase: Phase::Connecting { deadline: now + connect_timeout } }
    }

    /// Feeds one state change.
    pub fn handle_state(&mut self, state: LinkState, now: Instant) -> Option<Verdict> {
        match (self.phase, state) {
            (Phase::Done, _) => None,
            (_, LinkState::Closed) => {
                self.phase = Phase::Done;
                None
            }
            (_, LinkState::Failed) => {
                self.phase = Phase::Done;
                Some(Verdict::Lost(LostReason::Failed))
            }
            (Phase::Connecting { .. }, LinkState::Connected) => {
                self.phase = Phase::Connected;
                Some(Verdict::Connected)
            }
            (Phase::Disconnected { .. }, LinkState::Connected) => {
                self.phase = Phase::Connected;
                None
            }
            (Phase::Connected, LinkState::Disconnected) => {
                self.phase = Phase::Disconnected { deadline: now + self.grace };
                None
            }
            // A disconnection before the first connect is still "connecting"; a repeated
            // state or `Connecting` during a disconnection keeps the running deadline.
            _ => None,
        }
    }

    /// Feeds the passage of time; call it at (or after) [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Verdict> {
        let reason = match self.phase {
            Phase::Connecting { deadline } if now >= deadline => LostReason::ConnectTimeout,
            Phase::Disconnected { deadline } if now >= deadline => LostReason::Disconnected,
            _ => return None,
        };
        self.phase = Phase::Done;
        Some(Verdict::Lost(reason))
    }

    /// When the next [`handle_timeout`](Self::handle_timeout) could give a verdict.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { deadline } | Phase::Disconnected { deadline } => Some(deadline),
            Phase::Connected | Phase::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT: Duration = Duration::from_secs(20);
    const GRACE: Duration = Duration::from_secs(7);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn reports_connected_once_even_after_a_recovery() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0, CONNECT, GRACE);
        assert_eq!(dog.handle_state(LinkState::Connecting, t0), None);
        assert_eq!(dog.handle_state(LinkState::Connected, t0 + secs(1)), Some(Verdict::Connected));
        assert_eq!(dog.handle_state(LinkState::Disconnected, t0 + secs(5)), None);
        assert_eq!(dog.handle_state(LinkState::Connected, t0 + secs(6)), None);
        assert_eq!(dog.poll_timeout(), None);
    }

    #[test]
    fn never_connecting_is_lost_at_the_connect_deadline() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0, CONNECT, GRACE);
        assert_eq!(dog.poll_timeout(), Some(t0 + CONNECT));
        assert_eq!(dog.handle_timeout(t0 + secs(19)), None);
        assert_eq!(dog.handle_timeout(t0 + CONNECT), Some(Verdict::Lost(LostReason::ConnectTimeout)));
        assert_eq!(dog.poll_timeout(), None);
        assert_eq!(dog.handle_timeout(t0 + secs(60)), None, "one verdict only");
    }

    #[test]
    fn a_disconnection_before_connecting_keeps_the_connect_deadline() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0, CONNECT, GRACE);
        assert_eq!(dog.handle_state(LinkState::Disconnected, t0 + secs(1)), None);
        assert_eq!(dog.poll_timeout(), Some(t0 + CONNECT));
    }

    #[test]
    fn disconnected_past_the_grace_is_lost() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0, CONNECT, GRACE);
        dog.handle_state(LinkState::Connected, t0);
        dog.handle_state(LinkState::Disconnected, t0 + secs(30));
        assert_eq!(dog.poll_timeout(), Some(t0 + secs(37)));
        assert_eq!(dog.handle_timeout(t0 + secs(36)), None);
        assert_eq!(dog.handle_timeout(t0 + secs(37)), Some(Verdict::Lost(LostReason::Disconnected)));
    }

    #[test]
    fn recovering_within_the_grace_cancels_the_deadline() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0, CONNECT, GRACE);
        dog.handle_state(LinkState::Connected, t0);
        dog.handle_state(LinkState::Disconnected, t0 + secs(30));
        dog.handle_state(LinkState::Connected, t0 + secs(33));
        assert_eq!(dog.poll_timeout(), None);
        assert_eq!(dog.handle_timeout(t0 + secs(40)), None);
        // A later disconnection gets a fresh grace period.
        dog.handle_state(LinkState::Disconnected, t0 + secs(50));
        assert_eq!(dog.poll_timeout(), Some(t0 + secs(57)));
    }

    #[test]
    fn repeated_disconnected_states_do_not_extend_the_deadline() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0, CONNECT, GRACE);
        dog.handle_state(LinkState::Connected, t0);
        dog.handle_state(LinkState::Disconnected, t0 + secs(30));
        dog.handle_state(LinkState::Connecting, t0 + secs(31));
        dog.handle_state(LinkState::Disconnected, t0 + secs(32));
        assert_eq!(dog.poll_timeout(), Some(t0 + secs(37)));
    }

    #[test]
    fn failure_is_lost_at_once_in_any_phase() {
        let t0 = Instant::now();
        for before in [None, Some(LinkState::Connected), Some(LinkState::Disconnected)] {
            let mut dog = Watchdog::new(t0, CONNECT, GRACE);
            dog.handle_state(LinkState::Connected, t0);
            if let Some(state) = before {
                dog.handle_state(state, t0 + secs(1));
            }
            assert_eq!(dog.handle_state(LinkState::Failed, t0 + secs(2)), Some(Verdict::Lost(LostReason::Failed)));
            assert_eq!(dog.handle_state(LinkState::Failed, t0 + secs(3)), None);
        }
    }

    #[test]
    fn a_local_close_is_never_a_loss() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(t0, CONNECT, GRACE);
        assert_eq!(dog.handle_state(LinkState::Closed, t0), None);
        assert_eq!(dog.poll_timeout(), None);
        assert_eq!(dog.handle_timeout(t0 + secs(100)), None);
        assert_eq!(dog.handle_state(LinkState::Failed, t0 + secs(100)), None);
    }

    #[test]
    fn every_reason_maps_to_network_lost() {
        assert_eq!(LostReason::END_REASON, "network_lost");
        assert_eq!(LostReason::Disconnected.as_str(), "disconnected_timeout");
    }
}
