//! KVM VMM (filled in by the VMM issue).
