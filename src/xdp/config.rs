//! What a caller chooses about an AF_XDP socket: ring and UMEM sizes, the bind mode, busy polling.

/// Socket-level options applied after binding.
#[derive(Copy, Clone, Debug, Default)]
pub struct BusyPoll {
    /// SO_BUSY_POLL microseconds (0: off).
    pub usecs: u32,
    /// SO_BUSY_POLL_BUDGET packets per busy-poll round.
    pub budget: u32,
}

/// Sizes of the UMEM and rings for one socket.
#[derive(Copy, Clone, Debug)]
pub struct RingConfig {
    /// Frames in the UMEM (power of two not required).
    pub frame_count: u32,
    /// Bytes per frame, a power of two >= 2048.
    pub frame_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    /// Try to back the UMEM with huge pages first.
    pub huge_pages: bool,
    /// Copy or zero-copy mode for the socket.
    pub bind: XskBind,
}

/// How the AF_XDP socket moves packets (the bind flags).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XskBind {
    /// Zero-copy where the driver supports it, else copy (no flag: the kernel picks).
    #[default]
    Auto,
    /// XDP_COPY: always copy (works on every driver, e.g. veth).
    Copy,
    /// XDP_ZEROCOPY: fail unless the driver can do zero-copy.
    ZeroCopy,
}

impl Default for RingConfig {
    fn default() -> Self {
        // Frames for every ring at once plus slack for packets waiting on ARP: fill + rx + tx = 12288 of 16384
        // (32 MiB), so transmission never starves because reception holds everything.
        RingConfig {
            frame_count: 16384,
            frame_size: 2048,
            fill_size: 4096,
            comp_size: 4096,
            rx_size: 4096,
            tx_size: 4096,
            huge_pages: true,
            bind: XskBind::Auto,
        }
    }
}
