# The host inspector's target (tests/inspect.rs), three VPs.
# VP0 spins until the host writes a non-zero u64 at 0x200000, then exits
# with status 7. VP1 loops "inc rbx; mov dr0, rbx; mov r12, rbx" forever,
# so between any two of its instructions r12 <= dr0 <= rbx <= r12 + 1.
# VP2 halts with interrupts disabled (the only cli; hlt in this guest).
.intel_syntax noprefix
.code64
    cmp rdi, 1
    je vp1
    cmp rdi, 2
    je vp2
vp0:
    pause
    cmp qword ptr ds:0x200000, 0
    je vp0
    mov al, 7
    out 0xF4, al
vp1:
    xor ebx, ebx
    xor r12d, r12d
    mov dr0, rbx
vp1_loop:
    inc rbx
    mov dr0, rbx
    mov r12, rbx
    jmp vp1_loop
vp2:
    cli
    hlt
    jmp vp2
