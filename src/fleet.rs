//! Running one piece of work against every member at once, within limits.
//!
//! Each member is an independent task: at most `jobs` are in flight (each one holds a socket
//! and, during key exchange, a core), a slow or dead member costs only its own deadlines, and
//! results come back in inventory order whatever order they finished in. Progress is one
//! aggregate bar on stderr, drawn only when stderr is a terminal, so piped and CI output stays
//! clean.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::inventory::Member;

/// The aggregate progress bar (hidden unless stderr is a terminal).
#[derive(Clone)]
pub struct Progress(ProgressBar);

impl Progress {
    pub fn new(total: usize, verb: &str) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
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
        Progress(bar)
    }

    pub fn hidden() -> Progress {
        Progress(ProgressBar::hidden())
    }

    fn done(&self, member: &str) {
        self.0.set_message(member.to_string());
        self.0.inc(1);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Run `work` for every member, at most `jobs` at once; results in member order, `None` for a
/// task that panicked.
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
            let rows = work(member).await;
            progress.done(&name);
            (i, rows)
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
