# VP1 runs "inc r12; inc r13" forever. VP0 waits until VP1 is in its
# loop, reads VP1's Rip, R12, R13 200 times (output i at
# 0x230000 + 64 * i, status ORed into 0x200000), then exits 0. In every
# snapshot, R12 = R13 + (RIP is between the two incs).
.intel_syntax noprefix
.code64
.include "common.inc"
    test rdi, rdi
    jnz vp1
    enable_page
    wait_vp1_ready
    mov qword ptr [0x200000], 0
    mov r15, 0
    mov rbx, 0x230000
sample:
    lea rdx, [rip + input]
    mov r8, rbx
    mov rcx, 0x50 | (3 << 32)
    mov r9, 0x300000
    call r9
    or [0x200000], rax
    add rbx, 64
    inc r15
    cmp r15, 200
    jne sample
    mov al, 0
    out 0xF4, al
vp1:
    xor r12, r12
    xor r13, r13
    vp1_ready
.globl vp1_loop
vp1_loop:
    inc r12
.globl vp1_between
vp1_between:
    inc r13
    jmp vp1_loop
.balign 8
input:
    .quad 2                 # the VM's own partition id
    .long 1                 # VP 1
    .byte 0, 0, 0, 0
    .long 0x00020010        # Rip
    .long 0x0002000C        # R12
    .long 0x0002000D        # R13
