//! Reused threads for effect executions. An execution runs on its own thread so
//! the pipeline can stop waiting at the lock timeout even if the effector never
//! returns; spawning a thread per execution cost more than most effects, so
//! finished threads wait for the next job instead of exiting.
//!
//! Guarantees: a thread that is still running a timed-out job is never handed
//! another one (it rejoins the idle list only when its job returns); at most
//! [`EFFECT_THREADS_IDLE_MAX`] idle threads are kept; a thread that cannot be
//! spawned is an error, never a silent inline run.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

/// Idle effect threads kept for reuse; more concurrent executions spawn more
/// threads, which exit when they finish and the idle list is full.
pub const EFFECT_THREADS_IDLE_MAX: usize = 64;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
pub(crate) struct EffectThreads {
    idle: Arc<Mutex<Vec<Sender<Job>>>>,
}

impl std::fmt::Debug for EffectThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EffectThreads").field("idle", &self.idle.lock().map_or(0, |v| v.len())).finish()
    }
}

impl EffectThreads {
    /// Runs `job` on an idle thread, or a new one.
    pub(crate) fn run(&self, job: Job) -> std::io::Result<()> {
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
        let (tx, rx) = channel::<Job>();
        let idle = Arc::clone(&self.idle);
        let me = tx.clone();
        std::thread::Builder::new().name("maos-effect".into()).spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
                let Ok(mut list) = idle.lock() else { return };
                if list.len() >= EFFECT_THREADS_IDLE_MAX {
                    return;
                }
                list.push(me.clone());
            }
        })?;
        tx.send(job).map_err(|_| std::io::Error::other("new effect thread exited"))
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
}
