# Benchmark loop for benches/hypercall_cost.rs. The host fills in:
# 0x200000 iterations N, 0x200008 hypercall control, 0x200010 mode
# (0: a null OUT to port 0x80, 1: call the hypercall page with that
# control, input 0x220000, output 0x221000). VP 0 loops, exits 0; other
# VPs spin.
.intel_syntax noprefix
.code64
.include "common.inc"
    test rdi, rdi
    jnz spin
    enable_page
    mov r15, [0x200000]
    mov rbx, [0x200010]
    mov r9, 0x300000
    test r15, r15
    jz done
again:
    test rbx, rbx
    jnz hypercall
    out 0x80, al
    jmp next
hypercall:
    mov rcx, [0x200008]
    mov rdx, 0x220000
    mov r8, 0x221000
    call r9
next:
    dec r15
    jnz again
done:
    mov al, 0
    out 0xF4, al
spin:
    pause
    jmp spin
