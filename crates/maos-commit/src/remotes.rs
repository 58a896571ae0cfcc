//! Circuit breakers on the remotes effectors reach (spec §38.4, the
//! "Commit→I/O" interface): one [`Breaker`] per remote an effector names
//! ([`crate::Effector::remote`], e.g. `http:<host>`). A remote that keeps
//! failing (no answer in time, no connection, 5xx) is answered at once with
//! `CIRCUIT-OPEN` and not called; every transition is a `circuit.breaker`
//! record in the log.
//!
//! Bounded: at most [`REMOTE_BREAKERS_MAX`] remotes are tracked; past it a
//! closed breaker with the oldest state is forgotten, and when none is
//! closed a new remote is called without one (an availability aid, never an
//! allow: the DSC decided already).

use crate::breaker::{Admission, Breaker, BreakerState, log_transition};
use crate::error::EffectError;
use maos_wal::Wal;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Remotes with a breaker, at most.
pub const REMOTE_BREAKERS_MAX: usize = 256;

/// The breakers, by remote.
#[derive(Debug)]
pub(crate) struct Remotes {
    slots: Mutex<BTreeMap<String, Breaker>>,
    epoch: Instant,
    /// Conservative mode: every breaker's cooldowns start doubled.
    conservative: AtomicBool,
}

impl Default for Remotes {
    fn default() -> Self {
        Self { slots: Mutex::new(BTreeMap::new()), epoch: Instant::now(), conservative: AtomicBool::new(false) }
    }
}

impl Remotes {
    /// Conservative mode on or off, for every breaker now and later.
    pub(crate) fn set_conservative(&self, on: bool) {
        if self.conservative.swap(on, Ordering::SeqCst) != on
            && let Ok(mut slots) = self.slots.lock()
        {
            slots.values_mut().for_each(|b| b.set_conservative(on));
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Asks `remote`'s breaker for a call (`None`: no breaker, call it).
    ///
    /// # Errors
    /// [`EffectError::CircuitOpen`] while it is open or its probe is out.
    pub(crate) fn admit(&self, remote: &str, wal: &Wal) -> Result<Option<Admission>, EffectError> {
        let now = self.now_ms();
        let (admitted, transition) = {
            let Ok(mut slots) = self.slots.lock() else { return Ok(None) };
            if !slots.contains_key(remote) && slots.len() >= REMOTE_BREAKERS_MAX {
                let closed = slots.iter().find(|(_, b)| b.state() == BreakerState::Closed).map(|(k, _)| k.clone());
                match closed {
                    Some(k) => {
                        slots.remove(&k);
                    }
                    None => return Ok(None),
                }
            }
            let conservative = self.conservative.load(Ordering::SeqCst);
            slots
                .entry(remote.to_owned())
                .or_insert_with(|| {
                    let mut b = Breaker::default();
                    b.set_conservative(conservative);
                    b
                })
                .admit(now)
        };
        if let Some(t) = transition {
            log_transition(wal, remote, &t);
        }
        admitted.map(Some).map_err(|r| {
            let when = if r.retry_in_ms == 0 {
                "a probe is in flight".to_owned()
            } else {
                format!("retry in {} s", r.retry_in_ms.div_ceil(1000))
            };
            EffectError::CircuitOpen(format!(
                "{}: `{remote}` failed repeatedly; its circuit breaker is open ({when})",
                crate::breaker::CODE_CIRCUIT_OPEN
            ))
        })
    }

    /// Records an admitted call's outcome.
    pub(crate) fn record(&self, remote: &str, admission: Admission, ok: bool, wal: &Wal) {
        let now = self.now_ms();
        let transition =
            self.slots.lock().ok().and_then(|mut s| s.get_mut(remote).and_then(|b| b.record(now, admission, ok)));
        if let Some(t) = transition {
            log_transition(wal, remote, &t);
        }
    }

    /// Every tracked remote's breaker, as `maos status` shows it.
    pub(crate) fn views(&self) -> Vec<crate::breaker::BreakerView> {
        let now = self.now_ms();
        self.slots.lock().map(|s| s.iter().map(|(k, b)| b.view(k, now)).collect()).unwrap_or_default()
    }
}
