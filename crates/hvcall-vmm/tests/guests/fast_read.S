# XMM fast HvCallGetVpRegisters of the caller's VpIndex and R12: input in
# RDX, R8, XMM0; output in XMM1 and XMM2. Results: status at 0x200000,
# XMM1 at 0x200010, XMM2 at 0x200020, #UD count at 0x201030.
.intel_syntax noprefix
.code64
.include "common.inc"
    setup_idt
    enable_page
    mov r14, 2
    movdqu xmm0, [rip + names]
    mov rdx, -1
    mov r8, 0xFFFFFFFE
    mov rcx, 0x50 | (1 << 16) | (2 << 32)
    mov r12, 0x7777
    mov rax, 0x5555
    mov r9, 0x300000
    call r9
    mov [0x200000], rax
    movdqu [0x200010], xmm1
    movdqu [0x200020], xmm2
    mov al, 0
    out 0xF4, al
.balign 16
names:
    .long 0x00090003, 0x0002000C, 0, 0
