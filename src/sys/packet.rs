//! An AF_PACKET socket bound to one interface, receiving every protocol (ETH_P_ALL): raw Ethernet frames in and
//! out, non-blocking (the lab's impairing router uses one per port).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const ETH_P_ALL: u16 = 0x0003;
/// `<linux/if_packet.h>`: do not loop our own transmissions back to us.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A non-blocking, close-on-exec AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket on interface `name`. Best effort after binding: our own transmissions are not looped back
    /// (PACKET_IGNORE_OUTGOING) and the socket buffers are `buffer` bytes (SO_RCVBUFFORCE / SO_SNDBUFFORCE, which
    /// need CAP_NET_ADMIN).
    pub fn open(name: &str, buffer: usize) -> io::Result<PacketSocket> {
        let ifindex = super::if_index(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}")))?;
        let proto = libc::c_int::from(ETH_P_ALL.to_be());
        // SAFETY: socket(2) passes no memory.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero is a valid sockaddr_ll (an unbound, unspecified address).
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `sll` is a live sockaddr_ll of the length passed; bind only reads it.
        if unsafe { libc::bind(raw, (&sll as *const libc::sockaddr_ll).cast(), len) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let big = libc::c_int::try_from(buffer).unwrap_or(libc::c_int::MAX);
        let _ = super::set_int_opt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        let _ = super::set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, big);
        let _ = super::set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, big);
        Ok(PacketSocket { fd })
    }

    /// Receives one frame into `buf`; `None` when nothing is waiting (or the call was interrupted).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match rustix::net::recv(&self.fd, buf, rustix::net::RecvFlags::empty()) {
            Ok((n, _)) => Ok(Some(n)),
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one frame. A full socket buffer drops it (as a full qdisc would) and reports success.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        match rustix::net::send(&self.fd, frame, rustix::net::SendFlags::empty()) {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_interface_is_an_error() {
        let e = PacketSocket::open("no-such-if0", 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    /// As root (CAP_NET_RAW): a frame sent on loopback comes back to a second socket on it.
    #[test]
    fn loopback_frames_arrive() {
        let Ok(a) = PacketSocket::open("lo", 1 << 20) else {
            eprintln!("skipped: AF_PACKET needs CAP_NET_RAW");
            return;
        };
        let b = PacketSocket::open("lo", 1 << 20).unwrap();
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // IEEE local experimental EtherType
        frame[14..20].copy_from_slice(b"xdptcp");
        a.send(&frame).unwrap();
        let mut buf = [0u8; 2048];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut seen = false;
        while !seen && std::time::Instant::now() < deadline {
            match b.recv(&mut buf).unwrap() {
                Some(n) => seen = n == 60 && buf[14..20] == *b"xdptcp",
                None => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        assert!(seen, "the frame did not come back on lo");
    }
}
