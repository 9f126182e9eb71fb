//! Guest library (filled in by the VMM issue).
#![no_std]
