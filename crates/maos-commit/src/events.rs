//! Stage 6: the commit event bus. Bounded per subscriber; a slow subscriber
//! loses events (counted) instead of stalling commits.

use crate::effector::OutputLabel;
use crate::error::Stage;
use maos_model::{AgentId, EffectClass, IntentId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};

/// Subscribers at once: bounds the fan-out work per commit.
pub const SUBSCRIBERS_MAX: usize = 64;
/// Largest queue one subscriber may ask for: a subscriber cannot make the
/// kernel buffer unbounded events.
pub const SUBSCRIBER_QUEUE_MAX: usize = 65_536;

/// What happened to an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The effect committed.
    Committed {
        /// The output's label (the kernel raises the session label on Untrusted).
        label: OutputLabel,
        /// One line.
        summary: String,
    },
    /// The commit failed at a stage.
    Failed {
        /// The stage.
        stage: Stage,
        /// Stable code.
        code: &'static str,
    },
    /// An undo compensated the effect.
    Undone,
}

/// One commit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEvent {
    /// The intent.
    pub intent: IntentId,
    /// Who asked.
    pub agent: AgentId,
    /// The action.
    pub action: String,
    /// The class it ran under.
    pub class: EffectClass,
    /// What happened.
    pub outcome: EventOutcome,
}

/// A bounded broadcast of [`CommitEvent`]s.
#[derive(Debug, Default)]
pub struct EventBus {
    subscribers: Mutex<Vec<SyncSender<CommitEvent>>>,
    dropped: AtomicU64,
}

impl EventBus {
    /// A bus with no subscribers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscription with a queue of `capacity` events (clamped to
    /// 1..=[`SUBSCRIBER_QUEUE_MAX`]); `None` at [`SUBSCRIBERS_MAX`].
    #[must_use]
    pub fn subscribe(&self, capacity: usize) -> Option<Receiver<CommitEvent>> {
        let mut subs = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        if subs.len() >= SUBSCRIBERS_MAX {
            return None;
        }
        let (tx, rx) = sync_channel(capacity.clamp(1, SUBSCRIBER_QUEUE_MAX));
        subs.push(tx);
        Some(rx)
    }

    /// Sends `event` to every subscriber without blocking; full queues drop it
    /// (counted in [`EventBus::dropped`]), closed ones are removed.
    pub fn publish(&self, event: &CommitEvent) {
        let mut subs = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subs.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Events dropped because a subscriber's queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8) -> CommitEvent {
        CommitEvent {
            intent: IntentId::new_v7(1_700_000_000_000, [n; 10]),
            agent: AgentId::new("a").unwrap(),
            action: "fs.write".into(),
            class: EffectClass::Write,
            outcome: EventOutcome::Undone,
        }
    }

    #[test]
    fn a_full_subscriber_loses_events_without_blocking_and_closed_ones_are_dropped() {
        let bus = EventBus::new();
        let slow = bus.subscribe(1).unwrap();
        let gone = bus.subscribe(4).unwrap();
        drop(gone);
        bus.publish(&event(1));
        bus.publish(&event(2));
        assert_eq!(slow.try_iter().count(), 1);
        assert_eq!(bus.dropped(), 1);
        assert_eq!(bus.subscribers.lock().unwrap().len(), 1);
    }

    #[test]
    fn subscribers_are_bounded() {
        let bus = EventBus::new();
        let subs: Vec<_> = (0..SUBSCRIBERS_MAX).filter_map(|_| bus.subscribe(1)).collect();
        assert_eq!(subs.len(), SUBSCRIBERS_MAX);
        assert!(bus.subscribe(1).is_none());
    }
}
