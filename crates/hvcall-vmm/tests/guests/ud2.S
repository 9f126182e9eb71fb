# #UD with no IDT: #GP, #DF, triple fault.
.intel_syntax noprefix
.code64
    ud2
