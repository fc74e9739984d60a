//! Linux ioctl request numbers: the asm-generic `_IOC` encoding, shared by the V4L2 and ALSA
//! layers (their `sys.rs` name each request with it).
//!
//! Owns: [`ioc`] and the direction bits. Invariants: the encoding is asm-generic's (2 direction
//! bits, 14 size bits, 8 type bits, 8 number bits), which x86, arm, aarch64 and riscv use; other
//! architectures (mips, powerpc, sparc) encode differently and do not build. The numbers are
//! asserted at compile time in each `sys.rs` (run for every board target by
//! tests/board_layouts.rs) and held against the kernel's ALSA header by tests/alsa_abi.rs.

#[cfg(not(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "arm",
    target_arch = "aarch64",
    target_arch = "riscv32",
    target_arch = "riscv64"
)))]
compile_error!("campush knows the generic _IOC encoding only (x86, arm, aarch64, riscv)");

const NRBITS: u32 = 8;
const TYPEBITS: u32 = 8;
const SIZEBITS: u32 = 14;
const NRSHIFT: u32 = 0;
const TYPESHIFT: u32 = NRSHIFT + NRBITS;
const SIZESHIFT: u32 = TYPESHIFT + TYPEBITS;
const DIRSHIFT: u32 = SIZESHIFT + SIZEBITS;

/// `_IOC_NONE`: no argument.
pub const NONE: u32 = 0;
/// `_IOC_WRITE`: user space writes the argument.
pub const WRITE: u32 = 1;
/// `_IOC_READ`: user space reads the argument.
pub const READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size < (1 << SIZEBITS), "ioctl argument too large");
    (dir << DIRSHIFT)
        | ((ty as u32) << TYPESHIFT)
        | ((nr as u32) << NRSHIFT)
        | ((size as u32) << SIZESHIFT)
}
