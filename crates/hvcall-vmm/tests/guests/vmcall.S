# A stray VMCALL: KVM here spins on it; only the watchdog ends the VM.
.intel_syntax noprefix
.code64
    vmcall
    mov al, 1
    out 0xF4, al
