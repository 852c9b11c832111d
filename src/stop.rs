//! Stopping early: the signals that end a run, and the brake that every wait of the run
//! watches, so that a stop is noticed at once wherever the run is waiting (for an
//! upload slot, a request, the encoder, the end of the uploads, the publish step).
//!
//! Owns: the signal handlers, the brake's state, and the immediate exit at a second
//! signal. Must not touch: what a stop means for objects and STATE; `target` decides
//! that. The brake is also pulled by the first upload that fails for good: after it, no
//! new request starts, so a failing run ends within one request's retries.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{Error, Result, exit_code};

/// Why the run stops taking on work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Halt {
    /// The first stop signal received, by name.
    pub signal: Option<&'static str>,
    /// An upload failed for good.
    pub failed: bool,
}

impl Halt {
    fn is_on(&self) -> bool {
        self.signal.is_some() || self.failed
    }

    /// The error for work refused because of the halt.
    fn error(&self) -> Error {
        match self.signal {
            Some(signal) => Error::Interrupted(signal),
            None => Error::Halted,
        }
    }
}

/// Shared by every part of the run; pulling it wakes every wait that watches it.
#[derive(Clone, Default)]
pub struct Brake {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: watch::Sender<Halt>,
    /// The first signal again, where the reader's loop looks at it for every line.
    signal: OnceLock<&'static str>,
}

impl Brake {
    /// Records a stop signal; the first one received is the one that counts.
    pub fn signal(&self, name: &'static str) {
        if self.inner.signal.set(name).is_ok() {
            self.inner
                .state
                .send_modify(|halt| halt.signal = Some(name));
        }
    }

    /// Records that an upload failed for good: no new request starts after it.
    pub fn failed(&self) {
        let state = &self.inner.state;
        state.send_if_modified(|halt| !std::mem::replace(&mut halt.failed, true));
    }

    /// The signal that asked the run to stop, if one has.
    pub fn stopped(&self) -> Result<()> {
        match self.inner.signal.get() {
            Some(signal) => Err(Error::Interrupted(signal)),
            None => Ok(()),
        }
    }

    /// Ends when the brake is pulled, with the error for refused work.
    pub async fn pulled(&self) -> Error {
        let mut watching = self.inner.state.subscribe();
        match watching.wait_for(Halt::is_on).await {
            Ok(halt) => halt.error(),
            Err(_) => Error::Halted,
        }
    }

    /// `work`, unless the brake is pulled first (or already was).
    pub async fn unless_pulled<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            error = self.pulled() => Err(error),
            done = work => done,
        }
    }
}

/// Held while a STATE line is written, so an exit at a second signal never cuts one.
static STATE_LINE: Mutex<()> = Mutex::new(());

/// Taken around each STATE written.
pub fn writing_state() -> MutexGuard<'static, ()> {
    STATE_LINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long uploads already completing may go on after `signal`.
pub fn grace(signal: &str, shutdown_timeout: Duration) -> Duration {
    if signal == "SIGQUIT" {
        Duration::ZERO
    } else {
        shutdown_timeout
    }
}

/// Installs the handlers: the first signal pulls the brake (the run then stops in
/// order), a second one exits at once, after any STATE line being written is whole.
pub fn watch_signals(runtime: &tokio::runtime::Runtime, brake: &Brake) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let _entered = runtime.enter();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let brake = brake.clone();
    runtime.spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => "SIGHUP",
                _ = quit.recv() => "SIGQUIT",
            };
            if brake.stopped().is_err() {
                exit_now(name);
            }
            brake.signal(name);
        }
    });
    Ok(())
}

/// A second signal: one line, then exit, without waiting for anything but a STATE
/// line being written (for a second at most).
fn exit_now(signal: &'static str) -> ! {
    let until = Instant::now() + Duration::from_secs(1);
    let _line = loop {
        match STATE_LINE.try_lock() {
            Ok(guard) => break Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => break Some(e.into_inner()),
            Err(_) if Instant::now() >= until => break None,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let _ = writeln!(
        std::io::stderr(),
        "target-s3: error: stopped by a second signal ({signal}) at once: uploads still open are left to the bucket's lifecycle rule; run again from the last STATE written"
    );
    std::process::exit(i32::from(exit_code(signal)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal() {
        let codes: Vec<u8> = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"]
            .iter()
            .map(|s| exit_code(s))
            .collect();
        assert_eq!(codes, [129, 130, 131, 143]);
        assert_eq!(Error::Interrupted("SIGHUP").exit_code(), 129);
        assert_eq!(grace("SIGQUIT", Duration::from_secs(30)), Duration::ZERO);
        assert_eq!(
            grace("SIGTERM", Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn the_brake_ends_waits_with_the_reason() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let brake = Brake::default();
        let never = || std::future::pending::<Result<()>>();
        assert!(brake.stopped().is_ok());
        brake.failed();
        let refused = runtime.block_on(brake.unless_pulled(never()));
        assert!(matches!(refused, Err(Error::Halted)), "{refused:?}");
        assert!(brake.stopped().is_ok(), "a failure is no stop signal");
        brake.signal("SIGHUP");
        brake.signal("SIGTERM");
        let refused = runtime.block_on(brake.unless_pulled(never()));
        assert!(
            matches!(refused, Err(Error::Interrupted("SIGHUP"))),
            "{refused:?}"
        );
        assert!(matches!(brake.stopped(), Err(Error::Interrupted("SIGHUP"))));
    }
}
