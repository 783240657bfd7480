//! Running one piece of work against every member at once, within limits.
//!
//! Each member is an independent task: at most `jobs` are in flight (each one holds a socket
//! and, during key exchange, a core), a slow or dead member costs only its own deadlines, and
//! results come back in inventory order whatever order they finished in. Progress is one
//! aggregate bar on stderr, drawn only when stderr is a terminal (and not `TERM=dumb`), so piped
//! and CI output stays clean.
//!
//! Output that streams as members finish (`--format jsonl`) cannot wait for the ordered
//! result: a [`Progress`] may carry a listener ([`Progress::on_finished`]) that each member's
//! task calls with its own result the moment it is done. The listener is typed by the result it
//! wants, so one `Progress` type serves every pipeline (rows for sweep, outcomes for run) and the
//! pipelines themselves need no extra parameter; the ordered result is returned as before.

use std::any::Any;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::inventory::Member;

/// A member's result as its task finishes, with the time the task took; type-erased so that
/// one [`Progress`] type serves every pipeline.
type Listener = Arc<dyn Fn(&dyn Any, Duration) + Send + Sync>;

/// The aggregate progress bar (hidden unless stderr is a terminal), and an optional listener
/// told of each member's result as it finishes.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
    listener: Option<Listener>,
}

impl Progress {
    pub fn new(total: usize, verb: &str) -> Progress {
        // A dumb terminal cannot redraw a line: no bar there either.
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        let bar = if std::io::stderr().is_terminal() && !dumb {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} members {elapsed} {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(verb.to_string());
        Progress {
            bar,
            listener: None,
        }
    }

    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            listener: None,
        }
    }

    /// Call `listener` with each member's result of type `T` (and how long its task took) as
    /// soon as that member's task finishes, from the task itself, so calls may come from several
    /// threads at once and in any order. Results of other types are not passed on; a task that
    /// panicked has no result and is not passed on either (the ordered result says so).
    pub fn on_finished<T: 'static>(
        mut self,
        listener: impl Fn(&T, Duration) + Send + Sync + 'static,
    ) -> Progress {
        self.listener = Some(Arc::new(move |result: &dyn Any, took| {
            if let Some(result) = result.downcast_ref::<T>() {
                listener(result, took);
            }
        }));
        self
    }

    fn done(&self, member: &str, result: &dyn Any, took: Duration) {
        if let Some(listener) = &self.listener {
            listener(result, took);
        }
        self.bar.set_message(member.to_string());
        self.bar.inc(1);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Run `work` for every member, at most `jobs` at once; results in member order, `None` for a
/// task that panicked. Each result is also given to `progress`'s listener as its task ends.
pub async fn map_members<T, F, Fut>(
    members: Vec<Member>,
    jobs: usize,
    progress: &Progress,
    work: F,
) -> Vec<Option<T>>
where
    T: Send + 'static,
    F: Fn(Member) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(jobs.max(1)));
    let work = Arc::new(work);
    let mut set = JoinSet::new();
    let n = members.len();
    for (i, member) in members.into_iter().enumerate() {
        let limit = limit.clone();
        let work = work.clone();
        let progress = progress.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore never closed");
            let name = member.name.clone();
            let started = Instant::now();
            let result = work(member).await;
            progress.done(&name, &result, started.elapsed());
            (i, result)
        });
    }
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, result)) => slots[i] = Some(result),
            // A panic in one member's task must not take the others down.
            Err(e) => tracing::error!("member task failed: {e}"),
        }
    }
    progress.finish();
    slots
}

/// Raise this process's soft open-file limit to its hard limit (many systems start at 1024,
/// and every member in flight holds a socket); returns the soft limit now in force.
pub fn raise_open_files_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}
