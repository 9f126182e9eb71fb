# A 32-bit caller (compatibility mode, CS 0x18): HvCallGetVpRegisters of
# its own VpIndex, Cs and Rip with the x86 register pairs (control
# EDX:EAX, input EBX:ECX, output EDI:ESI). Result EDX:EAX at 0x200000,
# values at 0x221000.
.intel_syntax noprefix
.code64
.include "common.inc"
    enable_page
    jmp fword ptr [rip + to32]
to32:
    .long code32
    .word 0x18
.code32
code32:
    mov eax, 0x50
    mov edx, 3
    mov ecx, offset input
    xor ebx, ebx
    mov esi, 0x221000
    xor edi, edi
    mov ebp, 0x300000
    call ebp
    mov [0x200000], eax
    mov [0x200004], edx
    jmp fword ptr [to64]
to64:
    .long code64
    .word 0x08
.code64
code64:
    mov al, 0
    out 0xF4, al
.balign 8
input:
    .quad -1
    .long 0xFFFFFFFE
    .byte 0, 0, 0, 0
    .long 0x00090003        # VpIndex
    .long 0x00060001        # Cs
    .long 0x00020010        # Rip
