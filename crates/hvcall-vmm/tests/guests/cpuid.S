# Store EAX..EDX of CPUID leaves 0x40000000..0x40000005 and 1 at
# 0x200000 + 16 * i, then exit 0.
.intel_syntax noprefix
.code64
    mov edi, 0x200000
    mov esi, 0x40000000
leaf:
    mov eax, esi
    call store
    inc esi
    cmp esi, 0x40000006
    jne leaf
    mov eax, 1
    call store
    mov al, 0
    out 0xF4, al
# CPUID leaf EAX (subleaf 0) into [rdi]; RDI += 16.
store:
    xor ecx, ecx
    cpuid
    mov [rdi], eax
    mov [rdi + 4], ebx
    mov [rdi + 8], ecx
    mov [rdi + 12], edx
    add rdi, 16
    ret
