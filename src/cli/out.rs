//! Where every command writes: its report on stdout, its messages on stderr.
//!
//! A reader that stops early (`fleetauth sweep … | head -1`) closes the pipe, and the next write
//! fails with EPIPE. `print!` panics on that ("failed printing to stdout: Broken pipe") and the
//! process exits 101. Many CLIs instead restore SIGPIPE's default disposition at the start of
//! `main`, so the kernel ends them quietly on the first such write. fleetauth does not: it is a
//! network client, and with SIGPIPE at its default a write to a connection whose peer has gone
//! (writev on a TCP socket, any write on the ssh-agent's unix socket: neither passes
//! MSG_NOSIGNAL) would kill the whole fleet run, silently, instead of failing one member. So
//! SIGPIPE stays ignored (Rust's default) and every command writes through here (the
//! `out!`/`outln!`/`err!`/`errln!` macros; `clippy::print_stdout` and
//! `clippy::print_stderr` are denied in `cli` and `main` so no `print!` comes back):
//!
//! - a stream whose reader went away (EPIPE) is remembered and everything later written to it
//!   is dropped: the command finishes what it was doing (a provision is never cut off between
//!   two members) and exits with the status it would have had, printing nothing about it;
//! - any other failure to write stdout (a full disk) is reported once on stderr and turns a
//!   successful exit status into 1 ([`exit_status`]): a report that was not written is not a
//!   success. A failure to write stderr has nowhere to be reported and is dropped.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU8, Ordering};

/// The stream still takes output.
const OPEN: u8 = 0;
/// Its reader went away (EPIPE): later output is dropped, the status is unchanged.
const GONE: u8 = 1;
/// Writing failed otherwise: later output is dropped and the run fails.
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);
static STDERR: AtomicU8 = AtomicU8::new(OPEN);

/// Print to stdout, like `print!`, without panicking on a closed or failing stdout.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!($($arg)*)) };
}

/// Print a line to stdout, like `println!`, without panicking on a closed or failing stdout.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Print to stderr, like `eprint!`, without panicking on a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => { $crate::cli::out::stderr(format_args!($($arg)*)) };
}

/// Print a line to stderr, like `eprintln!`, without panicking on a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {err, errln, out, outln};

/// Writes `args` to stdout (and flushes, so a failure is seen here, not at exit).
pub fn stdout(args: fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) != OPEN {
        return;
    }
    if let Err(e) = write_to(&mut io::stdout().lock(), args) {
        let state = if e.kind() == io::ErrorKind::BrokenPipe {
            GONE
        } else {
            FAILED
        };
        if STDOUT.swap(state, Ordering::Relaxed) == OPEN && state == FAILED {
            stderr(format_args!(
                "error: cannot write to standard output: {e}\n"
            ));
        }
    }
}

/// Writes `args` to stderr; a closed or failing stderr drops them.
pub fn stderr(args: fmt::Arguments<'_>) {
    if STDERR.load(Ordering::Relaxed) != OPEN {
        return;
    }
    if write_to(&mut io::stderr().lock(), args).is_err() {
        STDERR.store(GONE, Ordering::Relaxed);
    }
}

fn write_to(w: &mut impl Write, args: fmt::Arguments<'_>) -> io::Result<()> {
    w.write_fmt(args)?;
    w.flush()
}

/// The process's exit status given the command's own `code`: 1 instead of 0 when stdout could
/// not be written for any reason but its reader going away.
pub fn exit_status(code: i32) -> i32 {
    if code == 0 && STDOUT.load(Ordering::Relaxed) == FAILED {
        1
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer failing with one error kind.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(self.0))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_come_back_with_their_kind() {
        let e = write_to(&mut Failing(io::ErrorKind::BrokenPipe), format_args!("x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let mut buf = Vec::new();
        write_to(&mut buf, format_args!("a{}", 1)).unwrap();
        assert_eq!(buf, b"a1");
    }
}
