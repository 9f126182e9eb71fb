//! Per-VP continuation state (docs/contract.md §2).
//!
//! A rep call stopped by the work budget leaves a [`VpState`] holding what
//! its first entry read (the input, which every first entry reads in place
//! into the state, and the target's snapshot) and what
//! identifies its re-entry (instruction pointer, convention, control word
//! apart from rep start, the input/output GPA registers and, for the fast
//! form, the input registers). The state is dropped when the call
//! completes; any other call in between runs to completion in one entry
//! and leaves it in place (docs/contract.md §2).

use hvcall_abi::vtl::Vtl;
use hvcall_abi::HypercallControl;

use crate::checks::Form;
use crate::convention::{CallContext, Convention};
use crate::end::{CallEnd, Kept, Progress};
use crate::fast::MAX_FILE_BYTES;
use crate::input::InputPage;
use crate::registers::CallerRegisters;

/// Continuation state of one VP: at most one pending (continued) call.
///
/// The VMM keeps one per VP and passes it to every
/// [`dispatch`](crate::dispatch()) of that VP. `S` is the
/// [`ReadRegisters::Snapshot`](crate::ReadRegisters::Snapshot) type.
pub struct VpState<S> {
    pending: Option<Pending<S>>,
    /// The input of the call being handled or parked, read in place.
    pub(crate) input: InputPage,
}

impl<S> VpState<S> {
    /// A state with no pending call.
    pub const fn new() -> Self {
        Self {
            pending: None,
            input: InputPage::new(),
        }
    }

    /// Whether a continued call is waiting for its re-entry.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Forget a pending call (for example when the VP is reset). Its next
    /// entry, if any, is then handled as a new call.
    pub fn clear(&mut self) {
        self.pending = None;
    }

    /// Take the pending call if this entry is its re-entry: same
    /// instruction, convention, control word (rep start equal to the index
    /// written), GPA registers, the caller's VTL `vtl` and, for the fast
    /// form, input registers.
    pub(crate) fn take_reentry<R: CallerRegisters + ?Sized>(
        &mut self,
        ctx: &CallContext,
        control: HypercallControl,
        regs: &mut R,
        vtl: u8,
    ) -> Option<Pending<S>> {
        let pending = self.pending.as_ref()?;
        if control.rep_start() != pending.next {
            return None;
        }
        let image = pending.form.image(regs);
        let key = EntryKey::new(ctx, control, regs, vtl, &image);
        if key != pending.key {
            return None;
        }
        self.pending.take()
    }

    /// Store a call stopped before element `pending.next`.
    pub(crate) fn park(&mut self, pending: Pending<S>) {
        self.pending = Some(pending);
    }

    /// What a re-entry's `progress` means for the parked call `pending`
    /// (§2): it completed (the guest never sees that it was continued: its
    /// control register gets back the first entry's rep start), it parks
    /// again before the next element, or its source failed.
    pub(crate) fn after_reentry<E>(
        &mut self,
        mut pending: Pending<S>,
        progress: Progress<E>,
    ) -> CallEnd<E> {
        match progress {
            Progress::Done(result) => CallEnd::ResultAfterContinuation {
                result,
                first_start: pending.first_start,
            },
            Progress::Stopped(next) => {
                pending.next = next;
                self.park(pending);
                CallEnd::Continue(next)
            }
            Progress::HostFailed(e) => CallEnd::HostFailed(e),
        }
    }

    /// Parks a call whose first entry stopped before element `next`,
    /// keyed by the registers of that entry and the caller's VTL `vtl`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn park_first<R: CallerRegisters + ?Sized, E>(
        &mut self,
        ctx: &CallContext,
        control: HypercallControl,
        regs: &mut R,
        form: Form,
        vtl: u8,
        next: u16,
        kept: Kept<S>,
    ) -> CallEnd<E> {
        let image = form.image(regs);
        self.park(Pending {
            key: EntryKey::new(ctx, control, regs, vtl, &image),
            first_start: control.rep_start(),
            next,
            form,
            kept,
        });
        CallEnd::Continue(next)
    }
}

impl<S> Default for VpState<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> core::fmt::Debug for VpState<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VpState")
            .field("pending_next", &self.pending.as_ref().map(|p| p.next))
            .finish()
    }
}

/// A continued call: what its first entry read and where it stopped.
pub(crate) struct Pending<S> {
    /// What identifies the re-entry.
    pub(crate) key: EntryKey,
    /// The rep start of the first entry, restored when the call completes.
    pub(crate) first_start: u16,
    /// The element the re-entry resumes at (written into rep start).
    pub(crate) next: u16,
    /// Memory or fast form, with its layout.
    pub(crate) form: Form,
    /// What the call keeps besides its input (which stays in [`VpState`]).
    pub(crate) kept: Kept<S>,
}

/// The caller's VTL and the registers that identify one call across its
/// entries: a parked call is keyed by (VP, VTL), the VP being the owner
/// of the [`VpState`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryKey {
    /// The caller's VTL (`None` for a number above 15, which no VP has).
    vtl: Option<Vtl>,
    instruction_pointer: u64,
    convention: Convention,
    /// The control word with rep start cleared.
    control: u64,
    input_gpa: u64,
    output_gpa: u64,
    /// The fast form's input registers (all zero for the memory form).
    fast_image: [u8; MAX_FILE_BYTES],
}

impl EntryKey {
    /// The key of the current entry; `fast_image` is the fast input image
    /// (empty for the memory form).
    pub(crate) fn new<R: CallerRegisters + ?Sized>(
        ctx: &CallContext,
        control: HypercallControl,
        regs: &R,
        vtl: u8,
        fast_image: &[u8; MAX_FILE_BYTES],
    ) -> Self {
        Self {
            vtl: Vtl::new(vtl),
            instruction_pointer: ctx.instruction_pointer,
            convention: ctx.convention,
            control: control.with_rep_start(0).into_bits(),
            input_gpa: ctx.convention.input_gpa(regs),
            output_gpa: ctx.convention.output_gpa(regs),
            fast_image: *fast_image,
        }
    }
}
