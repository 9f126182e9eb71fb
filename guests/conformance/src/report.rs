//! Case bookkeeping and output: `ok`/`FAIL`/`skip` lines and the final
//! `N passed, M failed`.

use rt::console::{Dec, Hex};
use rt::outln;

/// Why a case failed: what was compared, what came back, what was due.
pub struct Mismatch {
    what: &'static str,
    got: u64,
    want: u64,
}

/// The result of one case.
pub type Outcome = Result<(), Mismatch>;

/// Fails with `what` unless `got == want`.
pub fn eq(what: &'static str, got: u64, want: u64) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(Mismatch { what, got, want })
    }
}

/// Fails with `what` unless `cond` (got 0, want 1).
pub fn check(what: &'static str, cond: bool) -> Outcome {
    eq(what, u64::from(cond), 1)
}

/// Fails with the vector if `r` is an exception.
pub fn no_fault<T>(r: Result<T, rt::fault::Fault>) -> Result<T, Mismatch> {
    r.map_err(|f| Mismatch {
        what: "unexpected exception, vector",
        got: f.vector,
        want: u64::MAX,
    })
}

/// Counts of passed and failed cases.
#[derive(Default)]
pub struct Report {
    passed: u64,
    failed: u64,
}

impl Report {
    /// Runs one case and prints its line.
    pub fn case(&mut self, row: &str, what: &str, f: impl FnOnce() -> Outcome) {
        match f() {
            Ok(()) => {
                self.passed += 1;
                outln!("ok ", row, " ", what);
            }
            Err(m) => {
                self.failed += 1;
                outln!(
                    "FAIL ",
                    row,
                    " ",
                    what,
                    ": ",
                    m.what,
                    " got ",
                    Hex(m.got),
                    " want ",
                    Hex(m.want)
                );
            }
        }
    }

    /// A row this run does not exercise, and why.
    pub fn skip(&mut self, row: &str, what: &str, why: &str) {
        outln!("skip ", row, " ", what, " (", why, ")");
    }

    /// Prints the summary and ends the VM: status 0 only without failures.
    pub fn finish(&self) -> ! {
        outln!(Dec(self.passed), " passed, ", Dec(self.failed), " failed");
        rt::exit(if self.failed == 0 { 0 } else { 1 })
    }
}
