# Both VPs read each other's VpIndex and R12 100 times at the same time.
# VP i ORs every status into 0x200000 + 8 * i and stores the last values
# at 0x240000 + 0x1000 * i; then both halt (all halted -> status 0).
.intel_syntax noprefix
.code64
.include "common.inc"
    mov r12, rdi
    add r12, 0x1000          # R12 = 0x1000 + VP index
    mov rbx, rdi
    test rdi, rdi
    jnz wait_page
    enable_page
    jmp go
wait_page:
    mov ecx, 0x40000001
    rdmsr
    test eax, 1
    jz wait_page
go:
    # input block at 0x250000 + 0x1000 * VP: partition 2, VP = other one
    mov rsi, rbx
    shl rsi, 12
    add rsi, 0x250000
    mov qword ptr [rsi], 2
    mov eax, 1
    sub eax, ebx
    mov [rsi + 8], eax
    mov dword ptr [rsi + 12], 0
    mov dword ptr [rsi + 16], 0x00090003
    mov dword ptr [rsi + 20], 0x0002000C
    mov rdi, rbx
    shl rdi, 12
    add rdi, 0x240000
    mov r15, 100
again:
    mov rdx, rsi
    mov r8, rdi
    mov rcx, 0x50 | (2 << 32)
    mov r9, 0x300000
    call r9
    or [0x200000 + rbx * 8], rax
    dec r15
    jnz again
    cli
    hlt
