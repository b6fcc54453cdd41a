//! Catching the panics of code that is known to panic on bad input — burn's record decoding,
//! GPU runtimes that fail to start — and keeping them off standard error, from any number of
//! threads at once.
//!
//! Swapping the process-wide panic hook around each call is not safe: two threads doing it at
//! once can each take the other's silent hook and put it back last, which leaves every later
//! panic of the program silent. Instead one hook is installed, once, and stays. It keeps a panic
//! quiet while the panicking thread is inside [`catch_quietly`], or while any thread is inside
//! [`catch_quietly_anywhere`] (for code that panics on threads it does not own), and hands every
//! other panic to the hook that was in place before: the default one, which prints the message,
//! or one the program had set. The first call of either function installs it; a hook the
//! program sets later replaces it, and quiet sections then print their panics, nothing worse.

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

/// Runs `f`; a panic of this thread inside it is kept off standard error and returned as
/// `Err(its message)`.
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    QUIET_DEPTH.with(|depth| depth.set(depth.get() + 1));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET_DEPTH.with(|depth| depth.set(depth.get() - 1));
    outcome.map_err(|payload| message(&*payload))
}

/// Runs `f`, keeping the panics of every thread off standard error while it runs (one such
/// section at a time). If `f` panics, returns `Err` with the message of the first panic of any
/// thread during the section: a runtime's own thread may panic first with the real cause.
pub fn catch_quietly_anywhere<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    install_hook();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    *lock_anywhere() = Some(None);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    let first = lock_anywhere().take().flatten();
    outcome.map_err(|payload| first.unwrap_or_else(|| message(&*payload)))
}

fn install_hook() {
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
