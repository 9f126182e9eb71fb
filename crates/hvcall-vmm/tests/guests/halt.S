# Every VP halts with interrupts disabled.
.intel_syntax noprefix
.code64
    cli
    hlt
    jmp .
