//! The synthetic MSRs and the hypercall page: guest OS ID, enabling the
//! page (docs/contract.md §6) and the raw x64 hypercall
//! through it (docs/contract.md §4, x64 row).

#[cfg(target_arch = "x86_64")]
use core::arch::asm;

#[cfg(target_arch = "x86_64")]
use hvcall_abi::msr;
#[cfg(target_arch = "x86_64")]
use hvcall_abi::value::HypercallMsr;

/// Why the hypercall page could not be enabled.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The page's GPA is not 4 KiB aligned.
    #[error("hypercall page GPA {gpa:#x} is not page aligned")]
    Misaligned {
        /// The GPA passed in.
        gpa: u64,
    },
    /// The MSR is locked (the TLFS makes every write fault until reset).
    #[error("hypercall MSR is locked with value {msr:#x}")]
    Locked {
        /// The MSR value read.
        msr: u64,
    },
    /// After the write the MSR does not read back enabled at the page (for
    /// example because the guest OS ID is still 0).
    #[error("hypercall MSR reads back {readback:#x} after writing {written:#x}")]
    NotEnabled {
        /// The value written.
        written: u64,
        /// The value read back.
        readback: u64,
    },
}

/// Reads an MSR (x86-64 only).
///
/// # Safety
/// Must run at CPL 0; an MSR the CPU or hypervisor does not accept raises #GP.
#[cfg(target_arch = "x86_64")]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees CPL 0 and that a #GP is acceptable;
    // RDMSR touches no memory.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Writes an MSR (x86-64 only).
///
/// # Safety
/// Must run at CPL 0, and the write must not break the running code (for
/// example by moving the hypercall page over live data).
#[cfg(target_arch = "x86_64")]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees CPL 0 and that the write is harmless.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
    }
}

/// Writes the guest OS ID MSR (0x40000000). It must be non-zero before the
/// hypercall page can be enabled; writing 0 disables the page.
///
/// # Safety
/// Must run at CPL 0 under a hypervisor that implements the MSR ("Hv#1").
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_guest_os_id(id: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { wrmsr(msr::GUEST_OS_ID, id) }
}

/// Enables the hypercall page at guest-physical page `gpa`, which the
/// caller maps at virtual address `va`: reads the MSR, writes
/// `GPFN | Enable` (keeping the RsvdP bits), and reads it back.
///
/// From then on the page is an overlay: whatever RAM was there is hidden
/// while the page is enabled.
///
/// # Safety
/// Must run at CPL 0 after a non-zero guest OS ID was written, and the page
/// at `gpa`/`va` must not hold anything the program still uses.
#[cfg(target_arch = "x86_64")]
pub unsafe fn enable_hypercall_page(gpa: u64, va: *const u8) -> Result<HypercallPage, PageError> {
    if !gpa.is_multiple_of(hvcall_abi::PAGE_SIZE) {
        return Err(PageError::Misaligned { gpa });
    }
    // SAFETY: forwarded from the caller (CPL 0, "Hv#1" hypervisor).
    let old = HypercallMsr::from_bits(unsafe { rdmsr(msr::HYPERCALL) });
    if old.locked() {
        return Err(PageError::Locked {
            msr: old.into_bits(),
        });
    }
    let written = HypercallMsr::new()
        .with_reserved_p(old.reserved_p())
        .with_page_gpa(gpa)
        .with_enable(true)
        .into_bits();
    // SAFETY: the caller gave up the page; the write only maps the overlay.
    let readback = unsafe {
        wrmsr(msr::HYPERCALL, written);
        rdmsr(msr::HYPERCALL)
    };
    let back = HypercallMsr::from_bits(readback);
    if !back.enable() || back.page_gpa() != gpa {
        return Err(PageError::NotEnabled { written, readback });
    }
    Ok(HypercallPage { va })
}

/// The register file of the XMM fast forms (docs/contract.md §3): pair 0 is
/// RDX (low) and R8 (high), pair k is XMM(k-1) for k = 1..6.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FastRegisters {
    /// `[low, high]` qwords of each pair.
    pub pairs: [[u64; 2]; 7],
}

const _: () = assert!(core::mem::size_of::<FastRegisters>() == 112);

/// An enabled hypercall page, called at its virtual address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HypercallPage {
    va: *const u8,
}

impl HypercallPage {
    /// A page enabled by other means (for tests that drive the MSR
    /// themselves).
    ///
    /// # Safety
    /// `va` must map an enabled hypercall page.
    pub const unsafe fn from_raw(va: *const u8) -> Self {
        Self { va }
    }

    /// The page's virtual address.
    pub const fn address(&self) -> *const u8 {
        self.va
    }

    /// One x64 hypercall, as is: RCX = `control`, RDX = `input`, R8 =
    /// `output`; returns RAX (the result value). Nothing is checked, so
    /// malformed calls can be sent on purpose.
    ///
    /// # Safety
    /// Must run at CPL 0. The hypervisor may write guest memory at the
    /// output GPA (up to a page), which must not hold live Rust data other
    /// than what the caller expects to be written.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn hypercall(&self, control: u64, input: u64, output: u64) -> u64 {
        let result;
        // SAFETY: the page is an enabled hypercall page (constructor
        // contract) that returns with `ret`; the convention changes RAX and
        // RCX (rep start), and we also let RDX and R8 be clobbered in case
        // a hypervisor treats them as scratch. The asm is not `nomem`: the
        // hypervisor writes the output list.
        unsafe {
            asm!(
                "call {page}",
                page = in(reg) self.va,
                inout("rcx") control => _,
                inout("rdx") input => _,
                inout("r8") output => _,
                out("rax") result,
            );
        }
        result
    }

    /// One XMM fast hypercall: loads RDX, R8 and XMM0–5 from `regs`, calls
    /// with RCX = `control`, stores RDX, R8 and XMM0–5 back into `regs`
    /// and returns RAX. XMM0–5 are saved and restored around the call, so
    /// the caller's XMM state is untouched; only plain `movdqu` moves are
    /// used (SSE arithmetic is not emulated at CPL 0 on some hosts).
    ///
    /// # Safety
    /// Must run at CPL 0 with CR4.OSFXSR set.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn hypercall_fast(&self, control: u64, regs: &mut FastRegisters) -> u64 {
        let result;
        // SAFETY: `regs` is a valid 112-byte buffer; the stack area used to
        // save XMM0-5 is below RSP and released before the block ends; the
        // page returns with `ret` and changes only RAX, RCX and the
        // fast-output registers (RDX, R8, XMM0-5), which are all declared
        // clobbered or saved and restored here.
        unsafe {
            asm!(
                "sub rsp, 96",
                "movdqu [rsp], xmm0",
                "movdqu [rsp + 16], xmm1",
                "movdqu [rsp + 32], xmm2",
                "movdqu [rsp + 48], xmm3",
                "movdqu [rsp + 64], xmm4",
                "movdqu [rsp + 80], xmm5",
                "mov rdx, [{regs}]",
                "mov r8, [{regs} + 8]",
                "movdqu xmm0, [{regs} + 16]",
                "movdqu xmm1, [{regs} + 32]",
                "movdqu xmm2, [{regs} + 48]",
                "movdqu xmm3, [{regs} + 64]",
                "movdqu xmm4, [{regs} + 80]",
                "movdqu xmm5, [{regs} + 96]",
                "call {page}",
                "mov [{regs}], rdx",
                "mov [{regs} + 8], r8",
                "movdqu [{regs} + 16], xmm0",
                "movdqu [{regs} + 32], xmm1",
                "movdqu [{regs} + 48], xmm2",
                "movdqu [{regs} + 64], xmm3",
                "movdqu [{regs} + 80], xmm4",
                "movdqu [{regs} + 96], xmm5",
                "movdqu xmm0, [rsp]",
                "movdqu xmm1, [rsp + 16]",
                "movdqu xmm2, [rsp + 32]",
                "movdqu xmm3, [rsp + 48]",
                "movdqu xmm4, [rsp + 64]",
                "movdqu xmm5, [rsp + 80]",
                "add rsp, 96",
                regs = in(reg) regs as *mut FastRegisters,
                page = in(reg) self.va,
                inout("rcx") control => _,
                out("rdx") _,
                out("r8") _,
                out("rax") result,
            );
        }
        result
    }
}
