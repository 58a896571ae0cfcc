//! Reused threads for effect executions. An execution runs on its own thread so
//! the pipeline can stop waiting at the lock timeout even if the effector never
//! returns; spawning a thread per execution cost more than most effects, so
//! finished threads wait for the next job instead of exiting.
//!
//! Guarantees: a thread that is still running a timed-out job is never handed
//! another one (it rejoins the idle list only when its job returns); at most
//! [`EFFECT_THREADS_IDLE_MAX`] idle threads are kept; at most
//! [`EFFECT_THREADS_MAX`] exist at once (hung ones included), beyond which an
//! execution is refused with `EFFECT-BUSY`; a thread that cannot be spawned is
//! an error, never a silent inline run.

use crate::error::EffectError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

/// Idle effect threads kept for reuse; more concurrent executions spawn more
/// threads, which exit when they finish and the idle list is full.
pub const EFFECT_THREADS_IDLE_MAX: usize = 64;

/// Effect threads alive at once, busy, idle or hung past their deadline.
/// Stops an agent whose effects never return (a blocking upstream, a slow
/// remote) from growing the daemon by one thread per call until the machine
/// runs out: past it, executions are refused until threads return.
pub const EFFECT_THREADS_MAX: usize = 256;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
pub(crate) struct EffectThreads {
    idle: Arc<Mutex<Vec<Sender<Job>>>>,
    alive: Arc<AtomicUsize>,
}

/// Decrements the live-thread count when a thread ends, however it ends.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for EffectThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectThreads").field("idle", &self.idle.lock().map_or(0, |v| v.len())).finish()
    }
}

impl EffectThreads {
    /// Runs `job` on an idle thread, or a new one.
    ///
    /// # Errors
    /// [`EffectError::Busy`] at [`EFFECT_THREADS_MAX`] live threads;
    /// [`EffectError::Io`] if the system refuses a thread.
    pub(crate) fn run(&self, job: Job) -> Result<(), EffectError> {
        let mut job = job;
        loop {
            let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some(worker) = idle else { break };
            match worker.send(job) {
                Ok(()) => return Ok(()),
                // That thread has exited: try the next one.
                Err(std::sync::mpsc::SendError(j)) => job = j,
            }
        }
        if self.alive.fetch_add(1, Ordering::SeqCst) >= EFFECT_THREADS_MAX {
            self.alive.fetch_sub(1, Ordering::SeqCst);
            return Err(EffectError::Busy { what: "effect threads", max: EFFECT_THREADS_MAX });
        }
        let alive = Alive(Arc::clone(&self.alive));
        let (tx, rx) = channel::<Job>();
        let idle = Arc::clone(&self.idle);
        let me = tx.clone();
        let spawned = std::thread::Builder::new().name("maos-effect".into()).spawn(move || {
            let _alive = alive;
            while let Ok(job) = rx.recv() {
                job();
                let Ok(mut list) = idle.lock() else { return };
                if list.len() >= EFFECT_THREADS_IDLE_MAX {
                    return;
                }
                list.push(me.clone());
            }
        });
        // On a spawn error the closure (and its `Alive`) was dropped: the count is back.
        spawned.map_err(|e| EffectError::io("spawning an effect thread", &e))?;
        tx.send(job).map_err(|_| EffectError::Io("a new effect thread exited".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn threads_are_reused_and_a_busy_thread_gets_no_second_job() {
        let pool = EffectThreads::default();
        let (tx, rx) = channel();
        let names = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..3 {
            let (tx, names) = (tx.clone(), names.clone());
            pool.run(Box::new(move || {
                names.lock().unwrap().push(std::thread::current().id());
                tx.send(()).unwrap();
            }))
            .unwrap();
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            // Let the thread rejoin the idle list.
            std::thread::sleep(Duration::from_millis(20));
        }
        let names = names.lock().unwrap();
        assert!(names.iter().all(|n| *n == names[0]), "one thread served all three jobs");
        let (block_tx, block_rx) = channel::<()>();
        pool.run(Box::new(move || {
            let _ = block_rx.recv();
        }))
        .unwrap();
        let (tx2, rx2) = channel();
        pool.run(Box::new(move || tx2.send(std::thread::current().id()).unwrap())).unwrap();
        let second = rx2.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_ne!(second, names[0], "the blocked thread was not given the second job");
        drop(block_tx);
    }

    #[test]
    fn attack_effects_that_never_return_are_capped_at_effect_threads_max() {
        let pool = EffectThreads::default();
        let (release_tx, release_rx) = channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (started_tx, started_rx) = channel::<()>();
        for _ in 0..EFFECT_THREADS_MAX {
            let (release_rx, started_tx) = (release_rx.clone(), started_tx.clone());
            pool.run(Box::new(move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.lock().unwrap().recv();
            }))
            .unwrap();
        }
        for _ in 0..EFFECT_THREADS_MAX {
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        let refused = pool.run(Box::new(|| {})).unwrap_err();
        assert_eq!(refused.code(), "EFFECT-BUSY", "{refused}");
        // Threads that return are reusable again.
        drop(release_tx);
        let (tx, rx) = channel();
        let mut accepted = false;
        for _ in 0..500 {
            let tx = tx.clone();
            if pool.run(Box::new(move || tx.send(()).unwrap())).is_ok() {
                accepted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(accepted, "no thread came back after the blocked jobs returned");
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
