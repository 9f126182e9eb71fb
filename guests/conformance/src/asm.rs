//! Assembly fragments shared by the `global_asm!` routines of [`crate::probe`],
//! [`crate::compat`] and [`crate::cpl3`], as macros expanding to template
//! lines.

/// Saves the callee-saved registers of the SysV ABI (RBX, RBP, R12–R15) on
/// the stack; [`restore_callee_saved!`] undoes it.
macro_rules! save_callee_saved {
    () => {
        "push rbx\npush rbp\npush r12\npush r13\npush r14\npush r15"
    };
}

/// Restores what [`save_callee_saved!`] saved (then `ret` returns to the
/// Rust caller).
macro_rules! restore_callee_saved {
    () => {
        "pop r15\npop r14\npop r13\npop r12\npop rbp\npop rbx"
    };
}

/// Reloads DS, ES and SS with the flat data selector 0x10 (the same in the
/// boot GDT and in [`crate::cpl3`]'s); clobbers AX.
macro_rules! reload_flat_data {
    () => {
        "mov ax, 0x10\nmov ds, ax\nmov es, ax\nmov ss, ax"
    };
}
