# Boot and exit with status 42 through port 0xF4.
.intel_syntax noprefix
.code64
    mov al, 42
    out 0xF4, al
