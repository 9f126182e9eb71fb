# HvCallGetVpRegisters (memory form) of 8 registers of the calling VP:
# status at 0x200000, RCX after the call at 0x200008, values at 0x221000.
.intel_syntax noprefix
.code64
.include "common.inc"
    enable_page
    lea rdx, [rip + input]
    mov r8, 0x221000
    mov rcx, 0x50 | (8 << 32)
    mov r12, 0xABCDEF
    mov rax, 0x5555
    mov r9, 0x300000
    call r9
    mov [0x200000], rax
    mov [0x200008], rcx
    mov al, 0
    out 0xF4, al
.balign 8
input:
    .quad -1                # partition SELF
    .long 0xFFFFFFFE        # VP SELF
    .byte 0, 0, 0, 0        # VTL, reserved
    .long 0x00090003        # VpIndex
    .long 0x00020010        # Rip
    .long 0x00020001        # Rcx
    .long 0x00020000        # Rax
    .long 0x0002000C        # R12
    .long 0x00060001        # Cs
    .long 0x00080001        # Efer
    .long 0x00040000        # Cr0
