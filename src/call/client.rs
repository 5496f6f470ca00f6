//! The link from a call to a client that watches it (the caller's widget; later an
//! agent's console): state, speaking, transcript and error messages, never waited on.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;

use super::messages::ServerMessage;

/// Messages held for a slow client or provider before the oldest are dropped.
const OUTBOX_LIMIT: usize = 512;

/// Messages waiting for room in a bounded channel. The call never waits on a send: a
/// slow browser or a provider busy reconnecting must not stall the call's media.
pub(crate) struct Outbox<T> {
    queue: VecDeque<T>,
    dropped: u64,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self { queue: VecDeque::new(), dropped: 0 }
    }
}

impl<T> Outbox<T> {
    /// Sends what fits now, in order, and keeps the rest for the next flush.
    pub(crate) fn push(&mut self, tx: &mpsc::Sender<T>, message: T) {
        self.queue.push_back(message);
        if self.queue.len() > OUTBOX_LIMIT {
            self.queue.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(dropped = self.dropped, "a slow peer of the call: dropping its oldest messages");
            }
        }
        self.flush(tx);
    }

    /// Hands over what the channel has room for.
    pub(crate) fn flush(&mut self, tx: &mpsc::Sender<T>) {
        while let Some(message) = self.queue.pop_front() {
            match tx.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(message)) => {
                    self.queue.push_front(message);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.queue.clear();
                    return;
                }
            }
        }
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// A client's end of a call: what it should be told.
pub struct ClientLink {
    tx: mpsc::Sender<ServerMessage>,
    outbox: Outbox<ServerMessage>,
}

impl ClientLink {
    /// A link sending into `tx` (the WebSocket pump reads the other end).
    pub fn new(tx: mpsc::Sender<ServerMessage>) -> Self {
        Self { tx, outbox: Outbox::default() }
    }

    /// Another link to the same client, with its own queue (for a leg's signaling).
    pub fn another(&self) -> Self {
        Self::new(self.tx.clone())
    }

    /// Sends without waiting. Live text and speaking states are superseded by the next
    /// one: when the client is behind, they are dropped rather than queued.
    pub fn send(&mut self, message: ServerMessage) {
        let droppable =
            matches!(message, ServerMessage::Speaking { .. } | ServerMessage::Transcript { is_final: false, .. });
        if droppable && (!self.outbox.is_empty() || self.tx.capacity() == 0) {
            return;
        }
        // The client may be gone; the call still ends properly without it.
        self.outbox.push(&self.tx, message);
    }

    /// Hands over what could not be sent before.
    pub fn flush(&mut self) {
        self.outbox.flush(&self.tx);
    }

    /// The last word: flushes, then waits up to `limit` for room for `message`.
    pub async fn send_last(mut self, message: ServerMessage, limit: Duration) {
        self.flush();
        let _ = tokio::time::timeout(limit, self.tx.send(message)).await;
    }
}
