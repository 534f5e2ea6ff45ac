//! Listeners: the SYN (half-open) queue and the accept queue (`tcp_max_syn_backlog`, `somaxconn`), and the
//! passive open of RFC 9293 §3.10.7.2.

use std::collections::VecDeque;
use std::net::SocketAddrV4;

use super::conn::FourTuple;
use super::engine::{ConnId, Engine, ListenerId, State};
use super::engine::conn;
use super::Counter;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpRepr};

pub(crate) struct Listener {
    pub local: SocketAddrV4,
    /// min(backlog, somaxconn), as Linux.
    pub accept_limit: u32,
    /// Established connections waiting for `accept`.
    pub accept_queue: VecDeque<ConnId>,
    /// Half-open (SYN-RECEIVED) connections of this listener.
    pub syn_queue_len: u32,
}

impl Listener {
    pub fn new(local: SocketAddrV4, accept_limit: u32) -> Self {
        Listener { local, accept_limit, accept_queue: VecDeque::new(), syn_queue_len: 0 }
    }

    pub fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() as u32 >= self.accept_limit
    }
}

impl Engine {
    /// The listener for a local address: an exact bind first, then the wildcard address.
    pub(crate) fn find_listener(&self, tuple: &FourTuple) -> Option<ListenerId> {
        self.listen_map
            .get(&tuple.local())
            .or_else(|| self.listen_map.get(&SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, tuple.local_port)))
            .copied()
    }

    /// RFC 9293 §3.10.7.2: a segment for a listening socket.
    pub(crate) fn listen_input(&mut self, now: Instant, lid: ListenerId, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if seg.flags.rst() {
            return;
        }
        if seg.flags.ack() {
            // An ACK for a connection we do not have (an old duplicate, or a third ACK for an entry we dropped).
            self.send_reset_for(tuple, seg);
            return;
        }
        if !seg.flags.syn() {
            return;
        }
        let Some(l) = self.listeners[lid.0 as usize].as_ref() else { return };
        if l.accept_queue_full() {
            // Linux drops SYNs while the accept queue is full; the client's SYN retry gets another chance.
            self.counters.inc(Counter::ListenOverflows);
            self.counters.inc(Counter::ListenDrops);
            return;
        }
        if l.syn_queue_len >= self.config.tcp_max_syn_backlog {
            self.counters.inc(Counter::TCPReqQFullDrop);
            self.counters.inc(Counter::ListenDrops);
            return;
        }
        let iss = self.isn.isn(tuple.local(), tuple.remote(), now);
        self.passive_open(now, lid, tuple, seg, iss);
    }

    /// Creates the SYN-RECEIVED connection for an accepted SYN and queues its SYN-ACK.
    pub(crate) fn passive_open(
        &mut self,
        now: Instant,
        lid: ListenerId,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        iss: crate::wire::SeqNum,
    ) {
        let Ok(index) = self.alloc_conn(now, tuple, iss, State::SynReceived) else {
            self.counters.inc(Counter::ListenDrops);
            return;
        };
        self.log_transition(now, tuple, State::Listen, State::SynReceived);
        let config_ws = self.config.tcp_window_scaling;
        let config_sack = self.config.tcp_sack;
        let config_ts = self.config.tcp_timestamps != 0;
        let our_mss = self.config.mss();
        let c = conn!(self, index);
        c.irs = seg.seq;
        c.rcv_nxt = seg.seq + 1;
        c.rcv_adv = c.rcv_nxt;
        c.listener = Some(lid);
        c.apply_syn_options(now, seg, our_mss, config_ws, config_sack, config_ts);
        if let Some(l) = self.listeners[lid.0 as usize].as_mut() {
            l.syn_queue_len += 1;
        }
        self.mark_dirty(index);
    }

    /// SYN-RECEIVED -> ESTABLISHED for a passive open: move the connection into its listener's accept queue, or
    /// apply `tcp_abort_on_overflow` when the queue is full. Returns false if the ACK must be dropped.
    pub(crate) fn complete_passive_open(&mut self, now: Instant, index: u32, seg: &TcpRepr<'_>) -> bool {
        let c = self.conn_ref(index);
        let Some(lid) = c.listener else {
            // Simultaneous open: the application already holds the handle.
            return true;
        };
        let tuple = c.tuple;
        let full = match self.listeners.get(lid.0 as usize).and_then(Option::as_ref) {
            Some(l) => l.accept_queue_full(),
            None => true,
        };
        if full {
            self.counters.inc(Counter::ListenOverflows);
            self.counters.inc(Counter::ListenDrops);
            if self.config.tcp_abort_on_overflow {
                self.send_reset_for(tuple, seg);
                let c = conn!(self, index);
                c.listener = None;
                if let Some(l) = self.listeners.get_mut(lid.0 as usize).and_then(Option::as_mut) {
                    l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
                }
                self.counters.inc(Counter::EmbryonicRsts);
                self.finish(now, index, super::engine::CloseReason::Reset, false);
            }
            // With overflow aborts off, the ACK is ignored: the half-open entry stays, our SYN-ACK retransmission
            // or the client's next segment completes the handshake once there is room.
            return false;
        }
        let id = self.id_of(index);
        let l = self.listeners[lid.0 as usize].as_mut().expect("listener checked above");
        l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
        let was_empty = l.accept_queue.is_empty();
        l.accept_queue.push_back(id);
        self.conn_mut(index).in_accept_queue = true;
        self.counters.inc(Counter::PassiveOpens);
        if was_empty {
            self.events.push_back(super::engine::Event::Incoming(lid));
        }
        true
    }

    /// RFC 9293 §3.10.7.1: the RST that answers a segment nobody owns. If it carried an ACK, the RST takes its
    /// sequence number from it; otherwise it acknowledges the segment.
    pub(crate) fn send_reset_for(&mut self, tuple: FourTuple, seg: &TcpRepr<'_>) {
        if seg.flags.rst() {
            return;
        }
        let (seq, ack, flags) = if seg.flags.ack() {
            (seg.ack, crate::wire::SeqNum(0), TcpFlags::RST)
        } else {
            (crate::wire::SeqNum(0), seg.seq + seg.segment_len(), TcpFlags::RST | TcpFlags::ACK)
        };
        self.queue_control(super::engine::ControlSegment { tuple, seq, ack, flags, window: 0, timestamps: None });
    }
}
