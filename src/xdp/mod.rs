//! AF_XDP: BPF loader, UMEM, rings. TODO
