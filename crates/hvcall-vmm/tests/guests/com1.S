# Print "hi\n" on COM1, polling the LSR, then exit 0.
.intel_syntax noprefix
.code64
    lea rsi, [rip + msg]
    mov ecx, 3
next:
    mov dx, 0x3FD
    in al, dx
    test al, 0x20
    jz next
    mov dx, 0x3F8
    mov al, [rsi]
    inc rsi
    out dx, al
    dec ecx
    jnz next
    mov al, 0
    out 0xF4, al
msg:
    .ascii "hi\n"
