//! The guest side of rep hypercalls (docs/contract.md §1–§2):
//! reissue a call that returned SUCCESS before finishing its list, from
//! rep start = reps completed, and stop when the hypervisor makes no
//! progress instead of looping forever.

use hvcall_abi::{HvStatus, HypercallResult};

/// How a rep call ended without completing every element.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepError {
    /// The hypervisor returned an error status for element `reps_completed`.
    #[error("{status} at element {reps_completed}")]
    Failed {
        /// The status returned.
        status: HvStatus,
        /// Reps completed (absolute): the failing element's index.
        reps_completed: u16,
    },
    /// SUCCESS came back with reps completed not beyond the rep start.
    #[error("no progress: reps completed {reps_completed} with rep start {rep_start}")]
    NoProgress {
        /// The rep start of the call.
        rep_start: u16,
        /// Reps completed it returned.
        reps_completed: u16,
    },
    /// SUCCESS came back with reps completed beyond the rep count.
    #[error("reps completed {reps_completed} beyond rep count {count}")]
    Overrun {
        /// The rep count of the call.
        count: u16,
        /// Reps completed it returned.
        reps_completed: u16,
    },
}

/// Runs a rep call of `count` elements to completion. `call(rep_start)`
/// issues the hypercall with that rep start and returns its result.
///
/// Each reissue starts strictly further than the previous one, so at most
/// `count` calls are made.
///
/// ```
/// use hvcall_abi::{HvStatus, HypercallResult};
/// // A hypervisor that does two elements per call.
/// let mut starts = Vec::new();
/// let r = hvcall_guest::run_rep_call(5, |s| {
///     starts.push(s);
///     HypercallResult::of(HvStatus::SUCCESS, (s + 2).min(5))
/// });
/// assert_eq!(r, Ok(()));
/// assert_eq!(starts, [0, 2, 4]);
/// ```
pub fn run_rep_call(
    count: u16,
    mut call: impl FnMut(u16) -> HypercallResult,
) -> Result<(), RepError> {
    let mut rep_start = 0;
    loop {
        let result = call(rep_start);
        let reps_completed = result.reps_completed();
        let status = result.status();
        if !status.is_success() {
            return Err(RepError::Failed {
                status,
                reps_completed,
            });
        }
        if reps_completed == count {
            return Ok(());
        }
        if reps_completed > count {
            return Err(RepError::Overrun {
                count,
                reps_completed,
            });
        }
        if reps_completed <= rep_start {
            return Err(RepError::NoProgress {
                rep_start,
                reps_completed,
            });
        }
        rep_start = reps_completed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn ok(done: u16) -> HypercallResult {
        HypercallResult::of(HvStatus::SUCCESS, done)
    }

    #[test]
    fn complete_in_one_call() {
        let mut calls = 0;
        assert_eq!(
            run_rep_call(7, |s| {
                calls += 1;
                assert_eq!(s, 0);
                ok(7)
            }),
            Ok(())
        );
        assert_eq!(calls, 1);
    }

    #[test]
    fn early_success_is_reissued_from_reps_completed() {
        let mut starts = Vec::new();
        let answers = [3, 4, 9];
        assert_eq!(
            run_rep_call(9, |s| {
                starts.push(s);
                ok(answers[starts.len() - 1])
            }),
            Ok(())
        );
        assert_eq!(starts, [0, 3, 4]);
    }

    #[test]
    fn error_stops_with_status_and_index() {
        let mut calls = 0;
        let r = run_rep_call(9, |s| {
            calls += 1;
            if s == 0 {
                ok(5)
            } else {
                HypercallResult::of(HvStatus::INVALID_PARAMETER, 6)
            }
        });
        assert_eq!(
            r,
            Err(RepError::Failed {
                status: HvStatus::INVALID_PARAMETER,
                reps_completed: 6
            })
        );
        assert_eq!(calls, 2);
    }

    #[test]
    fn no_progress_is_an_error_not_a_hang() {
        let mut calls = 0;
        let r = run_rep_call(9, |_| {
            calls += 1;
            ok(2)
        });
        assert_eq!(
            r,
            Err(RepError::NoProgress {
                rep_start: 2,
                reps_completed: 2
            })
        );
        assert_eq!(calls, 2);
        assert_eq!(
            run_rep_call(9, |_| ok(0)),
            Err(RepError::NoProgress {
                rep_start: 0,
                reps_completed: 0
            })
        );
    }

    #[test]
    fn going_backwards_or_beyond_count_is_an_error() {
        let mut n = 0;
        let r = run_rep_call(9, |_| {
            n += 1;
            ok(if n == 1 { 5 } else { 3 })
        });
        assert_eq!(
            r,
            Err(RepError::NoProgress {
                rep_start: 5,
                reps_completed: 3
            })
        );
        assert_eq!(
            run_rep_call(4, |_| ok(5)),
            Err(RepError::Overrun {
                count: 4,
                reps_completed: 5
            })
        );
    }
}
