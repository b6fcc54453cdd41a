//! Ranks as threads of one process: the batch of each step split into shards trained side by
//! side, each shard on its own thread with its own share of the CPU's threads.
//!
//! On a CPU the ranks of [`crate::parallel`] pay off inside one process too. A training step is
//! hundreds of tensor operations, most of them small; one pool of threads shares out each of
//! them, and every hand-off waits for the slowest thread. Ranks that each run their own shard's
//! operations on their own threads hand off nothing until the one sum of their gradients. The
//! sum adds the ranks' values in rank order, so a run's result depends on its number of ranks
//! (as it would on the order of any sum) but not on timing or on the threads each rank gets.
//! Measured on config S and P (docs/speed.md): a step in two shards of one thread each takes
//! 0.77–0.86× the time of one shard on both threads.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rayon::{ThreadPool, ThreadPoolBuilder};

use super::{Collective, ParallelError};

/// One thread's place among the ranks of [`in_threads`]. Dropping it (the thread finished,
/// returned an error or panicked) tells the others that no more sums can complete.
pub struct ThreadRank {
    rank: usize,
    meeting: Arc<Meeting>,
}

/// Where the ranks' sums meet.
struct Meeting {
    ranks: usize,
    state: Mutex<Round>,
    done: Condvar,
}

/// The sum under way.
struct Round {
    /// Each rank's values for the current sum, by rank.
    values: Vec<Vec<f32>>,
    arrived: usize,
    /// The sum of the last completed round.
    total: Vec<f32>,
    /// How many sums have completed.
    completed: u64,
    /// Whether a rank has left.
    departed: bool,
}

impl Meeting {
    fn lock(&self) -> MutexGuard<'_, Round> {
        // A rank that panicked while holding the lock left the round's values intact.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.meeting.ranks
    }

    fn members(&self) -> &'static str {
        "threads"
    }

    fn sum(&self, values: &mut [f32]) -> Result<(), ParallelError> {
        let mut round = self.meeting.lock();
        if round.departed {
            return Err(ParallelError::Departed);
        }
        round.values[self.rank] = values.to_vec();
        round.arrived += 1;
        let this_round = round.completed;
        if round.arrived == self.meeting.ranks {
            round.total = sum_in_rank_order(&round.values);
            round.arrived = 0;
            round.completed += 1;
            self.meeting.done.notify_all();
        }
        while round.completed == this_round {
            if round.departed {
                return Err(ParallelError::Departed);
            }
            round = self
                .meeting
                .done
                .wait(round)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        values.copy_from_slice(&round.total);
        Ok(())
    }
}

impl Drop for ThreadRank {
    fn drop(&mut self) {
        self.meeting.lock().departed = true;
        self.meeting.done.notify_all();
    }
}

/// The element-wise sum of `values`, added in the order given.
fn sum_in_rank_order(values: &[Vec<f32>]) -> Vec<f32> {
    let mut total = values[0].clone();
    for more in &values[1..] {
        total.iter_mut().zip(more).for_each(|(t, v)| *t += v);
    }
    total
}

/// Each rank's share of threads, and the pools built for them.
type KeptPools = (Vec<usize>, Rc<Vec<ThreadPool>>);

thread_local! {
    /// The pools of this thread's last [`in_threads`], with each one's threads, kept for its
    /// next call with the same shares: building pools starts and stops threads, about a
    /// millisecond a call, which a forward pass in shards would pay every time. (Pools are not
    /// shared between calling threads: a rank waiting for its partners holds its pool's
    /// thread, so two calls sharing pools could each wait for the other.)
    static POOLS: RefCell<Option<KeptPools>> = const { RefCell::new(None) };
}

/// One pool per rank with its share of the current pool's threads (at least one), reused from
/// this thread's last call when the shares are the same.
fn pools(ranks: usize) -> Result<Rc<Vec<ThreadPool>>, ParallelError> {
    let threads = rayon::current_num_threads();
    let shares: Vec<usize> = (0..ranks)
        .map(|rank| (threads / ranks + usize::from(rank < threads % ranks)).max(1))
        .collect();
    POOLS.with_borrow_mut(|cached| {
        if let Some((kept, pools)) = cached
            && *kept == shares
        {
            return Ok(pools.clone());
        }
        let pools = shares
            .iter()
            .map(|&share| {
                ThreadPoolBuilder::new()
                    .num_threads(share)
                    .build()
                    .map_err(|e| ParallelError::Threads(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pools = Rc::new(pools);
        *cached = Some((shares, pools.clone()));
        Ok(pools)
    })
}

/// Runs `work` as `ranks` ranks, each on its own thread inside its own rayon pool with its
/// share of the current pool's threads (at least one), and returns their results by rank. A
/// panic on any rank is raised again here once every rank has stopped.
pub fn in_threads<T: Send>(
    ranks: usize,
    work: impl Fn(&ThreadRank) -> T + Sync,
) -> Result<Vec<T>, ParallelError> {
    let pools = pools(ranks)?;
    let meeting = Arc::new(Meeting {
        ranks,
        state: Mutex::new(Round {
            values: vec![Vec::new(); ranks],
            arrived: 0,
            total: Vec::new(),
            completed: 0,
            departed: false,
        }),
        done: Condvar::new(),
    });
    let work = &work;
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = pools
            .iter()
            .enumerate()
            .map(|(rank, pool)| {
                let me = ThreadRank {
                    rank,
                    meeting: meeting.clone(),
                };
                scope.spawn(move || pool.install(|| work(&me)))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    Ok(outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_gets_the_sum_in_rank_order_round_after_round() {
        let totals = in_threads(3, |rank| {
            (0..50)
                .map(|round| {
                    let mut values = [rank.rank() as f32 + round as f32, 1.0];
                    rank.sum(&mut values).unwrap();
                    values
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
        for round in 0..50 {
            let expected = [3.0 + 3.0 * round as f32, 3.0];
            for rank in &totals {
                assert_eq!(rank[round], expected);
            }
        }
        // The sum is added rank after rank: 1e8 + 1 − 1e8 is 0 in f32, not 1.
        let sums = in_threads(3, |rank| {
            let mut value = [[1e8f32, 1.0, -1e8][rank.rank()]];
            rank.sum(&mut value).unwrap();
            value[0]
        })
        .unwrap();
        assert_eq!(sums, [0.0; 3]);
    }

    #[test]
    fn a_rank_that_stops_releases_the_others_with_an_error() {
        let outcomes = in_threads(3, |rank| {
            if rank.rank() == 1 {
                return Ok(());
            }
            rank.sum(&mut [1.0])
        })
        .unwrap();
        assert!(matches!(outcomes[0], Err(ParallelError::Departed)));
        assert!(outcomes[1].is_ok());
        assert!(matches!(outcomes[2], Err(ParallelError::Departed)));
    }

    #[test]
    fn a_rank_that_panics_releases_the_others_and_the_panic_comes_back() {
        let caught = std::panic::catch_unwind(|| {
            in_threads(2, |rank| {
                if rank.rank() == 0 {
                    panic!("rank 0 fails");
                }
                rank.sum(&mut [1.0])
            })
        });
        let panic = caught.expect_err("the panic is raised again");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"rank 0 fails"));
    }

    #[test]
    fn each_rank_runs_in_its_share_of_the_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(5)
            .build()
            .unwrap();
        let shares = pool
            .install(|| in_threads(2, |_| rayon::current_num_threads()))
            .unwrap();
        assert_eq!(shares, [3, 2]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let shares = pool
            .install(|| in_threads(3, |_| rayon::current_num_threads()))
            .unwrap();
        assert_eq!(shares, [1, 1, 1]);
    }
}
