# Each VP records what the boot protocol promises at 0x200000 + 64 * VP,
# then halts: RDI, RSI, RSP, CR0, CR4, EFER, RFLAGS, CS.
.intel_syntax noprefix
.code64
    mov rbx, rdi
    shl rbx, 6
    add rbx, 0x200000
    mov [rbx], rdi
    mov [rbx + 8], rsi
    mov [rbx + 16], rsp
    mov rax, cr0
    mov [rbx + 24], rax
    mov rax, cr4
    mov [rbx + 32], rax
    mov ecx, 0xC0000080
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov [rbx + 40], rax
    pushfq
    pop rax
    mov [rbx + 48], rax
    xor eax, eax
    mov ax, cs
    mov [rbx + 56], rax
    cli
    hlt
