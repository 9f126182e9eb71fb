# Every fetch group, from self and from a running VP. Each VP puts known
# values in LSTAR, PAT, DR0, XMM3 and R12 (VP-specific), then VP 1 spins
# while VP 0 reads the same names from itself (output at 0x221000) and
# from VP 1 (output at 0x222000). Status of both calls ORed at 0x200000.
.intel_syntax noprefix
.code64
.include "common.inc"

.macro names
    .long 0x00080009        # 0 Lstar (Msrs)
    .long 0x00080004        # 1 Pat (Msrs)
    .long 0x00050000        # 2 Dr0 (Debug)
    .long 0x00030003        # 3 Xmm3 (Fpu)
    .long 0x00040005        # 4 Xfem (Xcrs)
    .long 0x00080000        # 5 Tsc (Msrs)
    .long 0x00040002        # 6 Cr3 (Sync)
    .long 0x00070001        # 7 Gdtr (Sync)
    .long 0x00060007        # 8 Tr (Sync)
    .long 0x00030018        # 9 FpControlStatus (Fpu)
    .long 0x00030019        # 10 XmmControlStatus (Fpu)
    .long 0x00050005        # 11 Dr7 (Debug)
    .long 0x0002000C        # 12 R12 (Sync)
    .long 0x00090003        # 13 VpIndex (Synthetic)
    .long 0x00090002        # 14 GuestOsId (Synthetic)
    .long 0x00000200        # 15 PrivilegesAndFeaturesInfo (Synthetic)
    .long 0x00010003        # 16 InterruptState (Sync)
    .long 0x00080005        # 17 SysenterCs (Msrs)
.endm
    mov rbx, rdi
    mov ecx, 0xC0000082             # LSTAR = 0x3333_1111_2222 + VP
    mov eax, 0x11112222
    add eax, ebx
    mov edx, 0x3333
    wrmsr
    mov ecx, 0x277                  # PAT
    mov eax, 0x00070406
    mov edx, 0x00070106
    add edx, ebx
    wrmsr
    mov rax, 0x4000                 # DR0 = 0x4000 + 0x1000 * VP
    mov rcx, rbx
    shl rcx, 12
    add rax, rcx
    mov dr0, rax
    mov rax, rbx
    shl rax, 4
    lea rcx, [rip + patterns]
    movdqu xmm3, [rcx + rax]        # XMM3 = patterns[VP]
    mov r12, 0x1212
    add r12, rbx
    test rbx, rbx
    jnz vp1
    enable_page
    wait_vp1_ready
    mov qword ptr [0x200000], 0
    lea rdx, [rip + input_self]
    mov r8, 0x221000
    mov rcx, 0x50 | (18 << 32)
    mov r9, 0x300000
    call r9
    or [0x200000], rax
    lea rdx, [rip + input_vp1]
    mov r8, 0x222000
    mov rcx, 0x50 | (18 << 32)
    call r9
    or [0x200000], rax
    mov al, 0
    out 0xF4, al
vp1:
    vp1_ready
spin:
    pause
    jmp spin
.balign 16
patterns:
    .quad 0x0123456789ABCDEF, 0xFEDCBA9876543210
    .quad 0x1111222233334444, 0x5555666677778888
.balign 8
input_self:
    .quad -1
    .long 0xFFFFFFFE
    .byte 0, 0, 0, 0
    names
input_vp1:
    .quad 2
    .long 1
    .byte 0, 0, 0, 0
    names
