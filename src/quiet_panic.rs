//! Catching the panics of code that is known to panic on bad input — burn's record decoding,
//! GPU runtimes that fail to start — as errors, from any number of threads at once, and, if the
//! program asks for it, keeping them off standard error.
//!
//! [`catch_quietly`] and [`catch_quietly_anywhere`] turn a panic into `Err(its message)`. The
//! library touches no process-wide state for it: the panic hook is the program's, which by
//! default prints the message. A program that wants these panics silent calls [`install`] once
//! (the `pixelcnn` program does, first thing). Swapping the hook around each call would not be
//! safe: two threads doing it at once can each take the other's silent hook and put it back
//! last, which leaves every later panic of the program silent. Instead the hook [`install`]
//! puts in place stays: it keeps a panic quiet while the panicking thread is inside
//! [`catch_quietly`], or while any thread is inside [`catch_quietly_anywhere`] (for code that
//! panics on threads it does not own), and hands every other panic to the hook that was in
//! place before. A hook the program sets later replaces it, and quiet sections then print their
//! panics, nothing worse.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::{Mutex, Once};

thread_local! {
    /// How many [`catch_quietly`] calls this thread is inside.
    static QUIET_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// While a [`catch_quietly_anywhere`] section runs: `Some(first panic message, if any yet)`.
static ANYWHERE: Mutex<Option<Option<String>>> = Mutex::new(None);

/// Runs `f`; a panic of this thread inside it is returned as `Err(its message)`, and kept off
/// standard error once [`install`] has been called.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_DEPTH.with(|depth| depth.set(depth.get() + 1));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET_DEPTH.with(|depth| depth.set(depth.get() - 1));
    outcome.map_err(|payload| message(&*payload))
}

/// Runs `f` (one such section at a time); if it panics, returns `Err` with the panic's message.
/// Once [`install`] has been called, the panics of every thread are kept off standard error
/// while it runs, and the message is that of the first panic of any thread during the
/// section: a runtime's own thread may panic first with the real cause.
pub fn catch_quietly_anywhere<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    *lock_anywhere() = Some(None);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    let first = lock_anywhere().take().flatten();
    outcome.map_err(|payload| first.unwrap_or_else(|| message(&*payload)))
}

/// Puts in place, once, the panic hook that keeps the panics of quiet sections off standard
/// error and hands every other panic to the hook in place before.
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !keep_quiet(info) {
                previous(info);
            }
        }));
    });
}

/// Whether the panic `info` belongs to a quiet section; the first panic of a section of
/// [`catch_quietly_anywhere`] is recorded.
fn keep_quiet(info: &PanicHookInfo) -> bool {
    if QUIET_DEPTH
        .try_with(|depth| depth.get() > 0)
        .unwrap_or(false)
    {
        return true;
    }
    match lock_anywhere().as_mut() {
        Some(first) => {
            first.get_or_insert_with(|| message(info.payload()));
            true
        }
        None => false,
    }
}

fn lock_anywhere() -> std::sync::MutexGuard<'static, Option<Option<String>>> {
    ANYWHERE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The text of a panic payload.
fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch_quietly(|| 7), Ok(7));
        assert_eq!(
            catch_quietly(|| -> u8 { panic!("bad record {}", 3) }),
            Err("bad record 3".to_string())
        );
        // Nested sections: the inner one catches, the outer one goes on.
        let nested = catch_quietly(|| catch_quietly(|| -> u8 { panic!("inner") }));
        assert_eq!(nested, Ok(Err("inner".to_string())));
    }
}
