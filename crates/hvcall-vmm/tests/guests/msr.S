# Synthetic MSR semantics (docs/contract.md §6); results at 0x200000, #GP
# count at 0x201068.
.intel_syntax noprefix
.code64
.include "common.inc"
    setup_idt
    mov r14, 2
    # [0] guest OS ID at reset
    mov ecx, 0x40000000
    rdmsr
    mov [0x200000], eax
    mov [0x200004], edx
    # [8] enabling while the guest OS ID is 0 has no effect
    mov ecx, 0x40000001
    mov eax, 0x300001
    xor edx, edx
    wrmsr
    rdmsr
    mov [0x200008], eax
    mov [0x20000C], edx
    # [16] guest OS ID reads back
    mov ecx, 0x40000000
    mov eax, 0x1234
    mov edx, 0x80000000
    wrmsr
    rdmsr
    mov [0x200010], eax
    mov [0x200014], edx
    # [24] enable the page at 0x300000 (reserved bits 11:2 ignored)
    mov ecx, 0x40000001
    mov eax, 0x300FFD
    xor edx, edx
    wrmsr
    rdmsr
    mov [0x200018], eax
    mov [0x20001C], edx
    # [32] VP index
    mov ecx, 0x40000002
    rdmsr
    mov [0x200020], eax
    mov [0x200024], edx
    # #GP 1: VP index is read-only
    wrmsr
    # #GP 2: another synthetic MSR
    mov ecx, 0x40000020
    rdmsr
    # #GP 3: GPFN outside RAM
    mov ecx, 0x40000001
    mov eax, 0x1
    mov edx, 0x10
    wrmsr
    # [40] the page reads as its code
    mov eax, [0x300000]
    mov [0x200028], eax
    # [48] a write to it changes nothing
    mov dword ptr [0x300000], 0x90909090
    mov eax, [0x300000]
    mov [0x200030], eax
    # [56] calling it: call code 0x52 is not implemented -> 2
    mov rcx, 0x52
    xor edx, edx
    xor r8, r8
    mov rax, 0x300000
    call rax
    mov [0x200038], rax
    # lock the page, then #GP 4: a write to the locked MSR
    mov ecx, 0x40000001
    mov eax, 0x300003
    xor edx, edx
    wrmsr
    mov eax, 0x400001
    wrmsr
    # [64] still locked at 0x300000
    rdmsr
    mov [0x200040], eax
    mov [0x200044], edx
    mov al, 0
    out 0xF4, al
