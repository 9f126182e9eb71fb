# Reads of a running VP fetch only the groups their names need. VP 1 puts
# known values in LSTAR, DR0, XMM0 and R12, then spins. VP 0 reads VP 1
# twice: call A names only free state (R12, Rip, Cr3, Cs, VpIndex; output
# at 0x221000), call B one register each of Msrs, Fpu and Debug plus R12
# (Lstar, Xmm0, Dr0, R12; output at 0x222000). Status of both calls ORed
# at 0x200000.
.intel_syntax noprefix
.code64
.include "common.inc"
    test rdi, rdi
    jnz vp1
    enable_page
    wait_vp1_ready
    mov qword ptr [0x200000], 0
    mov r9, 0x300000
    lea rdx, [rip + input_free]
    mov r8, 0x221000
    mov rcx, 0x50 | (5 << 32)
    call r9
    or [0x200000], rax
    lea rdx, [rip + input_groups]
    mov r8, 0x222000
    mov rcx, 0x50 | (4 << 32)
    call r9
    or [0x200000], rax
    mov al, 0
    out 0xF4, al
vp1:
    mov ecx, 0xC0000082             # LSTAR = 0x4444_0000_1111
    mov eax, 0x00001111
    mov edx, 0x4444
    wrmsr
    mov rax, 0x7000                 # DR0
    mov dr0, rax
    movdqu xmm0, [rip + pattern]    # XMM0
    mov r12, 0xC12
    vp1_ready
spin:
    pause
    jmp spin
.balign 16
pattern:
    .quad 0x0F0E0D0C0B0A0908, 0x0706050403020100
.balign 8
input_free:
    .quad 2                 # the VM's own partition id
    .long 1                 # VP 1
    .byte 0, 0, 0, 0
    .long 0x0002000C        # R12 (Sync)
    .long 0x00020010        # Rip (Sync)
    .long 0x00040002        # Cr3 (Sync)
    .long 0x00060001        # Cs (Sync)
    .long 0x00090003        # VpIndex (Synthetic)
    .balign 8
input_groups:
    .quad 2
    .long 1
    .byte 0, 0, 0, 0
    .long 0x00080009        # Lstar (Msrs)
    .long 0x00030000        # Xmm0 (Fpu)
    .long 0x00050000        # Dr0 (Debug)
    .long 0x0002000C        # R12 (Sync)
